"""Power laws with an irreducible term, fitted as the reference work does, with bootstrap intervals.

Laws (``law``):

- ``power``:      L = E + A * x^-alpha            (x = N, D or C)
- ``chinchilla``: L = E + A / N^alpha + B / D^beta
- ``overtrain``:  L = E + (a M^eta + b M^-eta) C^-eta, M = D/N the token multiplier, C = k N D
  (Gadre et al. 2024, "Language models scale reliably with over-training and on downstream tasks"): the
  Chinchilla form with one exponent for N and D (alpha = beta = 2 eta), written in compute and token
  multiplier; as a sum of powers it is a (k N^2)^-eta + b (k D^2)^-eta, fitted as the others are with the
  two terms' exponents tied. Four parameters instead of five: steadier when few sizes and budgets are known.

Objective, as in Hoffmann et al. 2022 and Besiroglu et al. 2024: the sum over points of the Huber loss
(delta 1e-3) of the log-residual ``r = LSE(e, a - alpha log N, b - beta log D) - log L``, where
E = exp(e), A = exp(a), B = exp(b); so E, A, B stay positive and the residuals are relative errors.

Optimiser (the global optimum of that objective, fast):

1. *Variable projection over an exponent grid.* For fixed exponents the law is linear in (E, A, B): one
   weighted least-squares solve per grid cell (weights 1/L, so the residuals are relative, as log
   residuals are) gives the coefficients of every cell at once, from a few matrix products. Every cell
   is then scored by the exact objective.
2. *Local refinement on the exact objective* from the best local minima of that profile (8 starts):
   trust-region robust least squares (``scipy.optimize.least_squares(loss="huber", f_scale=delta)``,
   whose cost is exactly this Huber sum), or L-BFGS-B with the analytic gradient (``optimizer="lbfgs"``,
   the reference's method). With delta = 1e-3 the objective is nearly piecewise linear in the residuals;
   the Gauss-Newton steps of TRF handle that better than L-BFGS (bench/laws.py: fewer misses, faster).

Parameters are bounded only where a fit degenerates (an exponent above MAX_EXPONENT, a term below
MIN_TERM of the smallest loss); a fit that ends on a bound is flagged (``info["at_bounds"]`` and a
warning): those points do not determine the law.

Uncertainty: a bootstrap over runs (or over model sizes): whole runs are resampled with replacement and
the law refitted; every parameter and every prediction comes with a percentile interval.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.atomic import write_text_atomic
from sweeper.errors import ParameterError, UserError
from sweeper.laws.data import FLOPS_PER_TOKEN_PARAM, LawData, distinct_levels, split_largest

HUBER_DELTA = 1e-3
EXPONENT_GRID = np.geomspace(0.01, 3.0, 40)
"""Exponents tried by the variable-projection stage (log-spaced: compute exponents of ~0.05 and data
exponents of ~1 are both resolved to about 15%)."""
MAX_EXPONENT = 5.0
MIN_TERM = 1e-4
"""E, and each power term at the geometric mean of its variable, are bounded below by MIN_TERM * min(L)."""
FORMAT = "sweeper.law/1"

LAWS = ("power", "chinchilla", "overtrain")
ND_LAWS = ("chinchilla", "overtrain")
"""Laws in model size N and tokens D (with a compute-optimal allocation)."""
X_NAMES = {"flops": "c", "tokens": "d", "n": "n"}
"""``--x`` names of the power law's variable and the data variable behind each."""
_VAR_TO_X = {v: k for k, v in X_NAMES.items()}


# --------------------------------------------------------------------------------------------------
# The objective and its minimiser, for L = E + sum_k A_k x_k^-alpha_k
# --------------------------------------------------------------------------------------------------
def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss of residuals ``r`` (quadratic within ``delta``, linear beyond), summed over the last axis."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)).sum(axis=-1)


def neighbourhood_min(a: np.ndarray) -> np.ndarray:
    """The minimum over each cell's 3^k neighbourhood, edges repeated: scipy.ndimage's
    ``minimum_filter(a, size=3, mode="nearest")``, without the 0.3 s its import adds to every CLI fit."""
    out = a
    for axis in range(a.ndim):
        pad = [(1, 1) if i == axis else (0, 0) for i in range(a.ndim)]
        p, n = np.pad(out, pad, mode="edge"), a.shape[axis]
        out = np.minimum(np.minimum(p.take(np.arange(n), axis), p.take(np.arange(1, n + 1), axis)),
                         p.take(np.arange(2, n + 2), axis))
    return out


