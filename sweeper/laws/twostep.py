"""Two-step prediction of a downstream metric: compute (or N and D) -> loss -> downstream metric.

1. compute (or N and D) -> loss: a power law with an irreducible term (:mod:`sweeper.laws.power`);
2. loss -> downstream metric, one of two links (``form``):

   - ``sigmoid`` (the OLMo 2 ladder, Bhagia et al. 2024, and DataDecide, Magnusson et al. 2025), for a
     task's accuracy against its own task loss: ``y = a / (1 + exp(-k (L - L0))) + b``;
   - ``exponential`` (Gadre et al. 2024, "Language models scale reliably with over-training and on
     downstream tasks"), for a top-1 error against a validation loss: ``y = epsilon - k exp(-gamma L)``.
     The error falls as the loss does, and rises towards epsilon as the loss grows. epsilon reads as the
     error of a model without signal only when gamma times the loss's range is large; over a short range
     the curve is nearly straight and epsilon and k grow together (a ladder's fit can give epsilon > 1).
     ``k`` may take either sign, so an accuracy fits as well as an error. The paper fits the link on its
     models' final points and an average of 17 downstream tasks' errors; here it is fitted on whatever
     points are passed (a ladder's checkpoints past ``laws.downstream.min_fraction``; 1 keeps the finals).

:func:`fit_two_step` fits both steps and chains them; both are refitted on the same bootstrap resamples of
runs, so the interval of the metric carries the uncertainty of both. Step 2 may use more points than step 1
(intermediate checkpoints too): pass them as ``step2``. :func:`fit_link` fits step 2 alone, and
:meth:`LinkFit.chain` maps any loss prediction with its interval (a ladder's law, its misfit included)
through it. Given each point's model size and whether it is its run's final point, :func:`fit_link` also
backtests the link as the laws are backtested (fitted without the largest sizes, it predicts their final
points from their measured loss): the error of that extrapolation sets the spread a new run's metric gets
about the curve, and ``form="auto"`` keeps the link that erred least.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.errors import UserError
from sweeper.laws.data import LawData, distinct_levels
from sweeper.laws.power import (
    HUBER_DELTA,
    LawFit,
    Prediction,
    fit_law,
    percentile_interval,
    read_fit_json,
    refit,
    resampling_units,
)

SIGMOID_PARAMS = ("a", "b", "k", "L0")
EXPONENTIAL_PARAMS = ("epsilon", "k", "gamma")
LINK_FORMAT = "sweeper.link/1"
GAMMA_GRID = np.geomspace(1e-2, 1e2, 81)
"""Decay rates (per unit of loss, times the loss's spread) tried before the local fit of the exponential."""


# -- the sigmoid link ----------------------------------------------------------------------------------
def sigmoid(p: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """``a / (1 + exp(-k (L - L0))) + b`` for parameters ``p = [a, b, k, L0]``."""
    a, b, k, l0 = p
    return a / (1.0 + np.exp(np.clip(-k * (np.asarray(loss) - l0), -50.0, 50.0))) + b


def fit_sigmoid(loss: np.ndarray, acc: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Least-squares fit of the sigmoid from a small grid of starts (or from ``start``); returns [a, b, k, L0]."""
    from scipy.optimize import least_squares

    loss, acc = _points(loss, acc, len(SIGMOID_PARAMS), "sigmoid")
    spread = float(np.ptp(loss)) or 1.0
    lo, hi = float(acc.min()), float(acc.max())
    if start is not None:
        starts = [start]
    else:
        starts = [np.array([max(hi - lo, 1e-3) * 1.2, lo - 0.1 * (hi - lo), -s / spread, l0])
                  for s in (2.0, 6.0, 20.0) for l0 in np.quantile(loss, [0.25, 0.5, 0.75])]

    def resid(p: np.ndarray) -> np.ndarray:
        return sigmoid(p, loss) - acc

    def jac(p: np.ndarray) -> np.ndarray:  # analytic: five times fewer sigmoid evaluations than differences
        a, _, k, l0 = p
        z = np.clip(k * (loss - l0), -50.0, 50.0)
        s = 1.0 / (1.0 + np.exp(-z))
        slope = a * s * (1.0 - s)
        return np.column_stack([s, np.ones_like(s), slope * (loss - l0), -slope * k])

    best = min((least_squares(resid, p0, jac=jac, method="trf", x_scale="jac") for p0 in starts),
               key=lambda r: r.cost)
    return best.x


# -- the exponential link (Gadre et al. 2024) ------------------------------------------------------------
def exponential(p: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """``epsilon - k exp(-gamma L)`` for parameters ``p = [epsilon, k, gamma]``."""
    epsilon, k, gamma = p
    return epsilon - k * np.exp(np.clip(-gamma * np.asarray(loss), -700.0, 700.0))


def fit_exponential(loss: np.ndarray, err: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Least-squares fit of ``epsilon - k exp(-gamma L)``; returns [epsilon, k, gamma].

    For a fixed gamma the form is linear in (epsilon, k): one small least-squares solve per gamma of a
    log grid (scaled by the loss's spread) finds the global start, then a trust-region fit refines all three.
    """
    from scipy.optimize import least_squares

    loss, err = _points(loss, err, len(EXPONENTIAL_PARAMS), "exponential")
    centre = float(loss.mean())
    spread = float(np.ptp(loss)) or 1.0
    z = loss - centre  # exp(-gamma L) = exp(-gamma centre) exp(-gamma z): fit k' = k exp(-gamma centre)
    if start is None:
        best = (np.inf, None)
        for gamma in GAMMA_GRID / spread:
            feature = -np.exp(-gamma * z)
            design = np.column_stack([np.ones_like(z), feature])
            coef, *_ = np.linalg.lstsq(design, err, rcond=None)
            cost = float(np.sum((design @ coef - err) ** 2))
            if cost < best[0]:
                best = (cost, np.array([coef[0], coef[1], np.log(gamma)]))
        theta0 = best[1]
    else:
        epsilon, k, gamma = start
        theta0 = np.array([epsilon, k * np.exp(-gamma * centre), np.log(gamma)])

    def resid(t: np.ndarray) -> np.ndarray:
        return t[0] - t[1] * np.exp(np.clip(-np.exp(t[2]) * z, -700.0, 700.0)) - err

    def jac(t: np.ndarray) -> np.ndarray:
        g = np.exp(t[2])
        e = np.exp(np.clip(-g * z, -700.0, 700.0))
        return np.column_stack([np.ones_like(z), -e, t[1] * e * z * g])

    # gamma stays within the grid's span, and gamma * centre below exp's range, so k stays finite
    low = np.log(GAMMA_GRID[0] / spread)
    high = max(low + 1e-6, min(np.log(GAMMA_GRID[-1] / spread), np.log(600.0 / max(abs(centre), 1e-12))))
    theta0[2] = np.clip(theta0[2], low, high)
    t = least_squares(resid, theta0, jac=jac, method="trf", x_scale="jac",
                      bounds=([-np.inf, -np.inf, low], [np.inf, np.inf, high])).x
    gamma = float(np.exp(t[2]))
    return np.array([t[0], t[1] * np.exp(gamma * centre), gamma])


def _points(loss: np.ndarray, y: np.ndarray, n_params: int, form: str) -> tuple[np.ndarray, np.ndarray]:
    loss, y = np.asarray(loss, dtype=float), np.asarray(y, dtype=float)
    if loss.size < n_params + 1:
        raise UserError(f"step 2 ({form}): {loss.size} points; it has {n_params} parameters and needs at least "
                        f"{n_params + 1}")
    if np.ptp(loss) <= 0:
        raise UserError(f"step 2 ({form}): every point has the same loss ({loss[0]:g}); the link needs a spread")
    return loss, y


@dataclass(frozen=True)
class Link:
    """Step 2's form: the downstream metric as a function of the loss."""

    name: str
    formula: str
    params: tuple[str, ...]
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    fit: Callable[..., np.ndarray]


LINKS = {
    "sigmoid": Link("sigmoid", "y = a / (1 + exp(-k (L - L0))) + b", SIGMOID_PARAMS, sigmoid, fit_sigmoid),
    "exponential": Link("exponential", "y = epsilon - k exp(-gamma L)", EXPONENTIAL_PARAMS, exponential,
                        fit_exponential),
}


def link_named(form: str) -> Link:
    if form not in LINKS:
        raise UserError(f"step 2: form {form!r}: expected one of {', '.join(LINKS)}")
    return LINKS[form]


def backtest_links(loss: np.ndarray, metric: np.ndarray, size: np.ndarray, final: np.ndarray,
                   forms: Sequence[str]) -> dict[str, Any]:
    """Each link fitted without the largest sizes (the 10% and 25% of the levels, at least 1 and 2, as the laws'
    backtests hold out), predicting the held-out sizes' final points from their measured loss: the errors
    (in the metric's units) per form, and the holdouts that left enough to fit."""
    from sweeper.laws.select import holdout_counts

    levels = distinct_levels(size)
    top = int(levels.max()) + 1
    counts = [k for k in holdout_counts(LawData(loss=loss, n=size), "n") if k < top]
    errors: dict[str, list[np.ndarray]] = {form: [] for form in forms}
    used = []
    for count in counts:
        train = levels < top - count
        test = ~train & final
        if not test.any():
            continue
        fitted = {}
        for form in forms:
            try:
                fitted[form] = LINKS[form].fit(loss[train], metric[train])
            except UserError:
                break  # too few points below this holdout for some form: compare the forms on the others
        else:
            used.append(count)
            for form, p in fitted.items():
                errors[form].append(LINKS[form].value(p, loss[test]) - metric[test])
    return {"holdouts": used, "errors": {form: np.concatenate(e) if e else np.empty(0) for form, e in errors.items()}}


# -- step 2 alone ---------------------------------------------------------------------------------------
@dataclass
class LinkFit:
    """Step 2 fitted on its own (loss -> metric), with bootstrap samples over runs and the points' scatter."""

    form: str
    params: dict[str, float]
    samples: np.ndarray | None
    scatter: float
    """Root mean square of the residuals: how far one run's metric lies from the curve at its own loss."""
    level: float
    loss_range: tuple[float, float]
    points: int
    metric: str | None = None
    spread: float | None = None
    """How far a new run's metric may lie from the curve at its loss: the root mean square error of the link's
    backtests (the largest sizes predicted from the rest), at least the scatter; None: the scatter."""
    backtest: dict[str, Any] | None = None
    loss: str | None = None
    """The loss the link was fitted on (a law predicting another loss cannot be chained through it)."""
    bootstrap: dict[str, int] | None = None
    """Replicates asked for and kept (a resample of fewer than two runs carries no spread and is skipped)."""

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.params[k] for k in link_named(self.form).params])

    def predict(self, loss: Any) -> np.ndarray:
        return link_named(self.form).value(self.vector, np.asarray(loss, dtype=float))

    def chain(self, loss: Prediction) -> Prediction:
        """The metric at a predicted loss, with an interval at this fit's level that combines, in quadrature on
        each side: the loss's own interval mapped through the curve, the curve's bootstrap spread at that loss,
        and the spread of single runs about the curve (``spread``: backtested, else the scatter). Quadrature
        treats the three as independent; the law and the link are fitted on the same runs, so this is an
        approximation. Without the loss's interval or the link's bootstrap the interval is missing (nan),
        not narrower."""
        from scipy.stats import norm

        if not np.isclose(loss.level, self.level):
            raise UserError(f"the loss's interval is at {loss.level:.0%} and the link's at {self.level:.0%}; "
                            "fit both at one level")
        value = self.predict(loss.value)
        ends = np.stack([self.predict(loss.lo), self.predict(loss.hi)])
        if self.samples is None or not np.all(np.isfinite(ends)):
            return Prediction(value, value * np.nan, value * np.nan, self.level)
        down = [value - ends.min(axis=0)]
        up = [ends.max(axis=0) - value]
        link = link_named(self.form)
        boot = np.stack([link.value(s, np.asarray(loss.value, dtype=float)) for s in self.samples])
        lo, hi = percentile_interval(boot, self.level)
        down.append(value - lo)
        up.append(hi - value)
        spread = self.scatter if self.spread is None else self.spread
        noise = np.full(np.shape(value), float(norm.ppf(0.5 + self.level / 2)) * spread)
        down.append(noise)
        up.append(noise)

        def side(parts: list[np.ndarray]) -> np.ndarray:
            return np.sqrt(np.sum([np.maximum(part, 0.0) ** 2 for part in parts], axis=0))

        return Prediction(value, value - side(down), value + side(up), self.level)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": LINK_FORMAT, "metric": self.metric, "form": self.form,
                               "formula": link_named(self.form).formula,
                               "params": self.params, "scatter": self.scatter, "points": self.points,
                               "loss_range": list(self.loss_range), "level": self.level, "spread": self.spread,
                               "backtest": self.backtest, "loss": self.loss, "bootstrap": self.bootstrap}
        if self.samples is not None:
            lo, hi = percentile_interval(self.samples, self.level)
            out["intervals"] = {k: [float(a), float(b)] for k, a, b in zip(self.params, lo, hi, strict=True)}
            out["samples"] = self.samples.tolist()
        return out

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> LinkFit:
        """A link written by :meth:`to_dict` (a ladder's ``laws/downstream.json``), checked field by field."""
        if not isinstance(raw, dict) or raw.get("format") != LINK_FORMAT:
            raise UserError(f"{source}: format: expected {LINK_FORMAT!r} (a link from loss to a downstream metric, "
                            "a ladder's laws/downstream.json), got "
                            f"{raw.get('format') if isinstance(raw, dict) else type(raw).__name__!r}")
        form = raw.get("form")
        if form not in LINKS:
            raise UserError(f"{source}: form: expected one of {', '.join(LINKS)}, got {form!r}")
        names = LINKS[form].params
        params = raw.get("params")
        if not isinstance(params, dict) or any(not _finite(params.get(k)) for k in names):
            raise UserError(f"{source}: params: expected finite numbers for {', '.join(names)}")
        if form == "exponential" and not params["gamma"] > 0:
            raise UserError(f"{source}: params.gamma: expected a decay rate > 0, got {params['gamma']!r}")
        samples = raw.get("samples")
        if samples is not None:
            try:
                samples = np.asarray(samples, dtype=float)
            except (TypeError, ValueError):
                samples = None
            if (samples is None or samples.ndim != 2 or samples.shape[1] != len(names) or samples.shape[0] == 0
                    or not np.all(np.isfinite(samples))):
                raise UserError(f"{source}: samples: expected one list of {len(names)} finite numbers "
                                f"({', '.join(names)}) per bootstrap replicate")
        scatter, level = raw.get("scatter", 0.0), raw.get("level")
        if not _finite(scatter) or scatter < 0:
            raise UserError(f"{source}: scatter: expected a number >= 0, got {scatter!r}")
        if not _finite(level) or not 0 < level < 1:
            raise UserError(f"{source}: level: expected a number between 0 and 1, got {level!r}")
        span = raw.get("loss_range")
        if not (isinstance(span, list) and len(span) == 2 and all(_finite(v) for v in span)):
            raise UserError(f"{source}: loss_range: expected [lowest, highest] loss of the fitted points")
        points = raw.get("points")
        if not isinstance(points, int) or isinstance(points, bool) or points < 1:
            raise UserError(f"{source}: points: expected a positive count, got {points!r}")
        metric = raw.get("metric")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise UserError(f"{source}: metric: expected the downstream metric's name, got {metric!r}")
        spread = raw.get("spread")
        if spread is not None and (not _finite(spread) or spread < 0):
            raise UserError(f"{source}: spread: expected a number >= 0, got {spread!r}")
        backtest = raw.get("backtest")
        if backtest is not None and not isinstance(backtest, dict):
            raise UserError(f"{source}: backtest: expected a mapping (the link's backtests), got {backtest!r}")
        loss = raw.get("loss")
        if loss is not None and (not isinstance(loss, str) or not loss):
            raise UserError(f"{source}: loss: expected the name of the loss the link was fitted on, got {loss!r}")
        return cls(form, {k: float(params[k]) for k in names}, samples, float(scatter), float(level),
                   (float(span[0]), float(span[1])), points, metric, None if spread is None else float(spread),
                   backtest, loss, raw.get("bootstrap") if isinstance(raw.get("bootstrap"), dict) else None)

    @classmethod
    def load(cls, path: str | Path) -> LinkFit:
        return cls.from_dict(read_fit_json(path, "a ladder's laws/downstream.json"), str(path))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def fit_link(loss: np.ndarray, metric: np.ndarray, run: np.ndarray | None = None, *, form: str = "exponential",
             bootstrap: int = 100, level: float = 0.9, seed: int = 0, name: str | None = None,
             size: np.ndarray | None = None, final: np.ndarray | None = None,
             loss_name: str | None = None) -> LinkFit:
    """Fit step 2 (``metric`` against ``loss``) and bootstrap it over ``run`` (every point its own run when
    None: checkpoints of one run share its fate, so pass the runs when points include checkpoints); ``name``
    is the metric's and ``loss_name`` the loss's, kept with the fit. A bootstrap needs at least 3 runs
    (else the link has no samples and its predictions no interval).

    With ``size`` (each point's model size) and ``final`` (whether it is its run's last point) the link is
    backtested (:func:`backtest_links`) and its ``spread`` is the backtests' root mean square error;
    ``form="auto"`` then keeps the link whose backtests erred least (mean absolute error)."""
    if form != "auto":
        link_named(form)
    loss, metric = np.asarray(loss, dtype=float), np.asarray(metric, dtype=float)
    ok = np.isfinite(loss) & np.isfinite(metric)
    loss, metric = loss[ok], metric[ok]
    run = np.arange(loss.size) if run is None else np.asarray(run)[ok]
    backtest, spread = None, None
    if size is not None and final is not None:
        forms = list(LINKS) if form == "auto" else [form]
        raw = backtest_links(loss, metric, np.asarray(size, dtype=float)[ok], np.asarray(final, dtype=bool)[ok], forms)
        errors = {f: e for f, e in raw["errors"].items() if e.size}
        backtest = {"holdouts": raw["holdouts"], "points": {f: int(e.size) for f, e in errors.items()},
                    "mean_abs_error": {f: float(np.mean(np.abs(e))) for f, e in errors.items()},
                    "rms_error": {f: float(np.sqrt(np.mean(e ** 2))) for f, e in errors.items()}}
        if form == "auto":
            if not errors:
                raise UserError("step 2 (auto): no backtest left enough points below the largest sizes to fit a "
                                "link; name the form (exponential or sigmoid)")
            form = min(errors, key=lambda f: backtest["mean_abs_error"][f])
            backtest["chosen"] = form
    elif form == "auto":
        raise UserError("step 2 (auto): choosing the link by backtest needs each point's model size and whether it "
                        "is its run's final point")
    link = link_named(form)
    p = link.fit(loss, metric)
    residuals = link.value(p, loss) - metric
    scatter = float(np.sqrt(np.sum(residuals ** 2) / max(1, loss.size - len(link.params))))
    if backtest is not None and form in backtest["rms_error"]:
        spread = max(scatter, backtest["rms_error"][form])
    samples, kept = None, 0
    groups = [np.flatnonzero(run == r) for r in np.unique(run)]
    if bootstrap > 0 and len(groups) >= 3:
        rng = np.random.default_rng(seed)
        drawn = []
        for _ in range(bootstrap):
            picked = rng.integers(0, len(groups), len(groups))
            index = np.concatenate([groups[g] for g in picked])
            if len(set(picked.tolist())) < 2 or np.ptp(loss[index]) <= 0 or index.size <= len(link.params):
                continue  # one run's points: no spread across runs to measure
            fitted = link.fit(loss[index], metric[index], start=p)
            if np.all(np.isfinite(fitted)):
                drawn.append(fitted)
        kept = len(drawn)
        samples = np.stack(drawn) if drawn else None
    return LinkFit(form, dict(zip(link.params, map(float, p), strict=True)), samples, scatter, level,
                   (float(loss.min()), float(loss.max())), int(loss.size), name, spread, backtest, loss_name,
                   {"replicates": bootstrap, "kept": kept})


