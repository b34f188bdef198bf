"""Loss curves under a learning-rate schedule: the LR-annealing scaling law of Tissue et al. 2024.

    L(s) = L0 + A * S1(s)^-alpha - C * S2(s)

with, for the per-step learning rates eta_1 .. eta_s of a run,

    S1(s) = sum_{i<=s} eta_i                              (forward area)
    S2(s) = sum_{i<=s} m_i,  m_i = lam * m_{i-1} + (eta_{i-1} - eta_i)   (annealing area, with momentum)

``lam`` (``decay``) is the paper's decay factor, 0.999 by default (0.99 - 0.999 in the paper): a drop in the
LR lowers the loss gradually, not at once. The LR rise of warmup is not annealing: differences before the
schedule first reaches its peak are left out of S2 (re-warming later in a run counts, negatively).

Fitted like the power laws (Huber loss, delta 1e-3, on log residuals): a grid over alpha with the linear
parameters (L0, A, C >= 0) solved by non-negative least squares, then trust-region refinement of the
exact objective. Uncertainty by a moving-block bootstrap of the log residuals (loss curves are
autocorrelated). A fit predicts the loss at any step of any schedule, e.g. the final loss of a run from
its early part (:func:`predict_final`), which :func:`early_stop` turns into a stop / go decision.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweeper.errors import UserError
from sweeper.laws.power import HUBER_DELTA, Prediction, huber, percentile_interval

DECAY = 0.999
ALPHA_GRID = np.geomspace(0.02, 3.0, 48)
PARAMS = ("L0", "A", "alpha", "C")


def lr_areas(lr: Sequence[float] | np.ndarray, decay: float = DECAY,
             warmup_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after every step of a per-step LR schedule (``lr[i]`` is the LR of step ``i + 1``).

    ``warmup_steps``: how many leading steps are warmup (their LR rises are not annealing); by default
    the steps before the schedule first reaches its maximum.
    """
    from scipy.signal import lfilter

    eta = np.asarray(lr, dtype=float)
    if eta.ndim != 1 or eta.size == 0 or not np.isfinite(eta).all() or (eta < 0).any():
        raise UserError("lr schedule: expected a non-empty sequence of non-negative learning rates, one per step")
    if not 0 <= decay < 1:
        raise UserError(f"decay: {decay}: expected 0 <= decay < 1")
    warm = int(np.argmax(eta)) if warmup_steps is None else int(warmup_steps)
    s1 = np.cumsum(eta)
    drop = np.zeros_like(eta)
    drop[1:] = eta[:-1] - eta[1:]
    drop[: warm + 1] = 0.0
    momentum = lfilter([1.0], [1.0, -decay], drop)
    return s1, np.cumsum(momentum)


def schedule_from_log(steps: Sequence[int] | np.ndarray, lr: Sequence[float] | np.ndarray,
                      total_steps: int | None = None) -> np.ndarray:
    """A per-step LR schedule from LRs logged at some steps (linear in between, flat beyond the ends)."""
    steps = np.asarray(steps, dtype=float)
    lr = np.asarray(lr, dtype=float)
    if steps.shape != lr.shape or steps.size == 0:
        raise UserError("lr log: expected as many logged learning rates as steps, at least one")
    order = np.argsort(steps, kind="stable")
    total = int(total_steps or steps.max())
    return np.interp(np.arange(1, total + 1), steps[order], lr[order])


@dataclass(frozen=True)
class Curve:
    """One run's loss curve: ``loss`` measured after ``steps`` (1-based) under the per-step schedule ``lr``.

    ``lr`` may run past the last measured step: the run's planned schedule, which predictions use.
    """

    steps: np.ndarray
    loss: np.ndarray
    lr: np.ndarray
    run: str = ""

    def __post_init__(self) -> None:
        steps = np.asarray(self.steps, dtype=int)
        loss = np.asarray(self.loss, dtype=float)
        lr = np.asarray(self.lr, dtype=float)
        where = f"curve {self.run}" if self.run else "curve"
        if steps.shape != loss.shape:
            raise UserError(f"{where}: steps and loss differ in length ({steps.size} vs {loss.size})")
        if steps.size and (steps.min() < 1 or steps.max() > lr.size):
            raise UserError(f"{where}: steps must lie in 1..{lr.size} (the schedule's length)")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "lr", lr)

    def upto(self, step: int) -> Curve:
        """The part of the curve measured up to ``step`` (the schedule stays whole)."""
        keep = self.steps <= step
        return Curve(self.steps[keep], self.loss[keep], self.lr, self.run)


