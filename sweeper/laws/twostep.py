"""Two-step prediction of a downstream metric, as in the OLMo 2 ladder (Bhagia et al. 2024) and DataDecide
(Magnusson et al. 2025):

1. compute (or N and D) -> task loss: a power law with an irreducible term (:mod:`sweeper.laws.power`);
2. task loss -> accuracy: a sigmoid  ``acc = a / (1 + exp(-k (L - L0))) + b``.

The prediction chains the two. Both steps are refitted on the same bootstrap resamples of runs, so the
interval of the accuracy carries the uncertainty of both. Step 2 may use more points than step 1 (the
ladder fits it on intermediate checkpoints too): pass them as ``step2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweeper.errors import UserError
from sweeper.laws.data import LawData
from sweeper.laws.power import (
    HUBER_DELTA,
    LawFit,
    Prediction,
    fit_law,
    percentile_interval,
    refit,
    resampling_units,
)

SIGMOID_PARAMS = ("a", "b", "k", "L0")


def sigmoid(p: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """``a / (1 + exp(-k (L - L0))) + b`` for parameters ``p = [a, b, k, L0]``."""
    a, b, k, l0 = p
    return a / (1.0 + np.exp(np.clip(-k * (np.asarray(loss) - l0), -50.0, 50.0))) + b


def fit_sigmoid(loss: np.ndarray, acc: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Least-squares fit of the sigmoid from a small grid of starts (or from ``start``); returns [a, b, k, L0]."""
    from scipy.optimize import least_squares

    loss, acc = np.asarray(loss, dtype=float), np.asarray(acc, dtype=float)
    if loss.size < 5:
        raise UserError(f"accuracy: {loss.size} points; the sigmoid has 4 parameters and needs at least 5")
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


@dataclass
class TwoStepFit:
    """Step 1 (a :class:`LawFit` on task loss) and step 2 (the sigmoid), with paired bootstrap samples."""

    loss_fit: LawFit
    sigmoid: dict[str, float]
    samples: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.sigmoid[k] for k in SIGMOID_PARAMS])

    def predict(self, n: Any = None, d: Any = None, c: Any = None) -> dict[str, Prediction]:
        """The task loss and the accuracy at the given scale, each with its interval."""
        loss = self.loss_fit.prediction(n, d, c)
        value = sigmoid(self.vector, loss.value)
        level = self.loss_fit.level
        if self.samples is None or self.loss_fit.samples is None:
            return {"loss": loss, "accuracy": Prediction(value, value * np.nan, value * np.nan, level)}
        inputs = self.loss_fit.inputs(n, d, c)
        from sweeper.laws.power import evaluate_law

        boot = np.stack([sigmoid(s2, evaluate_law(self.loss_fit.law, s1, inputs, self.loss_fit.flops_per_token_param))
                         for s1, s2 in zip(self.loss_fit.samples, self.samples, strict=True)])
        lo, hi = percentile_interval(boot, level)
        return {"loss": loss, "accuracy": Prediction(value, lo, hi, level)}

    def to_dict(self) -> dict[str, Any]:
        out = {"law": "two_step", "step1": self.loss_fit.to_dict(),
               "step2": {"form": "acc = a / (1 + exp(-k (L - L0))) + b", "params": self.sigmoid}, "fit": self.info}
        if self.samples is not None:
            lo, hi = percentile_interval(self.samples, self.loss_fit.level)
            out["step2"]["intervals"] = {k: [float(a), float(b)]
                                         for k, a, b in zip(SIGMOID_PARAMS, lo, hi, strict=True)}
            out["step2"]["samples"] = self.samples.tolist()
        return out


def fit_two_step(data: LawData, accuracy: str, *, law: str = "power", x: str | None = "flops",
                 step2: LawData | None = None, bootstrap: int = 100, level: float = 0.95, seed: int = 0,
                 delta: float = HUBER_DELTA) -> TwoStepFit:
    """Fit compute -> task loss -> ``accuracy`` (a column in ``data.extra``, and in ``step2.extra`` if given).

    ``data.loss`` is the task loss. Runs are resampled together for both steps (the ``run`` labels of
    ``step2`` must name the same runs as those of ``data``).
    """
    second = step2 if step2 is not None else data
    if accuracy not in second.extra:
        raise UserError(f"{second.source}: {accuracy}: not loaded; pass it in extra=[...]")
    loss_fit = fit_law(data, law, x, bootstrap=0, level=level, seed=seed, delta=delta)
    acc = second.extra[accuracy]
    ok = np.isfinite(acc)
    second = second.take(np.flatnonzero(ok))
    p2 = fit_sigmoid(second.loss, second.extra[accuracy])
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
                if picked.size < 5:
                    raise UserError(f"{second.source}: the runs of step 2 do not match those of step 1")
                s2.append(fit_sigmoid(second.loss[picked], second.extra[accuracy][picked], start=p2))
            samples1, samples2 = np.stack(s1), np.stack(s2)
    loss_fit.samples = samples1
    loss_fit.bootstrap = {"replicates": bootstrap, "by": "run", "seed": seed}
    return TwoStepFit(loss_fit, dict(zip(SIGMOID_PARAMS, map(float, p2), strict=True)), samples2,
                      {"step2_points": len(second), "accuracy": accuracy})
