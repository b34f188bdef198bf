"""A loss that is a weighted sum of component losses, predicted as the weighted sum of one law per component.

A mixture's validation loss is the weighted mean of its domains' losses, and domains approach their floors
at different rates: a generated domain that small models nearly solve stops improving while prose keeps
going. A sum of power laws with different floors and exponents is not a power law. Fitted to the sum, one
law takes the fast domains' early descent, which the larger models no longer get, for the trend of all,
and can extrapolate too optimistically (on studies/ladder.yaml it missed its first validation run by 3.5%
this way). Fitting each component with its own law (``auto`` chooses each form
by backtest) and summing keeps every law to a curve it can describe; data-mixing laws fit per domain for
the same reason.

Intervals: every component's bootstrap resamples the same runs in the same order (one seed, whole runs as
the units), so summing their replicates gives the joint bootstrap of the sum, with the components'
correlation kept. The misfit comes from the sum's own leave-largest-out backtests: every component refitted
without the largest model sizes (``auto`` choosing its form again inside each), summed, and compared with
the measured loss. `fit_components` scores the loss fitted alone the same way, on the same holdouts, so the two
are compared on equal terms.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.atomic import write_text_atomic
from sweeper.errors import ParameterError, UserError
from sweeper.laws.data import LawData, split_largest
from sweeper.laws.power import (
    FLOPS_PER_TOKEN_PARAM,
    LawFit,
    Prediction,
    check_misfit,
    evaluate_law,
    fit_law,
    percentile_interval,
    read_fit_json,
    widen_by_misfit,
)
from sweeper.laws.select import backtest_score, holdout_counts, misfit_of

FORMAT = "sweeper.law-components/1"


@dataclass
class ComponentFit:
    """One law per component; predicts their weighted sum with the joint bootstrap widened by the sum's
    backtest misfit."""

    weights: dict[str, float]
    fits: dict[str, LawFit]
    level: float
    n_points: int
    n_runs: int
    misfit: dict[str, Any] | None = None
    backtest: dict[str, Any] = field(default_factory=dict)
    flops_per_token_param: float = FLOPS_PER_TOKEN_PARAM
    law: str = "components"

    @property
    def form(self) -> str:
        return "L = " + " + ".join(f"{w:g} L[{name}]" for name, w in self.weights.items())

    @property
    def params(self) -> dict[str, Any]:
        return {name: {"law": fit.law, **fit.params} for name, fit in self.fits.items()}

    @property
    def info(self) -> dict[str, Any]:
        chosen = {name: fit.info.get("auto", {}).get("chosen", fit.law) for name, fit in self.fits.items()}
        return {"components": chosen, "backtest": self.backtest}

    def backtest_summary(self) -> str:
        """The sum's backtests beside those of the loss fitted alone, in words (what the ladder, `sweeper fit law`
        and the report say)."""
        bt = self.backtest if isinstance(self.backtest, dict) else {}
        summed, alone = ((bt.get(k) if isinstance(bt.get(k), dict) else {}).get("mean_abs_rel_error")
                         for k in ("sum", "alone"))
        if not isinstance(summed, (int, float)):
            return "no backtest: too few sizes to fit without the largest, so the interval is the bootstrap's alone"
        text = (f"backtests (fit without the {', '.join(map(str, bt.get('holdouts', [])))} largest sizes, predict "
                f"them): the components' sum {summed:.2%} mean error")
        signed = bt["sum"].get("mean_rel_error")
        if isinstance(signed, (int, float)) and signed:  # which way the misses leaned: a hint of how the next will
            text += f" (on average {abs(signed):.2%} {'low' if signed < 0 else 'high'})"
        return text + (f", the loss fitted alone {alone:.2%}" if isinstance(alone, (int, float)) else "")

    def predict(self, n: Any = None, d: Any = None, c: Any = None) -> np.ndarray:
        """The point prediction: the weighted sum of the components' predictions."""
        return sum(w * self.fits[name].predict(n=n, d=d, c=c) for name, w in self.weights.items())

    def prediction(self, n: Any = None, d: Any = None, c: Any = None) -> Prediction:
        """The prediction with the joint bootstrap's percentile interval, widened by the misfit."""
        value = self.predict(n=n, d=d, c=c)
        boots = []
        for name, w in self.weights.items():
            fit = self.fits[name]
            if fit.samples is None or len(fit.samples) == 0:
                boots = []
                break
            inputs = fit.inputs(n, d, c)
            boots.append(w * np.stack([evaluate_law(fit.law, s, inputs, fit.flops_per_token_param)
                                       for s in fit.samples]))
        if boots and len({b.shape for b in boots}) > 1:
            raise UserError(f"{self.form}: the components' bootstraps have {sorted({len(b) for b in boots})} "
                            f"replicates; expected one count (every component fitted with one seed and bootstrap)")
        if boots:
            lo, hi = percentile_interval(np.sum(boots, axis=0), self.level)
        else:
            lo, hi = value * np.nan, value * np.nan
            if self.misfit:
                lo, hi = value, value
        lo, hi = widen_by_misfit(value, lo, hi, self.misfit, self.level, self.flops_per_token_param, n, d, c)
        return Prediction(value, lo, hi, self.level)

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        return {"format": FORMAT, "law": self.law, "form": self.form, "weights": self.weights,
                "level": self.level, "n_points": self.n_points, "n_runs": self.n_runs, "misfit": self.misfit,
                "backtest": self.backtest,
                "components": {name: fit.to_dict(samples) for name, fit in self.fits.items()}}

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=float))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "fit.json") -> ComponentFit:
        """A fit from its JSON form; every component is checked as `LawFit.from_dict` checks a fit."""
        weights, parts = raw.get("weights"), raw.get("components")
        if not (isinstance(weights, dict) and len(weights) >= 2 and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) and w > 0
                for w in weights.values())):
            raise UserError(f"{source}: weights: expected at least 2 component losses, each with a positive weight")
        if not isinstance(parts, dict) or set(parts) != set(weights):
            raise UserError(f"{source}: components: expected one fit for each of {', '.join(weights)}")
        fits = {name: LawFit.from_dict(parts[name], f"{source}: components.{name}") for name in weights}
        first = fits[next(iter(fits))]
        level = raw.get("level", first.level)
        if not (isinstance(level, (int, float)) and 0 < level < 1):
            raise UserError(f"{source}: level: expected a number between 0 and 1")
        return cls(weights={k: float(v) for k, v in weights.items()}, fits=fits, level=float(level),
                   n_points=first.n_points, n_runs=first.n_runs, misfit=check_misfit(raw.get("misfit"), source),
                   backtest=raw.get("backtest") or {}, flops_per_token_param=first.flops_per_token_param)