class PowerSumProblem:
    """Fit ``log L = LSE(e, a_k - alpha_k * z_k)`` to points, ``z_k`` the centred log of each variable.

    Internal parameters ``theta = [e, a_1..a_K, alpha_1..alpha_K]`` with the logs centred (``a_k`` is the
    log-coefficient at the geometric mean of ``x_k``), which decorrelates a_k from alpha_k; ``natural``
    converts to ``[E, A_1..A_K, alpha_1..alpha_K]``.
    """

    def __init__(self, logx: np.ndarray, loss: np.ndarray, delta: float = HUBER_DELTA, tied: bool = False):
        logx = np.asarray(logx, dtype=float)
        self.logx = logx.reshape(len(loss), -1)
        self.K = self.logx.shape[1]
        self.tied = tied  # one exponent for every term
        self.n_exp = 1 if tied else self.K
        self.x0 = self.logx.mean(axis=0)
        self.z = self.logx - self.x0
        self.loss = np.asarray(loss, dtype=float)
        self.logy = np.log(self.loss)
        self.delta = delta
        self._cache: tuple[bytes, np.ndarray, np.ndarray] | None = None
        k = self.K
        # Bounds keep degenerate fits finite (a term that vanishes stops at 1e-4 of the smallest loss, an
        # exponent at MAX_EXPONENT) instead of crawling off to infinity; ``at_bounds`` reports them.
        floor = np.log(self.loss.min()) + np.log(MIN_TERM)
        self.lower = np.r_[floor, np.full(k, floor), np.zeros(self.n_exp)]
        self.upper = np.r_[np.log(self.loss.max()), np.full(k, np.inf), np.full(self.n_exp, MAX_EXPONENT)]

    # -- parameterisation --------------------------------------------------------------------------
    def _exponents(self, theta: np.ndarray) -> np.ndarray:
        """One exponent per term (the tied one repeated)."""
        k = self.K
        return np.repeat(theta[1 + k:], k) if self.tied else theta[1 + k:]

    def natural(self, theta: np.ndarray) -> np.ndarray:
        k = self.K
        e, a = theta[0], theta[1:1 + k]
        return np.r_[np.exp(e), np.exp(a + self._exponents(theta) * self.x0), theta[1 + k:]]

    def internal(self, natural: np.ndarray) -> np.ndarray:
        k = self.K
        e, a, alpha = natural[0], natural[1:1 + k], natural[1 + k:]
        per_term = np.repeat(alpha, k) if self.tied else alpha
        with np.errstate(divide="ignore"):
            theta = np.r_[np.log(e), np.log(a) - per_term * self.x0, alpha]
        return np.clip(theta, self.lower + 1e-9, self.upper - 1e-9)

    # -- objective ---------------------------------------------------------------------------------
    def _softmax(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log-sum-exp of the terms and their softmax weights (cached: the optimisers ask for the residuals
        and the Jacobian at the same point one after the other)."""
        key = theta.tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        k = self.K
        t = np.empty((k + 1, len(self.logy)))
        t[0] = theta[0]
        t[1:] = theta[1:1 + k, None] - self._exponents(theta)[:, None] * self.z.T
        m = t.max(axis=0)
        w = np.exp(t - m)
        total = w.sum(axis=0)
        lse = m + np.log(total)
        w /= total
        self._cache = (key, lse, w)
        return lse, w

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return self._softmax(theta)[0] - self.logy

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        w = self._softmax(theta)[1]
        d_exp = -(w[1:].T * self.z)
        if self.tied:
            d_exp = d_exp.sum(axis=1, keepdims=True)
        return np.column_stack([w.T, d_exp])

    def objective(self, theta: np.ndarray) -> float:
        return float(huber(self.residuals(theta), self.delta))

    def at_bounds(self, theta: np.ndarray, names: Sequence[str]) -> list[str]:
        """Names of the parameters that sit on a bound: the data do not determine them."""
        near = (theta - self.lower < 1e-4) | (self.upper - theta < 1e-4)
        return [name for name, hit in zip(names, near, strict=True) if hit]

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        r = self.residuals(theta)
        psi = np.clip(r, -self.delta, self.delta)
        return float(huber(r, self.delta)), self.jacobian(theta).T @ psi

    # -- global stage: variable projection over an exponent grid ----------------------------------
    def grid_starts(self, grid: np.ndarray = EXPONENT_GRID, n_starts: int = 8,
                    chunk_bytes: int = 32 << 20) -> list[np.ndarray]:
        """The best local minima (then the best cells) of the objective profiled over an exponent grid."""
        k, g, n = self.K, len(grid), len(self.loss)
        feats = [np.exp(-np.outer(grid, self.z[:, j])) for j in range(k)]          # (g, n) each
        w = 1.0 / self.loss
        w2 = w * w
        index = ([np.arange(g)] * k if self.tied
                 else [ix.ravel() for ix in np.meshgrid(*[np.arange(g)] * k, indexing="ij")])
        cells = len(index[0])
        gram = np.empty((cells, k + 1, k + 1))
        rhs = np.empty((cells, k + 1))
        gram[:, 0, 0] = w2.sum()
        rhs[:, 0] = w.sum()
        for i in range(k):
            gram[:, 0, i + 1] = gram[:, i + 1, 0] = (feats[i] @ w2)[index[i]]
            rhs[:, i + 1] = (feats[i] @ w)[index[i]]
            for j in range(i, k):
                cross = (feats[i] * w2) @ feats[j].T
                gram[:, i + 1, j + 1] = gram[:, j + 1, i + 1] = cross[index[i], index[j]]
        scale = np.sqrt(np.einsum("cii->ci", gram))
        coef = np.linalg.solve(gram / scale[:, :, None] / scale[:, None, :], (rhs / scale)[..., None])[..., 0]
        coef = np.maximum(coef / scale, 1e-9 * self.loss.mean())
        # Score every cell by the exact objective (in chunks: cells x points can be large).
        score = np.empty(cells)
        step = max(1, chunk_bytes // (8 * n))
        for lo in range(0, cells, step):
            sl = slice(lo, lo + step)
            pred = np.broadcast_to(coef[sl, :1], (len(coef[sl]), n)).copy()
            for i in range(k):
                pred += coef[sl, i + 1, None] * feats[i][index[i][sl]]
            score[sl] = huber(np.log(pred) - self.logy, self.delta)
        profile = score.reshape((g,) * (1 if self.tied else k))
        local = np.flatnonzero((neighbourhood_min(profile) == profile).ravel())
        order = list(local[np.argsort(score[local], kind="stable")])
        order += [c for c in np.argsort(score, kind="stable")[: n_starts] if c not in set(order)]
        starts = []
        for c in order[:n_starts]:
            alpha = grid[[index[i][c] for i in range(self.n_exp)]]
            starts.append(np.r_[np.log(coef[c, 0]), np.log(coef[c, 1:]), alpha])
        return starts

    # -- local stage ---------------------------------------------------------------------------------
    def refine(self, theta0: np.ndarray, optimizer: str = "trf") -> tuple[np.ndarray, float]:
        """Minimise the exact objective from ``theta0``; returns (theta, objective)."""
        theta0 = np.clip(theta0, self.lower + 1e-9, self.upper - 1e-9)
        if optimizer == "trf":
            from scipy.optimize import least_squares

            res = least_squares(self.residuals, theta0, jac=self.jacobian, bounds=(self.lower, self.upper),
                                loss="huber", f_scale=self.delta, method="trf", x_scale="jac",
                                ftol=1e-10, xtol=1e-10, gtol=1e-10, max_nfev=500)
            theta = res.x
        elif optimizer == "lbfgs":
            from scipy.optimize import minimize

            res = minimize(self.value_and_grad, theta0, jac=True, method="L-BFGS-B",
                           bounds=list(zip(self.lower, self.upper, strict=True)),
                           options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-10})
            theta = res.x
        else:
            raise UserError(f"optimizer: {optimizer!r}: expected 'trf' or 'lbfgs'")
        return theta, self.objective(theta)


@dataclass
class Optimum:
    """The minimiser: natural parameters, objective, how many starts reached it, other local optima."""

    natural: np.ndarray
    objective: float
    starts: int
    agree: int
    others: list[np.ndarray] = field(default_factory=list)
    theta: np.ndarray | None = None


def minimise(problem: PowerSumProblem, starts: Sequence[np.ndarray], optimizer: str = "trf") -> Optimum:
    """Refine from every start (internal parameters); the best is the optimum, distinct others are kept."""
    results = sorted((problem.refine(s, optimizer) for s in starts),
                     key=lambda t: t[1] if np.isfinite(t[1]) else np.inf)
    best_theta, best = results[0]
    tol = 1e-7 * max(best, 1e-12) + 1e-13
    agree = sum(f <= best + tol for _, f in results)
    others: list[np.ndarray] = []
    k = problem.K
    for theta, f in results[1:]:
        distinct = all(np.abs(theta[1 + k:] - t[1 + k:]).max() > 1e-3 for t in [best_theta, *others])
        if f > best + tol and distinct and len(others) < 3:
            others.append(theta)
    return Optimum(problem.natural(best_theta), best, len(results), agree,
                   [problem.natural(t) for t in others], best_theta)


# --------------------------------------------------------------------------------------------------
# Laws on LawData
# --------------------------------------------------------------------------------------------------
def param_names(law: str) -> tuple[str, ...]:
    return {"chinchilla": ("E", "A", "B", "alpha", "beta"), "overtrain": ("E", "a", "b", "eta")}.get(
        law, ("E", "A", "alpha"))


def _law_vars(law: str, x: str | None) -> tuple[str, ...]:
    if law in ND_LAWS:
        return ("n", "d")
    if law == "power":
        return (X_NAMES[x or "flops"],)
    raise ParameterError("law", f"{law!r}: expected one of {', '.join(LAWS)}")


def check_points(data: LawData, law: str, x: str | None = None) -> None:
    """UserError unless the data can identify the law: enough points and distinct values of each variable."""
    n_params = len(param_names(law))
    if len(data) < n_params + 1:
        raise UserError(f"{data.source}: {len(data)} points after cleaning; the {law} law has {n_params} "
                        f"parameters and needs at least {n_params + 1}")
    for var in _law_vars(law, x):
        levels = int(distinct_levels(data.get(var)).max()) + 1
        if levels < 3:
            raise UserError(f"{data.source}: {data.columns.get(var, var)}: {levels} distinct values; the {law} "
                            f"law needs at least 3 to separate the exponent from the constant")


@dataclass(frozen=True)
class Prediction:
    """A prediction with its bootstrap percentile interval (``lo``, ``hi`` at ``level``). The interval always
    holds the prediction: where the refits of the resampled runs all land on one side of the fit to every run
    (a fit at the edge of its bootstrap, as a tiny ladder's can be), the bound on the other side is stretched to
    the prediction rather than reporting a prediction outside its own interval. A missing interval (nan) stays
    missing."""

    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float

    def __post_init__(self) -> None:
        value, lo, hi = (np.asarray(a, dtype=float) for a in (self.value, self.lo, self.hi))
        with np.errstate(invalid="ignore"):
            object.__setattr__(self, "lo", np.where(np.isnan(lo), lo, np.minimum(lo, value)))
            object.__setattr__(self, "hi", np.where(np.isnan(hi), hi, np.maximum(hi, value)))

    def to_dict(self) -> dict[str, Any]:
        def out(a: np.ndarray) -> Any:
            a = np.asarray(a, dtype=float)
            clean = np.where(np.isfinite(a), a, np.nan).astype(object)
            clean[~np.isfinite(a)] = None  # JSON has no NaN: no bootstrap, no interval
            return clean.item() if a.ndim == 0 else clean.tolist()

        return {"value": out(self.value), "interval": [out(self.lo), out(self.hi)], "level": self.level}


@dataclass
class LawFit:
    """A fitted law: parameters, bootstrap samples and intervals; predicts with intervals; saves as JSON."""

    law: str
    params: dict[str, float]
    objective: float
    n_points: int
    n_runs: int
    x: str | None = None
    samples: np.ndarray | None = None
    level: float = 0.95
    delta: float = HUBER_DELTA
    flops_per_token_param: float = FLOPS_PER_TOKEN_PARAM
    bootstrap: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None
    noise: float | None = None
    """Robust scale (1.4826 MAD) of the log residuals at the optimum: one run's scatter about the law."""
    misfit: dict[str, Any] | None = None
    """The extrapolation error of the choice of form, from leave-largest-out backtests (``law="auto"``,
    `select.chosen_errors`): ``floor`` and ``rate`` (the log error's standard deviation just beyond the data,
    and its growth per unit of log extrapolation: `select.misfit_model`), ``by`` (``n``, ``d`` or ``c``) and
    ``fitted_max`` (the largest value of it fitted). A prediction at ``x`` beyond ``fitted_max`` adds
    ``hypot(floor, rate x log(x / fitted_max))`` to the bootstrap's spread in quadrature, so that intervals
    cover a form that bends the wrong way, not only noise."""

    @property
    def names(self) -> tuple[str, ...]:
        return param_names(self.law)

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.params[k] for k in self.names])

    @property
    def form(self) -> str:
        if self.law == "chinchilla":
            return "L = E + A / N^alpha + B / D^beta"
        if self.law == "overtrain":
            return f"L = E + (a M^eta + b M^-eta) C^-eta, M = D/N, C = {self.flops_per_token_param:g} N D"
        return f"L = E + A * {self.x or 'flops'}^-alpha"

    def nd_vector(self, vector: np.ndarray | None = None) -> np.ndarray:
        """A law in N and D as Chinchilla parameters ``[E, A, B, alpha, beta]`` (the fit's, or ``vector``)."""
        return chinchilla_vector(self.law, self.vector if vector is None else vector, self.flops_per_token_param)

    @property
    def intervals(self) -> dict[str, list[float]]:
        if self.samples is None or len(self.samples) == 0:
            return {}
        lo, hi = percentile_interval(self.samples, self.level)
        return {k: [float(a), float(b)] for k, a, b in zip(self.names, lo, hi, strict=True)}

    # -- prediction ------------------------------------------------------------------------------------
    def inputs(self, n: Any = None, d: Any = None, c: Any = None) -> tuple[np.ndarray, ...]:
        """The law's variables from whichever of N, D, C are given (C = k N D fills a missing one)."""
        n, d, c = (None if v is None else np.asarray(v, dtype=float) for v in (n, d, c))
        k = self.flops_per_token_param
        if n is None and d is not None and c is not None:
            n = c / (k * d)
        if d is None and n is not None and c is not None:
            d = c / (k * n)
        if c is None and n is not None and d is not None:
            c = k * n * d
        values = {"n": n, "d": d, "c": c}
        need = _law_vars(self.law, self.x)
        missing = [v for v in need if values[v] is None]
        if missing:
            flags = {"n": "--n", "d": "--d", "c": "--c"}
            raise UserError(f"{self.law} law: give {' and '.join(flags[v] for v in need)} "
                            f"(or enough of --n, --d, --c to derive them with C = {k:g} N D)")
        for v in need:
            if np.any(values[v] <= 0):
                raise UserError(f"{flags_of(v)}: must be positive")
        return tuple(values[v] for v in need)

    def predict(self, n: Any = None, d: Any = None, c: Any = None) -> np.ndarray:
        """The point prediction of the loss."""
        return evaluate_law(self.law, self.vector, self.inputs(n, d, c), self.flops_per_token_param)

    def prediction(self, n: Any = None, d: Any = None, c: Any = None, observed: bool = False) -> Prediction:
        """The prediction with its bootstrap interval: of the law by default, or with ``observed`` of one
        run's measured loss (the law's interval widened by the runs' log-normal scatter about it)."""
        inputs = self.inputs(n, d, c)
        k = self.flops_per_token_param
        value = evaluate_law(self.law, self.vector, inputs, k)
        if self.samples is None or len(self.samples) == 0:
            if self.misfit:
                return Prediction(value, *self._with_misfit(value, value, value, n, d, c), self.level)
            return Prediction(value, value * np.nan, value * np.nan, self.level)
        boot = np.stack([evaluate_law(self.law, s, inputs, k) for s in self.samples])
        if observed and self.noise:
            draws = np.random.default_rng(0).standard_normal((20, *boot.shape))
            boot = (boot[None] * np.exp(self.noise * draws)).reshape(-1, *boot.shape[1:])
        lo, hi = percentile_interval(boot, self.level)
        return Prediction(value, *self._with_misfit(value, lo, hi, n, d, c), self.level)

    def _with_misfit(self, value: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: Any, d: Any,
                     c: Any) -> tuple[np.ndarray, np.ndarray]:
        return widen_by_misfit(value, lo, hi, self.misfit, self.level, self.flops_per_token_param, n, d, c)

    def compute_optimal(self, c: Any) -> dict[str, Prediction]:
        """N*(C), D*(C), D*/N* and L*(C) minimising the law (chinchilla or overtrain) at C = k N D, with intervals."""
        if self.law not in ND_LAWS:
            raise UserError(f"compute-optimal allocation needs a law in N and D ({', '.join(ND_LAWS)}), not {self.law}")
        c = np.asarray(c, dtype=float)
        if np.any(c <= 0):
            raise ParameterError("c", "compute must be positive")
        point = allocation(self.nd_vector(), c, self.flops_per_token_param)
        if self.samples is None or len(self.samples) == 0:
            return {k: Prediction(v, v * np.nan, v * np.nan, self.level) for k, v in point.items()}
        boot = [allocation(self.nd_vector(s), c, self.flops_per_token_param) for s in self.samples]
        out = {}
        for key, value in point.items():
            lo, hi = percentile_interval(np.stack([b[key] for b in boot]), self.level)
            out[key] = Prediction(value, lo, hi, self.level)
        return out

    # -- JSON ------------------------------------------------------------------------------------------
    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT, "law": self.law, "form": self.form,
            "x": _VAR_TO_X.get(_law_vars(self.law, self.x)[0]) if self.law == "power" else None,
            "params": self.params, "intervals": self.intervals, "level": self.level,
            "n_points": self.n_points, "n_runs": self.n_runs,
            "objective": self.objective, "huber_delta": self.delta, "residual_sigma": self.noise,
            "misfit": self.misfit,
            "flops_per_token_param": self.flops_per_token_param,
        }
        if self.law in ND_LAWS:
            _, a, b, alpha, beta = self.nd_vector()
            s = alpha + beta
            out["compute_optimal"] = {
                "n_exponent": beta / s, "d_exponent": alpha / s,
                "G": float((alpha * a / (beta * b)) ** (1 / s)),
                "form": "N* = G (C/k)^n_exponent, D* = (C/k) / N*",
            }
        out["bootstrap"] = dict(self.bootstrap)
        if samples and self.samples is not None:
            out["bootstrap"]["samples"] = self.samples.tolist()
        out["fit"] = self.info
        out["data"] = self.data
        if self.holdout is not None:
            out["holdout"] = self.holdout
        return out

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "FIT.json") -> LawFit:
        """A fit from its JSON form, every parameter checked (a hand-edited file is refused, naming the field)."""
        if not isinstance(raw, dict) or raw.get("law") not in LAWS:
            raise UserError(f"{source}: law: expected a fit written by `sweeper fit law` ({', '.join(LAWS)})")
        names = param_names(raw["law"])
        params = _fit_params(raw.get("params"), names, source)
        boot = raw.get("bootstrap") or {}
        if not isinstance(boot, dict):
            raise UserError(f"{source}: bootstrap: expected a mapping, got {type(boot).__name__}")
        boot = dict(boot)
        samples = _fit_samples(boot.pop("samples", None), names, source)
        _check_intervals(raw.get("intervals"), names, source)
        x = raw.get("x")
        if raw["law"] == "power" and x not in X_NAMES:
            raise UserError(f"{source}: x: expected one of {', '.join(X_NAMES)}")
        level = _fit_number(raw, "level", source, 0.95)
        if not 0 < level < 1:
            raise UserError(f"{source}: level: expected a number between 0 and 1, got {level:g}")
        k = _fit_number(raw, "flops_per_token_param", source, FLOPS_PER_TOKEN_PARAM)
        delta = _fit_number(raw, "huber_delta", source, HUBER_DELTA)
        for key, value in (("flops_per_token_param", k), ("huber_delta", delta)):
            if not value > 0:
                raise UserError(f"{source}: {key}: expected a positive number, got {value:g}")
        noise = None if raw.get("residual_sigma") is None else _fit_number(raw, "residual_sigma", source, 0.0)
        if noise is not None and noise < 0:
            raise UserError(f"{source}: residual_sigma: expected a number >= 0, got {noise:g}")
        misfit = check_misfit(raw.get("misfit"), source)
        return cls(law=raw["law"], params=params,
                   objective=_fit_number(raw, "objective", source, np.nan, finite=False),
                   n_points=int(_fit_number(raw, "n_points", source, 0)),
                   n_runs=int(_fit_number(raw, "n_runs", source, 0)), x=x if raw["law"] == "power" else None,
                   samples=samples, level=level, delta=delta, flops_per_token_param=k,
                   bootstrap=boot, info=raw.get("fit") or {}, data=raw.get("data") or {},
                   holdout=raw.get("holdout"), noise=noise, misfit=misfit)

    @classmethod
    def load(cls, path: str | Path) -> LawFit:
        return cls.from_dict(read_fit_json(path), str(path))