@dataclass
class AnnealingFit:
    """A fitted LR-annealing law; predicts the loss at any step of any schedule, with intervals."""

    params: dict[str, float]
    objective: float
    n_points: int
    decay: float = DECAY
    warmup_steps: int | None = None
    samples: np.ndarray | None = None
    level: float = 0.95
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.params[k] for k in PARAMS])

    def predict(self, lr: Sequence[float] | np.ndarray, steps: Sequence[int] | np.ndarray | None = None,
                ) -> np.ndarray:
        """The loss after ``steps`` (default: every step) of the schedule ``lr``."""
        s1, s2 = self._areas(lr, steps)
        return _law(self.vector, s1, s2)

    def prediction(self, lr: Sequence[float] | np.ndarray,
                   steps: Sequence[int] | np.ndarray | None = None) -> Prediction:
        """As ``predict``, with the bootstrap interval of the law."""
        s1, s2 = self._areas(lr, steps)
        value = _law(self.vector, s1, s2)
        if self.samples is None or len(self.samples) == 0:
            return Prediction(value, value * np.nan, value * np.nan, self.level)
        lo, hi = percentile_interval(np.stack([_law(p, s1, s2) for p in self.samples]), self.level)
        return Prediction(value, lo, hi, self.level)

    def _areas(self, lr: Any, steps: Any) -> tuple[np.ndarray, np.ndarray]:
        s1, s2 = lr_areas(lr, self.decay, self.warmup_steps)
        if steps is None:
            return s1, s2
        idx = np.asarray(steps, dtype=int) - 1
        if idx.size and (idx.min() < 0 or idx.max() >= s1.size):
            raise UserError(f"steps: expected steps in 1..{s1.size} (the schedule's length)")
        return s1[idx], s2[idx]

    def to_dict(self) -> dict[str, Any]:
        lo_hi = {}
        if self.samples is not None and len(self.samples):
            lo, hi = percentile_interval(self.samples, self.level)
            lo_hi = {k: [float(a), float(b)] for k, a, b in zip(PARAMS, lo, hi, strict=True)}
        return {"law": "lr_annealing", "form": "L(s) = L0 + A * S1^-alpha - C * S2", "params": self.params,
                "intervals": lo_hi, "level": self.level, "decay": self.decay, "warmup_steps": self.warmup_steps,
                "n_points": self.n_points, "objective": self.objective, "fit": self.info}