def load_fit(path: str | Path) -> LawFit | ComponentFit:
    """A saved fit: one law (`sweeper fit law -o`) or one law per component (a ladder's ``laws/fit.json``)."""
    raw = read_fit_json(path)
    if isinstance(raw, dict) and raw.get("law") == "components":
        return ComponentFit.from_dict(raw, str(path))
    return LawFit.from_dict(raw, str(path))


def check_components(components: Mapping[str, LawData], target: LawData | None = None) -> None:
    """Every component (and the target) must hold the same runs, with the same N, D and C, in one order: the
    joint bootstrap and the backtests pair them point by point. A ParameterError (``components``)."""
    if not components:
        raise ParameterError("components", "expected at least 2 component losses, got none")
    first_name, first = next(iter(components.items()))
    for name, data in [*components.items(), *([(target.columns.get("loss", "the loss"), target)] if target else [])]:
        same = len(data) == len(first) and np.array_equal(data.run, first.run) and all(
            np.allclose(data.get(v), first.get(v)) for v in ("n", "d", "c") if getattr(first, v) is not None)
        if not same:
            raise ParameterError("components", f"{name}: its points are not those of {first_name} (runs, N, D or "
                                 f"C differ, or one has no value on some runs); expected every component "
                                 f"measured on the same finished runs", source=target.source if target else None)