def read_fit_json(path: str | Path, expected: str = "FIT.json from `sweeper fit law`") -> Any:
    """The JSON of a saved fit; a UserError naming the file (and what was ``expected`` there) when it is
    missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected {expected})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------------------------------
# Checks of a FIT.json: what a fit by `sweeper fit law` always satisfies
# --------------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fit_number(raw: dict[str, Any], key: str, source: str, default: float, finite: bool = True) -> float:
    """``raw[key]`` as a float (``default`` when absent), or a UserError naming the file and the key."""
    value = raw.get(key)
    if value is None:
        return float(default)
    if not _is_number(value) or (finite and not np.isfinite(value)):
        raise UserError(f"{source}: {key}: expected a {'finite ' if finite else ''}number, got {value!r}")
    return float(value)


def _param_problem(name: str, value: float) -> str | None:
    """Why ``value`` cannot be parameter ``name`` of a fitted law (None if it can): the fit keeps E >= 0,
    A, B > 0 and the exponents alpha, beta >= 0, so the loss falls as N and D grow."""
    if not np.isfinite(value):
        return "expected a finite number"
    if name in ("A", "B", "a", "b") and not value > 0:
        return "expected a positive coefficient"
    if name == "E" and value < 0:
        return "expected an irreducible loss >= 0"
    if name in ("alpha", "beta", "eta") and value < 0:
        return "expected an exponent >= 0 (a negative one makes the loss grow with scale)"
    return None


def _fit_params(params: Any, names: Sequence[str], source: str) -> dict[str, float]:
    if not isinstance(params, dict):
        raise UserError(f"{source}: params: expected a mapping of {', '.join(names)}")
    missing = [name for name in names if name not in params]
    if missing:
        raise UserError(f"{source}: params: missing {', '.join(missing)} (the {len(names)}-parameter law needs "
                        f"{', '.join(names)})")
    out = {}
    for name in names:
        value = params[name]
        if not _is_number(value):
            raise UserError(f"{source}: params.{name}: expected a number, got {value!r}")
        problem = _param_problem(name, float(value))
        if problem:
            raise UserError(f"{source}: params.{name}: {problem}, got {value!r}")
        out[name] = float(value)
    return out


def _fit_samples(samples: Any, names: Sequence[str], source: str) -> np.ndarray | None:
    """The bootstrap samples, one row of parameters per replicate (missing values as NaN), checked as the
    parameters are."""
    if samples is None:
        return None
    try:
        array = np.asarray([[np.nan if v is None else v for v in row] for row in samples], dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or (array.size and (array.ndim != 2 or array.shape[1] != len(names))):
        raise UserError(f"{source}: bootstrap.samples: expected one list of {len(names)} numbers "
                        f"({', '.join(names)}) per replicate")
    array = array.reshape(-1, len(names))
    for j, name in enumerate(names):
        column = array[:, j]
        bad = [v for v in column[~np.isnan(column)] if _param_problem(name, float(v))]
        if bad:
            raise UserError(f"{source}: bootstrap.samples: {name}: {_param_problem(name, float(bad[0]))}, "
                            f"got {bad[0]:g}")
    return array


def check_misfit(misfit: Any, source: str) -> dict[str, Any] | None:
    """The misfit block of a fit chosen by backtest: a floor >= 0 (0 when absent, as fits written before it
    had one), a rate >= 0, the variable and its fitted maximum."""
    if misfit is None:
        return None
    ok = (isinstance(misfit, dict) and misfit.get("by") in ("n", "d", "c") and _is_number(misfit.get("rate"))
          and misfit["rate"] >= 0 and _is_number(misfit.get("fitted_max")) and misfit["fitted_max"] > 0
          and _is_number(misfit.get("floor", 0.0)) and misfit.get("floor", 0.0) >= 0)
    if not ok:
        raise UserError(f"{source}: misfit: expected {{floor: number >= 0, rate: number >= 0, by: n, d or c, "
                        "fitted_max: number > 0}")
    return {"floor": float(misfit.get("floor", 0.0)), "rate": float(misfit["rate"]), "by": misfit["by"],
            "fitted_max": float(misfit["fitted_max"])}


def _check_intervals(intervals: Any, names: Sequence[str], source: str) -> None:
    """Each interval a pair [lower, upper] of numbers with lower <= upper (a fit without bootstrap has none)."""
    if intervals is None:
        return
    if not isinstance(intervals, dict):
        raise UserError(f"{source}: intervals: expected a mapping of parameter to [lower, upper]")
    for name, pair in intervals.items():
        if name not in names:
            raise UserError(f"{source}: intervals.{name}: not a parameter of the law ({', '.join(names)})")
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_number(v) or v is None for v in pair)
        if not ok:
            raise UserError(f"{source}: intervals.{name}: expected [lower, upper], got {pair!r}")
        lo, hi = (np.nan if v is None else float(v) for v in pair)
        if lo > hi:
            raise UserError(f"{source}: intervals.{name}: lower {lo:g} > upper {hi:g}")


def widen_by_misfit(value: np.ndarray, lo: np.ndarray, hi: np.ndarray, misfit: dict[str, Any] | None,
                    level: float, k: float, n: Any = None, d: Any = None,
                    c: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """An interval ``[lo, hi]`` about ``value`` widened, in log space and in quadrature, by a backtest misfit
    at this extrapolation: ``floor`` and ``rate`` per unit of log extrapolation in ``by`` beyond
    ``fitted_max``, themselves in quadrature (see `LawFit.misfit`); unchanged without a misfit or inside the
    fitted range."""
    if not misfit:
        return lo, hi
    from statistics import NormalDist

    n, d, c = (None if v is None else np.asarray(v, dtype=float) for v in (n, d, c))
    derived = {"n": (c / (k * d)) if c is not None and d is not None else None,
               "d": (c / (k * n)) if c is not None and n is not None else None,
               "c": (k * n * d) if n is not None and d is not None else None}
    given = {"n": n, "d": d, "c": c}
    by = misfit["by"]
    where = given[by] if given[by] is not None else derived[by]
    if where is None:
        return lo, hi
    distance = np.maximum(np.log(where / misfit["fitted_max"]), 0.0)
    spread = np.where(distance > 0, np.hypot(misfit.get("floor", 0.0), misfit["rate"] * distance), 0.0)
    m = NormalDist().inv_cdf(0.5 + level / 2) * spread
    with np.errstate(invalid="ignore", divide="ignore"):
        below, above = np.log(value / lo), np.log(hi / value)
    below, above = np.nan_to_num(below), np.nan_to_num(above)
    return value * np.exp(-np.hypot(below, m)), value * np.exp(np.hypot(above, m))


def flags_of(var: str) -> str:
    return {"n": "--n", "d": "--d", "c": "--c"}[var]


def percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` percentile interval of bootstrap ``values`` along their first axis. A bound that
    falls next to an infinite replicate (a degenerate refit) is that infinity, where numpy's interpolation
    would give nan."""
    tail = 50.0 * (1.0 - level)
    with np.errstate(invalid="ignore"):
        bounds = np.nanpercentile(values, [tail, 100.0 - tail], axis=0)
    broken = np.isnan(bounds) & ~np.all(np.isnan(values), axis=0)
    if np.any(broken):
        higher = np.nanpercentile(values, [tail, 100.0 - tail], axis=0, method="higher")
        lower = np.nanpercentile(values, [tail, 100.0 - tail], axis=0, method="lower")
        bounds = np.where(broken, np.where(np.isposinf(higher), higher, lower), bounds)
    return bounds[0], bounds[1]