def _law(p: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    l0, a, alpha, c = p
    return l0 + a * s1 ** -alpha - c * s2


class _CurveProblem:
    """Huber loss on log residuals of the annealing law over the points of one or more curves."""

    def __init__(self, s1: np.ndarray, s2: np.ndarray, loss: np.ndarray, delta: float):
        self.s1, self.s2, self.loss, self.delta = s1, s2, loss, delta
        self.logs1 = np.log(s1)
        self.logy = np.log(loss)
        self.lower = np.zeros(4)
        self.upper = np.array([np.inf, np.inf, 10.0, np.inf])

    def _pred(self, p: np.ndarray) -> np.ndarray:
        return np.maximum(_law(p, self.s1, self.s2), 1e-12)

    def residuals(self, p: np.ndarray) -> np.ndarray:
        return np.log(self._pred(p)) - self.logy

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        l0, a, alpha, c = p
        power = self.s1 ** -alpha
        cols = np.column_stack([np.ones_like(power), power, -a * power * self.logs1, -self.s2])
        return cols / self._pred(p)[:, None]

    def objective(self, p: np.ndarray) -> float:
        return float(huber(self.residuals(p), self.delta))

    def grid_starts(self, grid: np.ndarray, n_starts: int) -> list[np.ndarray]:
        from scipy.optimize import nnls

        w = 1.0 / self.loss
        scores, coefs = [], []
        for alpha in grid:
            design = np.column_stack([np.ones_like(self.s1), self.s1 ** -alpha, -self.s2])
            coef, _ = nnls(design * w[:, None], np.ones_like(w))
            p = np.array([coef[0], coef[1], alpha, coef[2]])
            coefs.append(p)
            scores.append(self.objective(p))
        scores = np.asarray(scores)
        local = [i for i in range(len(grid)) if scores[i] <= scores[max(i - 1, 0)] and
                 scores[i] <= scores[min(i + 1, len(grid) - 1)]]
        order = sorted(local, key=lambda i: scores[i])
        order += [i for i in np.argsort(scores, kind="stable") if i not in order]
        return [coefs[i] for i in order[:n_starts]]

    def refine(self, p0: np.ndarray) -> tuple[np.ndarray, float]:
        from scipy.optimize import least_squares

        p0 = np.clip(p0, self.lower + 1e-12, self.upper - 1e-9)
        res = least_squares(self.residuals, p0, jac=self.jacobian, bounds=(self.lower, self.upper), loss="huber",
                            f_scale=self.delta, method="trf", x_scale="jac", ftol=1e-12, xtol=1e-12,
                            gtol=1e-12, max_nfev=5000)
        return res.x, self.objective(res.x)


def fit_annealing(curves: Curve | Sequence[Curve], *, decay: float = DECAY, warmup_steps: int | None = None,
                  delta: float = HUBER_DELTA, bootstrap: int = 100, level: float = 0.95, seed: int = 0,
                  n_starts: int = 4) -> AnnealingFit:
    """Fit L0, A, alpha, C of the LR-annealing law to one or more curves (shared parameters).

    Fitting a curve with a constant LR alone leaves C undetermined (S2 is 0): fit a curve that anneals,
    or two runs (e.g. constant and cosine), as the paper does.
    """
    curves = [curves] if isinstance(curves, Curve) else list(curves)
    s1, s2, loss, block = [], [], [], []
    for i, cv in enumerate(curves):
        a1, a2 = lr_areas(cv.lr, decay, warmup_steps)
        ok = np.isfinite(cv.loss)
        if (~ok).any():
            warnings.warn(f"curve {cv.run or i}: dropped {int((~ok).sum())} of {ok.size} points whose loss is NaN",
                          UserWarning, stacklevel=2)
        if (cv.loss[ok] <= 0).any():
            raise UserError(f"curve {cv.run or i}: losses must be positive")
        idx = cv.steps[ok] - 1
        if (a1[idx] <= 0).any():
            raise UserError(f"curve {cv.run or i}: the learning rate is 0 up to a measured step; S1 must be positive")
        s1.append(a1[idx])
        s2.append(a2[idx])
        loss.append(cv.loss[ok])
        block.append(np.full(ok.sum(), i))
    s1, s2, loss = np.concatenate(s1), np.concatenate(s2), np.concatenate(loss)
    if loss.size < 5:
        raise UserError(f"loss curves: {loss.size} points; the annealing law has 4 parameters and needs at least 5")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # tiny problems: BLAS threads only cost
        problem = _CurveProblem(s1, s2, loss, delta)
        starts = problem.grid_starts(ALPHA_GRID, n_starts)
        best, f_best = min((problem.refine(p) for p in starts), key=lambda t: t[1])
        samples = None
        if bootstrap > 0:
            samples = _block_bootstrap(problem, best, np.concatenate(block), bootstrap, seed)
    annealed = float(np.ptp(s2)) > 0
    info = {"starts": len(starts), "bootstrap": bootstrap, "curves": len(curves)}
    if not annealed:
        info["warning"] = "no LR annealing in the data: C is not determined (set to its lower bound 0)"
    return AnnealingFit(dict(zip(PARAMS, map(float, best), strict=True)), f_best, int(loss.size), decay, warmup_steps,
                        samples, level, info)


def _block_bootstrap(problem: _CurveProblem, best: np.ndarray, curve_of: np.ndarray, replicates: int,
                     seed: int) -> np.ndarray:
    """Refit on the fitted curve plus log residuals resampled in moving blocks (within each curve)."""
    rng = np.random.default_rng(seed)
    fitted = np.log(np.maximum(_law(best, problem.s1, problem.s2), 1e-12))
    resid = problem.logy - fitted
    out = np.empty((replicates, 4))
    groups = [np.flatnonzero(curve_of == g) for g in np.unique(curve_of)]
    for b in range(replicates):
        new = np.empty_like(resid)
        for idx in groups:
            n = idx.size
            length = max(1, round(n ** (1 / 3)))
            starts = rng.integers(0, n - length + 1, size=-(-n // length))
            take = (starts[:, None] + np.arange(length)).ravel()[:n]
            new[idx] = resid[idx][take]
        rep = _CurveProblem(problem.s1, problem.s2, np.exp(fitted + new), problem.delta)
        out[b] = rep.refine(best)[0]
    return out


def predict_final(prefix: Curve, **fit_kwargs: Any) -> tuple[Prediction, AnnealingFit]:
    """Fit the law on a run's curve so far and predict its loss at the end of its planned schedule."""
    fit = fit_annealing(prefix, **fit_kwargs)
    return fit.prediction(prefix.lr, [prefix.lr.size]), fit


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop a run: ``stop`` when even the optimistic end of its predicted final loss is worse
    than ``threshold``; ``predicted`` is None when too little of the run has been seen to predict."""

    stop: bool
    reason: str
    threshold: float
    predicted: Prediction | None = None


def early_stop(prefix: Curve, best_final: float, *, margin: float = 0.0, min_points: int = 8,
               min_annealed: float = 0.25, **fit_kwargs: Any) -> StopDecision:
    """Decide whether a running trial is predicted to lose to ``best_final`` (the best final loss so far).

    Stops when the lower end of the predicted final-loss interval exceeds ``best_final * (1 + margin)``.
    Never stops on too few points, nor before the run has seen ``min_annealed`` of its schedule's final
    annealing area S2: the annealing drop C * S2 is not identified from a curve with little annealing
    (on law-drawn cosine curves, 7% of S2 seen gave a 9% error outside the interval; half of the run, 0.5%).
    """
    threshold = best_final * (1.0 + margin)
    if prefix.loss.size < min_points:
        return StopDecision(False, f"{prefix.loss.size} points so far; need {min_points}", threshold)
    _, s2 = lr_areas(prefix.lr, fit_kwargs.get("decay", DECAY), fit_kwargs.get("warmup_steps"))
    seen = s2[prefix.steps.max() - 1]
    if s2[-1] > 0 and seen < min_annealed * s2[-1]:
        return StopDecision(False, f"the run has seen {seen / s2[-1]:.0%} of its LR annealing (needs "
                            f"{min_annealed:.0%}); its final drop cannot be predicted yet", threshold)
    pred, _ = predict_final(prefix, **fit_kwargs)
    lo = float(np.ravel(pred.lo)[0]) if np.isfinite(np.ravel(pred.lo)[0]) else float(np.ravel(pred.value)[0])
    stop = lo > threshold
    verdict = "worse than" if stop else "may beat"
    return StopDecision(stop, f"predicted final loss {float(np.ravel(pred.value)[0]):.4g} (low end {lo:.4g}) "
                              f"{verdict} {threshold:.4g}", threshold, pred)


def curves_from_reports(reports: Any, loss: str, lr: str = "m.lr", total_steps: str | None = None,
                        source: str = "reports") -> list[Curve]:
    """Loss curves from report rows (``trial_id``, ``step``, ``loss``, ``lr``; one attempt per trial), each
    schedule rebuilt from the logged LR (``lr`` column)."""
    import polars as pl

    for col in (loss, lr):
        if col not in reports.columns:
            raise UserError(f"{source}: {col}: no such column")
    out = []
    for (trial,), part in reports.group_by(["trial_id"], maintain_order=True):
        part = part.sort("step")
        steps = part["step"].to_numpy()
        total = int(part[total_steps].max()) if total_steps else int(steps.max())
        sched = schedule_from_log(steps, part[lr].cast(pl.Float64).to_numpy(), total)
        out.append(Curve(steps, part[loss].cast(pl.Float64).to_numpy(), sched, str(trial)))
    return out
