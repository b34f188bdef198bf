"""A loss that is a weighted sum of component losses, predicted as the weighted sum of one law per component.

A mixture's validation loss is the weighted mean of its domains' losses, and domains approach their floors
at different rates: a generated domain that small models nearly solve stops improving while prose keeps
going. A sum of power laws with different floors and exponents is not a power law. Fitted to the sum, one
law takes the fast domains' early descent, which the larger models no longer get, for the trend of all,
and extrapolates too optimistically. Fitting each component with its own law (``auto`` chooses each form
by backtest) and summing keeps every law to a curve it can describe; data-mixing laws fit per domain for
the same reason.

Intervals: every component's bootstrap resamples the same runs in the same order (one seed, whole runs as
the units), so summing their replicates gives the joint bootstrap of the sum, with the components'
correlation kept. The misfit comes from the sum's own leave-largest-out backtests: every component refitted
without the largest model sizes (``auto`` choosing its form again inside each), summed, and compared with
the measured loss. `backtest_sum` scores any weighting that way, a single component included, so the sum and
the loss fitted alone are compared on equal terms.
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
from sweeper.errors import UserError
from sweeper.laws.data import LawData, split_largest
from sweeper.laws.power import (
    FLOPS_PER_TOKEN_PARAM,
    LawFit,
    Prediction,
    evaluate_law,
    fit_law,
    percentile_interval,
    widen_by_misfit,
)
from sweeper.laws.select import holdout_counts, misfit_rate

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
        if boots and len({b.shape for b in boots}) == 1:
            lo, hi = percentile_interval(np.sum(boots, axis=0), self.level)
        else:
            lo, hi = value * np.nan, value * np.nan
            if self.misfit:
                lo, hi = value, value
        lo, hi = widen_by_misfit(value, lo, hi, self.misfit, self.level, self.flops_per_token_param, n, d, c)
        return Prediction(value, lo, hi, self.level)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "law": self.law, "form": self.form, "weights": self.weights,
                "level": self.level, "n_points": self.n_points, "n_runs": self.n_runs, "misfit": self.misfit,
                "backtest": self.backtest, "components": {name: fit.to_dict() for name, fit in self.fits.items()}}

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=float))


def check_components(components: Mapping[str, LawData], target: LawData | None = None) -> None:
    """Every component (and the target) must hold the same runs, sizes and token counts, in one order:
    the joint bootstrap and the backtests pair them point by point."""
    first_name, first = next(iter(components.items()))
    for name, data in [*components.items(), *([("the loss", target)] if target is not None else [])]:
        same = (len(data) == len(first) and np.array_equal(data.run, first.run)
                and all(np.allclose(data.get(v), first.get(v)) for v in ("n", "d") if getattr(first, v) is not None))
        if not same:
            raise UserError(f"{data.source}: {name}: its points are not those of {first_name} (runs, N or D "
                            f"differ); expected every component measured on the same finished runs")


def fit_components(components: Mapping[str, LawData], weights: Mapping[str, float], target: LawData,
                   law: str = "auto", *, bootstrap: int = 200, level: float = 0.9, seed: int = 0,
                   holdouts: Sequence[int] | None = None, **fit_kwargs: Any) -> ComponentFit:
    """Fit ``law`` to every component (``auto``: each its own form), and score the weighted sum by backtest
    against ``target`` (the measured loss the weights make of the components); the sum's misfit widens its
    intervals. ``backtest["alone"]`` scores ``target`` fitted by itself the same way, for comparison."""
    if set(components) != set(weights):
        raise UserError(f"components {sorted(components)} and weights {sorted(weights)} name different losses")
    check_components(components, target)
    x = "flops" if law == "power" else None
    fits = {name: fit_law(components[name], law, x, bootstrap=bootstrap, level=level, seed=seed, by="run",
                          **fit_kwargs) for name in weights}
    holdouts = list(holdouts) if holdouts is not None else holdout_counts(target, "n")
    summed = backtest_sum(components, weights, target, law, holdouts, **fit_kwargs)
    alone = backtest_sum({"loss": target}, {"loss": 1.0}, target, law, holdouts, **fit_kwargs)
    misfit = None
    if summed["points"]:
        misfit = {"rate": summed["misfit_per_log_extrapolation"], "by": "n", "fitted_max": float(target.n.max())}
    first = next(iter(components.values()))
    return ComponentFit(weights=dict(weights), fits=fits, level=level, n_points=len(first), n_runs=first.n_runs,
                        misfit=misfit, backtest={"holdouts": holdouts, "sum": summed, "alone": alone},
                        flops_per_token_param=fits[next(iter(fits))].flops_per_token_param)


def backtest_sum(components: Mapping[str, LawData], weights: Mapping[str, float], target: LawData, law: str,
                 holdouts: Sequence[int], **fit_kwargs: Any) -> dict[str, Any]:
    """Leave-largest-out backtests of the weighted sum: for each count in ``holdouts``, refit every component
    without the ``count`` largest model sizes, sum the predictions of those sizes and compare with
    ``target``. Returns the mean relative error, the points scored and the misfit per log extrapolation."""
    x = "flops" if law == "power" else None
    errors, distances = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings of the small backtest fits are not the user's fit
        for count in holdouts:
            try:
                train_target, test = split_largest(target, "n", count)
                parts = {name: split_largest(data, "n", count)[0] for name, data in components.items()}
                pred = sum(w * fit_law(parts[name], law, x, **{**fit_kwargs, "bootstrap": 0}).predict(
                    n=test.n, d=test.d, c=test.c) for name, w in weights.items())
            except UserError:
                continue  # too few sizes left to fit this form
            errors.append(np.log(pred / test.loss))
            distances.append(np.log(test.n / train_target.n.max()))
    if not errors:
        return {"points": 0, "mean_abs_rel_error": None, "misfit_per_log_extrapolation": None}
    err, dist = np.concatenate(errors), np.concatenate(distances)
    return {"points": int(err.size), "mean_abs_rel_error": float(np.mean(np.abs(np.expm1(err)))),
            "mean_rel_error": float(np.mean(np.expm1(err))),
            "misfit_per_log_extrapolation": misfit_rate(err, dist)}