def chinchilla_vector(law: str, vector: np.ndarray, k: float = FLOPS_PER_TOKEN_PARAM) -> np.ndarray:
    """A law in N and D as ``[E, A, B, alpha, beta]``: the overtrain law's ``[E, a, b, eta]`` is
    E + a (k N^2)^-eta + b (k D^2)^-eta, so A = a k^-eta, B = b k^-eta, alpha = beta = 2 eta."""
    vector = np.asarray(vector, dtype=float)
    if law == "overtrain":
        e, a, b, eta = vector
        return np.array([e, a * k ** -eta, b * k ** -eta, 2 * eta, 2 * eta])
    return vector


def evaluate_law(law: str, vector: np.ndarray, inputs: Sequence[np.ndarray],
                 k_flops: float = FLOPS_PER_TOKEN_PARAM) -> np.ndarray:
    """E + sum_k A_k x_k^-alpha_k for natural parameters ``vector`` and the law's variables ``inputs``
    (``k_flops``, k in C = k N D, only matters to the overtrain law)."""
    if law == "overtrain":
        vector = chinchilla_vector(law, vector, k_flops)
    k = len(inputs)
    e, coefs, exps = vector[0], vector[1:1 + k], vector[1 + k:]
    out = e + sum(a * np.asarray(x, dtype=float) ** -alpha for a, alpha, x in zip(coefs, exps, inputs, strict=True))
    return np.asarray(out)