# -- both steps ---------------------------------------------------------------------------------------------
@dataclass
class TwoStepFit:
    """Step 1 (a :class:`LawFit` on the loss) and step 2 (the link), with paired bootstrap samples."""

    loss_fit: LawFit
    step2: dict[str, float]
    samples: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    form: str = "sigmoid"

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.step2[k] for k in link_named(self.form).params])

    def predict(self, n: Any = None, d: Any = None, c: Any = None) -> dict[str, Prediction]:
        """The loss and the downstream metric at the given scale, each with its interval."""
        link = link_named(self.form)
        loss = self.loss_fit.prediction(n, d, c)
        value = link.value(self.vector, loss.value)
        level = self.loss_fit.level
        if self.samples is None or self.loss_fit.samples is None:
            return {"loss": loss, "downstream": Prediction(value, value * np.nan, value * np.nan, level)}
        inputs = self.loss_fit.inputs(n, d, c)
        from sweeper.laws.power import evaluate_law

        boot = np.stack([link.value(s2, evaluate_law(self.loss_fit.law, s1, inputs,
                                                     self.loss_fit.flops_per_token_param))
                         for s1, s2 in zip(self.loss_fit.samples, self.samples, strict=True)])
        lo, hi = percentile_interval(boot, level)
        return {"loss": loss, "downstream": Prediction(value, lo, hi, level)}

    def to_dict(self) -> dict[str, Any]:
        link = link_named(self.form)
        out = {"law": "two_step", "step1": self.loss_fit.to_dict(),
               "step2": {"form": self.form, "formula": link.formula, "params": self.step2}, "fit": self.info}
        if self.samples is not None:
            lo, hi = percentile_interval(self.samples, self.loss_fit.level)
            out["step2"]["intervals"] = {k: [float(a), float(b)] for k, a, b in zip(link.params, lo, hi, strict=True)}
            out["step2"]["samples"] = self.samples.tolist()
        return out