def check_weighted_sum(weights: Mapping[str, float], components: Mapping[str, LawData], target: LawData,
                       rtol: float = 1e-3) -> None:
    """The weighted components must make the target loss (within ``rtol``), or their sum predicts something
    else; a ParameterError (``components``) naming the run where they differ most."""
    check_components(components, target)
    summed = sum(w * components[name].loss for name, w in weights.items())
    gap = np.abs(summed / target.loss - 1)
    if gap.max() > rtol:
        worst, loss = int(np.argmax(gap)), target.columns.get("loss", "the loss")
        raise ParameterError("components", f"the weighted sum of the components is {summed[worst]:.6g} on run "
                             f"{target.run[worst]}, where {loss} is {target.loss[worst]:.6g} ({gap[worst]:.2%} "
                             f"apart); expected weights that make {loss} of the components (within {rtol:.1%})",
                             source=target.source)


def fit_components(components: Mapping[str, LawData], weights: Mapping[str, float], target: LawData,
                   law: str = "auto", *, bootstrap: int = 200, level: float = 0.9, seed: int = 0,
                   holdouts: Sequence[int] | None = None, **fit_kwargs: Any) -> ComponentFit:
    """Fit ``law`` to every component (``auto``: each its own form), and score the weighted sum by backtest
    against ``target`` (the measured loss the weights make of the components); the sum's misfit widens its
    intervals. ``backtest["alone"]`` scores ``target`` fitted by itself on the same holdouts, for comparison.
    The bootstrap resamples whole runs (by size would resample a power law in compute by compute levels and a
    law in N and D by sizes, and the components' replicates would no longer pair)."""
    if set(components) != set(weights):
        raise ParameterError("components", f"{sorted(weights)}: weights for other losses than the components "
                             f"{sorted(components)}")
    if fit_kwargs.pop("by", "run") != "run":
        raise ParameterError("by", "a fit of one law per component resamples whole runs; expected 'run'")
    check_weighted_sum(weights, components, target)
    fits = {name: fit_law(components[name], law, bootstrap=bootstrap, level=level, seed=seed, by="run",
                          **fit_kwargs) for name in weights}
    holdouts = list(holdouts) if holdouts is not None else holdout_counts(target, "n")
    summed = _backtest_errors(components, weights, target, law, holdouts, **fit_kwargs)
    alone = _backtest_errors({"loss": target}, {"loss": 1.0}, target, law, holdouts, **fit_kwargs)
    shared = sorted(set(summed) & set(alone))  # score both on the holdouts both could fit
    scores = {key: backtest_score(*_joined(errors, shared)) for key, errors in (("sum", summed), ("alone", alone))}
    misfit = misfit_of(scores["sum"], "n", float(target.n.max()))
    first = next(iter(components.values()))
    return ComponentFit(weights=dict(weights), fits=fits, level=level, n_points=len(first), n_runs=first.n_runs,
                        misfit=misfit, backtest={"holdouts": shared, **scores},
                        flops_per_token_param=fits[next(iter(fits))].flops_per_token_param)


def _backtest_errors(components: Mapping[str, LawData], weights: Mapping[str, float], target: LawData, law: str,
                     holdouts: Sequence[int], **fit_kwargs: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per holdout count that leaves enough sizes to fit: the log errors of the sum and the points' log
    distances beyond the largest size fitted."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings of the small backtest fits are not the user's fit
        for count in holdouts:
            try:
                train_target, test = split_largest(target, "n", count)
                parts = {name: split_largest(data, "n", count)[0] for name, data in components.items()}
                pred = sum(w * fit_law(parts[name], law, **{**fit_kwargs, "bootstrap": 0, "misfit": False}).predict(
                    n=test.n, d=test.d, c=test.c) for name, w in weights.items())
            except UserError:
                continue  # too few sizes left to fit this form
            out[count] = (np.log(pred / test.loss), np.log(test.n / train_target.n.max()))
    return out


def _joined(errors: Mapping[int, tuple[np.ndarray, np.ndarray]], counts: Sequence[int]) -> tuple[np.ndarray, ...]:
    if not counts:
        return np.empty(0), np.empty(0)
    return tuple(np.concatenate([errors[k][i] for k in counts]) for i in (0, 1))