def allocation(vector: np.ndarray, c: np.ndarray, k: float = FLOPS_PER_TOKEN_PARAM) -> dict[str, np.ndarray]:
    """Compute-optimal N*, D*, D*/N* and L* of the Chinchilla law ``[E, A, B, alpha, beta]`` at compute C.

    Minimising E + A N^-alpha + B D^-beta subject to k N D = C gives
    N* = G (C/k)^(beta/(alpha+beta)), D* = (C/k) / N*, G = (alpha A / (beta B))^(1/(alpha+beta)).
    A degenerate law (an exponent near 0, as some bootstrap replicates of a poorly determined fit are) puts
    N* or D* at 0 or infinity: those come back as 0 and inf, without numpy's overflow warnings.
    """
    e, a, b, alpha, beta = vector
    s = alpha + beta
    with np.errstate(over="ignore", divide="ignore", under="ignore", invalid="ignore"):
        g = (alpha * a / (beta * b)) ** (1.0 / s)
        n = g * (c / k) ** (beta / s)
        d = (c / k) / n
        return {"n": n, "d": d, "tokens_per_param": d / n, "loss": e + a * n ** -alpha + b * d ** -beta}


# --------------------------------------------------------------------------------------------------
# Fitting, bootstrap, backtest
# --------------------------------------------------------------------------------------------------
def _problem(data: LawData, law: str, x: str | None, delta: float,
             k: float = FLOPS_PER_TOKEN_PARAM) -> PowerSumProblem:
    if law == "overtrain":  # a (k N^2)^-eta + b (k D^2)^-eta: C/M and C M, one exponent
        logx = np.column_stack([np.log(k) + 2 * np.log(data.get(v)) for v in ("n", "d")])
        return PowerSumProblem(logx, data.loss, delta, tied=True)
    logx = np.column_stack([np.log(data.get(v)) for v in _law_vars(law, x)])
    return PowerSumProblem(logx, data.loss, delta)