def fit_two_step(data: LawData, metric: str, *, law: str = "power", x: str | None = "flops",
                 step2: LawData | None = None, form: str = "sigmoid", bootstrap: int = 100, level: float = 0.95,
                 seed: int = 0, delta: float = HUBER_DELTA) -> TwoStepFit:
    """Fit compute -> loss -> ``metric`` (a column in ``data.extra``, and in ``step2.extra`` if given), step 2
    of the link ``form`` (``sigmoid`` or ``exponential``).

    ``data.loss`` is the loss. Runs are resampled together for both steps (the ``run`` labels of ``step2``
    must name the same runs as those of ``data``).
    """
    link = link_named(form)
    second = step2 if step2 is not None else data
    if metric not in second.extra:
        raise UserError(f"{second.source}: {metric}: not loaded; pass it in extra=[...]")
    loss_fit = fit_law(data, law, x, bootstrap=0, level=level, seed=seed, delta=delta)
    ok = np.isfinite(second.extra[metric])
    second = second.take(np.flatnonzero(ok))
    y = second.extra[metric]
    p2 = link.fit(second.loss, y)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # tiny problems: BLAS threads only cost
        samples1 = samples2 = None
        if bootstrap > 0:
            units = resampling_units(data, law, loss_fit.x, "run")
            rows2 = {r: np.flatnonzero(second.run == r) for r in np.unique(second.run)}
            rng = np.random.default_rng(seed)
            s1, s2 = [], []
            for _ in range(bootstrap):
                drawn = rng.integers(0, len(units), len(units))
                index = np.concatenate([units[u] for u in drawn])
                s1.append(refit(data.take(index), law, loss_fit.x, [loss_fit.vector], delta))
                runs = [data.run[units[u][0]] for u in drawn]
                picked = np.concatenate([rows2.get(r, np.empty(0, dtype=int)) for r in runs])
                if picked.size <= len(link.params):
                    raise UserError(f"{second.source}: the runs of step 2 do not match those of step 1")
                s2.append(link.fit(second.loss[picked], y[picked], start=p2))
            samples1, samples2 = np.stack(s1), np.stack(s2)
    loss_fit.samples = samples1
    loss_fit.bootstrap = {"replicates": bootstrap, "by": "run", "seed": seed}
    return TwoStepFit(loss_fit, dict(zip(link.params, map(float, p2), strict=True)), samples2,
                      {"step2_points": len(second), "metric": metric}, form)