def fit_law(data: LawData, law: str = "chinchilla", x: str | None = None, *, bootstrap: int = 200,
            by: str = "run", level: float = 0.95, seed: int = 0, delta: float = HUBER_DELTA,
            optimizer: str = "trf", grid: np.ndarray = EXPONENT_GRID, n_starts: int = 8,
            flops_per_token_param: float = FLOPS_PER_TOKEN_PARAM, window: dict[str, Any] | None = None,
            windows: Sequence[float] = (0.0,), misfit: bool = True) -> LawFit:
    """Fit ``law`` ("chinchilla", "overtrain" or "power" in ``x`` = "flops" | "tokens" | "n") with bootstrap
    intervals.

    ``by`` is the bootstrap's resampling unit: "run" (each run, and so each seed, with all its points)
    or "size" (all runs of a model size together: wider, honest when sizes are few and runs many).
    ``flops_per_token_param`` is k in C = k N D, used by compute-optimal allocation and predictions.
    ``window`` (``{"by": "n", "from": 2e7}``) fits only the points from that value of ``n``, ``d`` or ``c`` up;
    the bootstrap still resamples the runs of all ``data`` and windows each replicate, so fits of several
    losses measured on the same runs (one per component) stay paired replicate by replicate.
    ``law="auto"`` chooses the form by backtest (`sweeper.laws.select.select_law`), and the window among
    ``windows`` (shares of the smallest levels to drop, e.g. `sweeper.laws.select.WINDOW_SHARES`; default
    none dropped); ``misfit=False`` skips backtesting the choice for its misfit (a fit that will only predict
    a value, as inside another backtest).
    """
    if law == "auto":
        from sweeper.laws.select import select_law

        return select_law(data, x if x else None, bootstrap=bootstrap, by=by, level=level, seed=seed, delta=delta,
                          optimizer=optimizer, grid=grid, n_starts=n_starts,
                          flops_per_token_param=flops_per_token_param, windows=windows, misfit=misfit)
    if tuple(windows) != (0.0,):
        raise ParameterError("windows", f"{list(windows)}: fit windows are chosen by backtest, only with law auto")
    full, data = data, in_window(data, window)
    if law == "power":
        x = x or "flops"
        if x not in X_NAMES:
            raise ParameterError("x", f"{x!r}: expected one of {', '.join(X_NAMES)}")
    else:
        x = None
    if by not in ("run", "size"):
        raise ParameterError("by", f"{by!r}: expected 'run' or 'size'")
    if not 0 < level < 1:
        raise ParameterError("level", f"{level}: expected a number between 0 and 1")
    check_points(data, law, x)
    from threadpoolctl import threadpool_limits

    # Problems this small never gain from BLAS threads, and on a busy machine their start-up dominates
    # (scipy's L-BFGS-B ran 7x slower here with multithreaded OpenBLAS).
    with threadpool_limits(limits=1, user_api="blas"):
        t0 = time.perf_counter()
        problem = _problem(data, law, x, delta, flops_per_token_param)
        best = minimise(problem, problem.grid_starts(grid, n_starts), optimizer)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        samples = (_bootstrap(full, law, x, best, bootstrap, by, seed, delta, optimizer, flops_per_token_param,
                              window) if bootstrap > 0 else None)
    names = param_names(law)
    resid = problem.residuals(best.theta)
    noise = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    bounded = problem.at_bounds(best.theta, [f"log {n}" if n in ("E", "A", "B", "a", "b") else n for n in names])
    if bounded:
        warnings.warn(f"{data.source}: {law} law: {', '.join(bounded)} at a bound of the search: these points "
                      f"do not determine the law (too few sizes or budgets, or too much noise); treat its "
                      f"extrapolations with care", UserWarning, stacklevel=2)
    return LawFit(
        law=law, params={k: float(v) for k, v in zip(names, best.natural, strict=True)}, objective=best.objective,
        n_points=len(data), n_runs=data.n_runs, x=x, samples=samples, level=level, delta=delta,
        flops_per_token_param=flops_per_token_param,
        bootstrap={"replicates": int(bootstrap), "by": by, "seed": seed},
        info={"optimizer": optimizer, "starts": best.starts, "starts_at_optimum": best.agree,
              "other_optima": [dict(zip(names, map(float, o), strict=True)) for o in best.others],
              "fit_s": round(fit_s, 4), "bootstrap_s": round(time.perf_counter() - t1, 4),
              "at_bounds": bounded, **({"window": dict(window)} if window else {})},
        data={"source": data.source, "columns": data.columns}, noise=noise,
    )


def resampling_units(data: LawData, law: str, x: str | None, by: str) -> list[np.ndarray]:
    """The point indices of each resampling unit: every run, or every model size (``by="size"``)."""
    if by == "size":
        units = distinct_levels(data.get("n" if law in ND_LAWS else _law_vars(law, x)[0]))
    else:
        _, units = np.unique(data.run, return_inverse=True)
    order = np.argsort(units, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(units[order])) + 1)


def resample(units: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Point indices of one bootstrap replicate: as many units as there are, drawn with replacement."""
    return np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))])


def refit(data: LawData, law: str, x: str | None, starts: Sequence[np.ndarray], delta: float = HUBER_DELTA,
          optimizer: str = "trf", k: float = FLOPS_PER_TOKEN_PARAM) -> np.ndarray:
    """The optimum (natural parameters) on ``data`` from the given natural-parameter starts (no grid)."""
    problem = _problem(data, law, x, delta, k)
    return minimise(problem, [problem.internal(v) for v in starts], optimizer).natural


def in_window(data: LawData, window: dict[str, Any] | None) -> LawData:
    """The points of ``data`` inside a fit window (``{"by": "n", "from": value}``: from that value up)."""
    if not window:
        return data
    return data.take(np.flatnonzero(data.get(window["by"]) >= window["from"] * (1 - 1e-9)))


def _bootstrap(data: LawData, law: str, x: str | None, best: Optimum, replicates: int, by: str, seed: int,
               delta: float, optimizer: str, k: float = FLOPS_PER_TOKEN_PARAM,
               window: dict[str, Any] | None = None) -> np.ndarray:
    """Refit on ``replicates`` resamples of whole runs (or sizes) of ``data``, each cut to the fit window and
    fitted from the optimum and the other local optima the fit found; the natural parameters, one row per
    replicate."""
    units = resampling_units(data, law, x, by)
    rng = np.random.default_rng(seed)
    starts = [best.natural, *best.others]
    draws = [resample(units, rng) for _ in range(replicates)]  # one stream, whatever the window
    return np.stack([refit(_windowed(data, units, index, window, law, x, (seed, i)), law, x, starts, delta,
                           optimizer, k) for i, index in enumerate(draws)])


def _windowed(data: LawData, units: list[np.ndarray], index: np.ndarray, window: dict[str, Any] | None, law: str,
              x: str | None, key: tuple[int, int], attempts: int = 50) -> LawData:
    """One replicate cut to the fit window. A replicate whose window cannot identify the law (too few of its
    runs fell inside) is drawn again from a stream of its own (``key`` and the attempt), so the other
    replicates stay those of every fit with the same seed; after ``attempts``, the window's own points."""
    sample = in_window(data.take(index), window)
    if not window:
        return sample
    for attempt in range(1, attempts + 1):
        try:
            check_points(sample, law, x)
            return sample
        except UserError:
            sample = in_window(data.take(resample(units, np.random.default_rng([*key, attempt]))), window)
    return in_window(data, window)


def backtest(data: LawData, law: str = "chinchilla", x: str | None = None, *, holdout_by: str | None = None,
             count: int = 1, **fit_kwargs: Any) -> dict[str, Any]:
    """Fit without the ``count`` largest model sizes (or compute budgets, ``holdout_by="c"``) and score the
    prediction of the held-out points: relative errors, bias, and how often the interval covers them."""
    if law == "auto":
        from sweeper.laws.select import candidates, holdout_variable

        by = holdout_by or holdout_variable(data, candidates(data, x))
    else:
        by = holdout_by or ("n" if law in ND_LAWS else X_NAMES[x or "flops"])
    train, test = split_largest(data, by, count)
    fit = fit_law(train, law, x, **fit_kwargs)  # with "auto", its misfit comes from the training part alone
    pred = fit.prediction(n=test.n, d=test.d, c=test.c)
    observed = fit.prediction(n=test.n, d=test.d, c=test.c, observed=True)
    rel = (pred.value - test.loss) / test.loss
    has_interval = fit.samples is not None and len(fit.samples) > 0
    held = test.get(by)
    out = {
        "held_out": {"by": _VAR_TO_X[by], "count": count, "from": float(held.min()), "to": float(held.max()),
                     "extrapolation": float(held.max() / train.get(by).max())},
        "n_train": len(train), "n_test": len(test),
        "mean_abs_rel_error": float(np.abs(rel).mean()), "max_abs_rel_error": float(np.abs(rel).max()),
        "mean_rel_error": float(rel.mean()),
        "interval_coverage": _coverage(test.loss, pred) if has_interval or fit.misfit else None,
        "predictive_coverage": _coverage(test.loss, observed) if has_interval or fit.misfit else None,
        "params": fit.params, "intervals": fit.intervals, "residual_sigma": fit.noise, "law": fit.law,
        "misfit": fit.misfit,
    }
    if len(test) <= 200:
        cols = {v: test.get(v) for v in ("n", "d", "c") if getattr(test, v) is not None}
        out["points"] = [{**{k: float(v[i]) for k, v in cols.items()}, "loss": float(test.loss[i]),
                          "predicted": float(pred.value[i]), "interval": [float(pred.lo[i]), float(pred.hi[i])],
                          "observed_interval": [float(observed.lo[i]), float(observed.hi[i])]}
                         for i in range(len(test))]
    return out


def _coverage(loss: np.ndarray, pred: Prediction) -> float:
    return float(((loss >= pred.lo) & (loss <= pred.hi)).mean())
