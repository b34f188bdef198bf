"""CARBS-style cost-aware search: local Bayesian optimisation around the Pareto front of (cost, metric).

After Fetterman et al. 2023, "Tune As You Scale" (CARBS), re-written around scikit-learn's Gaussian
processes. The whole algorithm is in this file:

1. Every parameter is a `Dimension` with bounds and a scale. Values are mapped to a transformed space
   (log for scales such as a learning rate or a width, logit for fractions, linear otherwise) and then
   linearly to the unit interval, so that one search radius means the same on every axis.
2. The first `n_initial` suggestions are drawn from a normal distribution around the search centre.
3. Afterwards candidates are drawn around the points of the current Pareto front of (cost, metric)
   and scored by

       acquisition = expected gain of the candidate at its predicted cost
                     x search density (closeness to the front, as the candidates were drawn)
                     x P(success)
                     (and dropped when the predicted cost exceeds `max_cost`)

   where the metric and log-cost are each modelled by a Gaussian process (Matern 5/2 with one length
   scale per dimension, plus a linear kernel so that log-cost, often linear in log-parameters, extrapolates),
   and P(success) comes from a Gaussian-process classifier fitted on failed against successful trials.
   The gain is, by default, the expected hypervolume improvement in the plane of log-cost and the modelled
   metric (its transformed, standardised scale) per unit of predicted cost: how much the area the front
   dominates grows (a point cheaper than the front counts for the whole stretch of cost it newly covers),
   for what the trial costs, since the search spends a budget. CARBS' own gain (`acquisition="front_ei"`)
   is the expected improvement over the front at the candidate's predicted cost alone, the front modelled
   in 1-D as a monotone piecewise-linear curve of metric against log-cost (continued beyond its ends with
   its overall slope rather than flat);
   it values a cheaper point only by how far it beats that extrapolation at its one cost, and with CARBS'
   pooling of the cheapest trials into one front point (`min_front_cost_quantile=0.2`) a search could
   stall above the cheap end (measured on real training: README, "Cost-aware search"). CARBS always
   raises the front to its value at a random cost along it, which pushes the search toward the expensive
   end; here that happens on a fraction `raise_front` of suggestions (0.25 by default): gains below that
   value do not count.
4. Trials still running ("pending") enter the metric model with Thompson samples of their outcome, so
   concurrent suggestions spread out instead of repeating each other.

`CostAwareSearch` is the plain core (suggest / observe / state_dict / load_state_dict); `CostAwareProposer`
adapts it to sweeper's `Proposer` interface (trial ids, final and pruned results), which
`sweeper.search.tune` hands to Ray Tune. The state is a JSON-ready dict, and a search restored from it continues
with exactly the suggestions the original would have made.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import erfcx, logsumexp, ndtr
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, Kernel, Matern, WhiteKernel
from sklearn.preprocessing import PowerTransformer
from threadpoolctl import threadpool_limits

from sweeper.errors import UserError
from sweeper.maths.pareto import Mode, pareto_front
from sweeper.search.base import Proposer

Scale = Literal["linear", "log", "logit"]
STATE_VERSION = 1


# --------------------------------------------------------------------------------------------------------------
# Search space


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: bounds, the space it is searched in, and where the search starts.

    `scale` is "log" for positive scales (learning rate, width, tokens), "logit" for fractions strictly
    inside (0, 1), "linear" otherwise. `center` defaults to the midpoint in the transformed space (the
    geometric mean of the bounds for "log"). `integer` rounds suggested values (not with "logit").
    """

    name: str
    low: float
    high: float
    scale: Scale = "linear"
    integer: bool = False
    center: float | None = None

    def __post_init__(self) -> None:
        where = f"search space: {self.name}"
        if self.scale not in ("linear", "log", "logit"):
            raise UserError(f"{where}: scale: expected 'linear', 'log' or 'logit', got {self.scale!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise UserError(f"{where}: bounds: expected finite low < high, got {self.low}, {self.high}")
        if self.scale == "log" and self.low <= 0:
            raise UserError(f"{where}: low: a log-scaled parameter needs low > 0, got {self.low}")
        if self.scale == "logit" and not (self.low > 0 and self.high < 1):
            raise UserError(f"{where}: bounds: a logit-scaled parameter needs 0 < low < high < 1")
        if self.scale == "logit" and self.integer:
            raise UserError(f"{where}: integer: a logit-scaled fraction cannot be an integer")
        if self.center is not None and not self.low <= self.center <= self.high:
            raise UserError(f"{where}: center: expected a value within [{self.low}, {self.high}]")

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            return np.log(x)
        if self.scale == "logit":
            return np.log(x) - np.log1p(-x)
        return x

    def _inverse(self, t: np.ndarray) -> np.ndarray:
        if self.scale == "log":
            return np.exp(t)
        if self.scale == "logit":
            return 1.0 / (1.0 + np.exp(-t))
        return t

    def to_unit(self, value: Any) -> np.ndarray:
        """Map values to [0, 1] through the transformed space (values outside the bounds are clipped)."""
        x = np.clip(np.asarray(value, dtype=float), self.low, self.high)
        lo, hi = self._forward(np.array([self.low, self.high]))
        return (self._forward(x) - lo) / (hi - lo)

    def from_unit(self, u: Any) -> np.ndarray:
        """Map points of [0, 1] back to values, rounded for integer dimensions and kept inside the bounds."""
        lo, hi = self._forward(np.array([self.low, self.high]))
        x = self._inverse(lo + np.clip(np.asarray(u, dtype=float), 0.0, 1.0) * (hi - lo))
        if self.integer:
            x = np.clip(np.round(x), math.ceil(self.low), math.floor(self.high))
        return np.clip(x, self.low, self.high)

    @property
    def unit_center(self) -> float:
        return 0.5 if self.center is None else float(self.to_unit(self.center))

    def python_value(self, x: float) -> float | int:
        return int(round(x)) if self.integer else float(x)


# --------------------------------------------------------------------------------------------------------------
# Acquisition pieces


def log_expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: np.ndarray) -> np.ndarray:
    """log E[max(f - best, 0)] for f ~ N(mu, sigma^2), accurate far into the tail (as BoTorch's LogEI)."""
    sigma = np.maximum(sigma, 1e-12)
    z = (mu - best) / sigma
    log_h = np.empty_like(z)
    # h(z) = phi(z) + z Phi(z); direct where it is well conditioned.
    mid = z > -1.0
    log_h[mid] = np.log(np.exp(-0.5 * z[mid] ** 2) / math.sqrt(2 * math.pi) + z[mid] * ndtr(z[mid]))
    # phi(z) (1 - |z| Phi(z)/phi(z)) with Phi/phi = sqrt(pi/2) erfcx(|z|/sqrt 2) for z < 0.
    tail = (z <= -1.0) & (z > -40.0)
    zt = -z[tail]
    log_phi = -0.5 * zt**2 - 0.5 * math.log(2 * math.pi)
    log_h[tail] = log_phi + np.log1p(-zt * math.sqrt(math.pi / 2) * erfcx(zt / math.sqrt(2)))
    # Far tail: h(z) ~ phi(z) / z^2.
    far = z <= -40.0
    log_h[far] = -0.5 * z[far] ** 2 - 0.5 * math.log(2 * math.pi) - 2 * np.log(-z[far])
    return log_h + np.log(sigma)


def log_expected_hypervolume_improvement(
    mu: np.ndarray,
    sigma: np.ndarray,
    log_cost: np.ndarray,
    front_log_cost: np.ndarray,
    front_goodness: np.ndarray,
    reference: tuple[float, float],
) -> np.ndarray:
    """log E[hypervolume improvement] of candidates in the (log-cost, goodness) plane, larger goodness better.

    Each candidate's cost is taken as known (`log_cost`, the cost model's mean) and its goodness as
    N(mu, sigma^2). The front (`front_log_cost` increasing, `front_goodness` non-decreasing) dominates a
    staircase bounded by `reference` = (largest log-cost, smallest goodness counted). A candidate at log-cost
    c adds, over every stretch [a, b] of the staircase at or above c (below the front's cheapest point the
    level is the reference goodness), (b - max(a, c)) x (its goodness above that stretch's level), so the
    expectation is a length-weighted sum of expected improvements. Extending the front to cheaper costs
    counts for the whole stretch it newly covers, which EI at a single cost does not see.
    """
    ref_lc, ref_good = float(reference[0]), float(reference[1])
    starts = np.concatenate(([-np.inf], front_log_cost))
    ends = np.concatenate((front_log_cost, [ref_lc]))
    levels = np.maximum(np.concatenate(([ref_good], front_goodness)), ref_good)
    length = np.minimum(ends[None, :], ref_lc) - np.maximum(starts[None, :], log_cost[:, None])
    n, k = length.shape
    log_ei = log_expected_improvement(np.repeat(mu, k), np.repeat(sigma, k), np.tile(levels, n)).reshape(n, k)
    with np.errstate(divide="ignore", invalid="ignore"):  # a candidate that covers no stretch gains log 0
        return logsumexp(log_ei, b=np.maximum(length, 0.0), axis=1)


def _regression_kernel(dim: int) -> Kernel:
    """Matern 5/2 with one length scale per dimension, plus a linear trend, plus observation noise (fitted by
    marginal likelihood, up to the whole variance of the standardised metric)."""
    return (
        ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(dim, 0.3), (1e-2, 1e1), nu=2.5)
        + ConstantKernel(1e-2, (1e-4, 1e2)) * DotProduct(sigma_0=1.0, sigma_0_bounds="fixed")
        + WhiteKernel(1e-4, (1e-8, 1.0))
    )


def _fit_regressor(
    x: np.ndarray, y: np.ndarray, theta: np.ndarray | None = None, *, fixed: bool = False
) -> GaussianProcessRegressor:
    """A GP on unit-cube inputs (centred) and standardised targets.

    `theta` (log hyperparameters of a previous fit) warm-starts the marginal-likelihood optimisation, or,
    with `fixed`, is used as is.
    """
    kernel = _regression_kernel(x.shape[1])
    if theta is not None:
        theta = np.array(theta, dtype=float)
        if not fixed:  # the noise restarts from its prior value: warm-started at its lower bound, it stays there
            theta[-1] = kernel.theta[-1]
        kernel = kernel.clone_with_theta(np.clip(theta, kernel.bounds[:, 0], kernel.bounds[:, 1]))
    gp = GaussianProcessRegressor(kernel, optimizer=None if fixed else "fmin_l_bfgs_b", normalize_y=False)
    with warnings.catch_warnings(), threadpool_limits(1):  # small matrices: threads only contend
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gp.fit(x - 0.5, y)


def _fit_classifier(x: np.ndarray, ok: np.ndarray) -> GaussianProcessClassifier:
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianProcessClassifier(ConstantKernel(1.0, (1e-2, 1e2)) * RBF(0.3, (3e-2, 3.0))).fit(
            x - 0.5, ok.astype(int)
        )


def _standardise(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, std = float(np.mean(y)), float(np.std(y))
    std = std if std > 1e-12 else 1.0
    return (y - mean) / std, mean, std


class _MetricScale:
    """Metric -> well-behaved 'goodness' for the GP: oriented (larger is better), Yeo-Johnson, standardised.

    The power transform (as in HEBO, which CARBS follows) tames diverged runs with huge losses.
    """

    def __init__(self, metric: np.ndarray, sign: float):
        self.sign = sign
        self.power: PowerTransformer | None = None
        oriented = sign * metric
        if np.unique(oriented).size >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.power = PowerTransformer(method="yeo-johnson").fit(oriented[:, None])
        else:
            _, self.mean, self.std = _standardise(oriented)

    def __call__(self, metric: np.ndarray) -> np.ndarray:
        oriented = self.sign * np.asarray(metric, dtype=float)
        if self.power is not None:
            return self.power.transform(oriented[:, None])[:, 0]
        return (oriented - self.mean) / self.std

    def inverse(self, goodness: np.ndarray) -> np.ndarray:
        goodness = np.asarray(goodness, dtype=float)
        if self.power is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return self.sign * self.power.inverse_transform(goodness[:, None])[:, 0]
        return self.sign * (goodness * self.std + self.mean)


def _noise_sd(gp: GaussianProcessRegressor) -> float:
    """The observation noise standard deviation the GP fitted (in its target's units)."""
    return math.sqrt(float(gp.kernel_.get_params()["k2__noise_level"]))


def _point_key(unit: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(np.asarray(unit, dtype=float), 9).tolist())


class _FrontModel:
    """Best goodness expected at a log-cost: piecewise linear through the front points (monotone, as the
    front is), continued beyond its ends with the front's overall slope (or flat, as in CARBS)."""

    def __init__(self, log_cost: np.ndarray, goodness: np.ndarray, *, extrapolate: bool = True):
        self.lc, self.good = log_cost, goodness
        self.slope = 0.0
        if extrapolate and log_cost.size > 1 and log_cost[-1] > log_cost[0]:
            self.slope = max(0.0, float(np.polyfit(log_cost, goodness, 1)[0]))

    def __call__(self, log_cost: np.ndarray) -> np.ndarray:
        inside = np.interp(log_cost, self.lc, self.good)
        below = self.slope * np.minimum(log_cost - self.lc[0], 0.0)
        above = self.slope * np.maximum(log_cost - self.lc[-1], 0.0)
        return inside + below + above


# --------------------------------------------------------------------------------------------------------------
# The search


@dataclass
class _Observation:
    config: dict[str, Any]
    unit: list[float]
    metric: float | None
    cost: float | None
    status: Literal["ok", "pruned", "failed"]


class CostAwareSearch:
    """CARBS-style search over `dimensions`, minimising (or maximising) a metric at every cost.

    Args:
        dimensions: the searched parameters.
        mode: "min" or "max" for the metric; cost is always minimised.
        seed: fixes every random choice; the same seed and observations give the same suggestions.
        n_initial: random suggestions around the centre before modelling starts (default max(4, d + 1)),
            counted in successful observations.
        radius: standard deviation of the search distribution around the centre and the front points,
            in unit-cube coordinates (each axis spans [0, 1] between its bounds, in transformed space).
        n_candidates: candidates scored per suggestion (default max(1000, 100 d)).
        max_cost: never suggest a point whose predicted cost is above this (from the first modelled
            suggestion on; the random starts around the centre cannot predict cost).
        max_points: the GPs are fitted on at most this many observations (front points always kept, then
            the best and a random share of the rest), which keeps each suggestion well under a second.
        min_front_cost_quantile: observations cheaper than this quantile of cost are pooled into a single
            front point (CARBS uses 0.2, so that its search does not crawl along the cheapest corner; the
            hypervolume gain already values that corner only by the area it adds, so the default is 0).
        raise_front: probability, per suggestion, of raising the front to its value at a random cost along
            it (CARBS does it always), which favours larger scale over extending the cheap end.
        extrapolate_front: continue the front beyond its ends with its overall slope (else flat, as CARBS).
        pending: what running trials are assumed to return while a suggestion is made: "thompson" (a
            sample of the metric model, as CARBS), "front" (a constant liar: exactly the front's value at
            their predicted cost, i.e. no improvement), or "ignore".
        failure_model: learn P(success) from failed trials.
        pending_front: the made-up outcomes of running trials also move the front (at their predicted
            cost), so that concurrent suggestions do not all chase the same stretch of it.
        front_by: judge which points are on the front by the metric model's mean at each point ("model",
            which averages the observation noise the model fitted) or by the observed metric ("observed").
        acquisition: what a candidate is expected to gain: "hypervolume", the expected growth of the area
            the front dominates in the plane of log-cost and the modelled metric (see
            `log_expected_hypervolume_improvement`) divided by its predicted cost, or "front_ei", the
            expected improvement over the front at its predicted cost (CARBS; use it with
            `min_front_cost_quantile=0.2` for CARBS' behaviour, sweeper's default before 2026-12-05).
        rerun_key: the config key that seeds a run (e.g. "seed"). When given, a front point whose lead over
            the cheaper points is within two noise standard deviations (the metric model's fitted noise,
            divided by the square root of its runs) is run again with the next seed, `rerun_base` + 1, + 2,
            and so on, up to `max_repeats` runs per point and a share `rerun_fraction` of all suggestions.
            Re-runs are trials like any other and count in the budget.
    """

    def __init__(
        self,
        dimensions: Sequence[Dimension],
        *,
        mode: Mode = "min",
        seed: int = 0,
        n_initial: int | None = None,
        radius: float = 0.15,
        n_candidates: int | None = None,
        max_cost: float | None = None,
        max_points: int = 256,
        min_front_cost_quantile: float = 0.0,
        raise_front: float = 0.25,
        extrapolate_front: bool = True,
        pending: Literal["thompson", "front", "ignore"] = "thompson",
        failure_model: bool = True,
        pending_front: bool = True,
        front_by: Literal["model", "observed"] = "observed",
        acquisition: Literal["hypervolume", "front_ei"] = "hypervolume",
        rerun_key: str | None = None,
        rerun_base: int = 0,
        rerun_fraction: float = 0.2,
        max_repeats: int = 3,
    ):
        if not dimensions:
            raise UserError("search space: expected at least one parameter to search")
        names = [d.name for d in dimensions]
        if len(set(names)) != len(names):
            raise UserError(f"search space: names: expected unique parameter names, got {names}")
        if mode not in ("min", "max"):
            raise UserError(f"search: mode: expected 'min' or 'max', got {mode!r}")
        if max_cost is not None and not max_cost > 0:
            raise UserError(f"search: max_cost: expected a positive number, got {max_cost}")
        if not 0 < radius <= 1:
            raise UserError(f"search: radius: expected a number in (0, 1], got {radius}")
        if not 0 <= raise_front <= 1:
            raise UserError(f"search: raise_front: expected a probability in [0, 1], got {raise_front}")
        self.dimensions = tuple(dimensions)
        self.mode: Mode = mode
        self.seed = seed
        d = len(self.dimensions)
        self.n_initial = max(4, d + 1) if n_initial is None else max(1, n_initial)
        self.radius = radius
        self.n_candidates = max(1000, 100 * d) if n_candidates is None else n_candidates
        self.max_cost = max_cost
        self.max_points = max_points
        self.min_front_cost_quantile = min_front_cost_quantile
        self.raise_front = raise_front
        self.extrapolate_front = extrapolate_front
        if pending not in ("thompson", "front", "ignore"):
            raise UserError(f"search: pending: expected 'thompson', 'front' or 'ignore', got {pending!r}")
        self.pending = pending
        self.failure_model = failure_model
        self.pending_front = pending_front
        if front_by not in ("model", "observed"):
            raise UserError(f"search: front_by: expected 'model' or 'observed', got {front_by!r}")
        if rerun_key is not None and (not isinstance(rerun_key, str) or not rerun_key
                                      or rerun_key in names):
            raise UserError(f"search: rerun_key: expected the name of the config key that seeds a run "
                            f"(e.g. 'seed'), not a searched parameter; got {rerun_key!r}")
        if not 0 <= rerun_fraction <= 1:
            raise UserError(f"search: rerun_fraction: expected a fraction in [0, 1], got {rerun_fraction}")
        if max_repeats < 1:
            raise UserError(f"search: max_repeats: expected at least 1, got {max_repeats}")
        self.front_by = front_by
        if acquisition not in ("hypervolume", "front_ei"):
            raise UserError(f"search: acquisition: expected 'hypervolume' or 'front_ei', got {acquisition!r}")
        self.acquisition = acquisition
        self.rerun_key, self.rerun_base = rerun_key, int(rerun_base)
        self.rerun_fraction, self.max_repeats = rerun_fraction, int(max_repeats)
        self.n_reruns = 0
        self._sign = -1.0 if mode == "min" else 1.0  # goodness = sign * metric
        self._rng = np.random.default_rng(seed)
        self._observations: list[_Observation] = []
        self._pending: dict[str, list[float]] = {}
        self._theta: dict[str, np.ndarray] = {}  # last fitted GP hyperparameters, to warm-start the next fit
        self.n_suggested = 0
        self.last_info: dict[str, float] = {}
        self.last_front: list[dict[str, Any]] = []
        """The front the last model-based suggestion tried to improve on, by increasing cost: each point's
        `cost`, `metric` (as judged: observed, or the model's mean with ``front_by="model"``) and `pending`
        (True for a running trial's made-up outcome, with ``pending_front``)."""

    # ---- public API ------------------------------------------------------------------------------------------

    def suggest(self, key: str | None = None) -> dict[str, float | int]:
        """The next configuration to try; it stays pending (see `observe`, `forget`) under `key`."""
        key = f"suggestion-{self.n_suggested}" if key is None else str(key)
        repeat = None
        self.last_front = []
        if self._count("ok") < self.n_initial:
            unit, self.last_info = self._sample_around(self._center()[None, :], 1)[0], {"random": 1.0}
        else:
            try:
                unit, repeat = self._model_suggestion()
            except np.linalg.LinAlgError:  # a degenerate GP fit: fall back to sampling around the front
                done = [o for o in self._observations if o.status == "ok"]
                front = pareto_front([o.cost for o in done], [o.metric for o in done], mode=self.mode)
                origins = np.array([done[i].unit for i in front])
                unit, self.last_info = self._sample_around(origins, 1)[0], {"random": 1.0}
        config = self._config(unit)
        self._pending[key] = self._unit(config).tolist()
        self.n_suggested += 1
        if repeat is not None and self.rerun_key is not None:
            self.n_reruns += 1
            return {**config, self.rerun_key: self.rerun_base + repeat}
        return config

    def observe(
        self,
        config: Mapping[str, Any],
        metric: float | None,
        cost: float | None,
        *,
        failed: bool = False,
        pruned: bool = False,
        key: str | None = None,
    ) -> None:
        """Record a finished trial.

        `failed` (or a missing / non-finite metric) marks a trial that crashed or diverged: it trains the
        failure model only. `pruned` marks a trial a scheduler stopped early: its last metric enters the
        metric model (a pessimistic value, which is what the scheduler judged), but neither the cost
        model nor the front, since its cost is not what its configuration costs when run to the end.
        """
        missing = [d.name for d in self.dimensions if d.name not in config]
        if missing:
            raise UserError(f"observation: config: expected values for {missing}")
        metric_ok = metric is not None and math.isfinite(float(metric))
        cost_ok = cost is not None and math.isfinite(float(cost)) and float(cost) > 0
        if not failed and metric_ok and not cost_ok and not pruned:
            raise UserError(f"observation: cost: expected a positive finite number, got {cost!r}")
        unit = self._unit(config)
        self._drop_pending(key, unit)
        status = "failed" if failed or not metric_ok else ("pruned" if pruned else "ok")
        self._observations.append(
            _Observation(
                config={d.name: d.python_value(float(config[d.name])) for d in self.dimensions},
                unit=unit.tolist(),
                metric=float(metric) if metric_ok else None,
                cost=float(cost) if cost_ok else None,
                status=status,
            )
        )

    def forget(self, key: str) -> None:
        """Drop a pending suggestion that will never be observed (e.g. a trial removed before it ran)."""
        self._pending.pop(str(key), None)

    @property
    def total_cost(self) -> float:
        """Cost of every observation that reported one, failed and pruned trials included."""
        return float(sum(o.cost for o in self._observations if o.cost is not None))

    def observations(self) -> list[dict[str, Any]]:
        """Every observation as {config, metric, cost, status}, in order."""
        return [{k: v for k, v in asdict(o).items() if k != "unit"} for o in self._observations]

    def pareto_front(self) -> list[dict[str, Any]]:
        """The completed observations on the (cost, metric) front, by increasing cost."""
        done = [o for o in self._observations if o.status == "ok"]
        front = pareto_front([o.cost for o in done], [o.metric for o in done], mode=self.mode)
        return [{"config": dict(done[i].config), "metric": done[i].metric, "cost": done[i].cost} for i in front]

    def model_front(self) -> list[dict[str, Any]]:
        """The (cost, metric) front judged by the metric model's mean at each completed configuration: what
        a noisy front would be without its lucky and unlucky draws. Each point has its config, `metric` (the
        model's mean), `observed` (the mean of its runs), `runs` and `cost`, by increasing cost. Leaves the
        search's own state as it was."""
        done = [o for o in self._observations if o.status == "ok"]
        if len(done) < 2:
            return self.pareto_front()
        modelled = [o for o in self._observations if o.status in ("ok", "pruned")]
        gp, scale, _, _ = self._fit_metric(modelled, np.random.default_rng(self.seed))
        x = np.array([o.unit for o in done])
        mean = scale.inverse(gp.predict(x - 0.5))
        cost = np.array([o.cost for o in done])
        keys = [_point_key(u) for u in x]
        out = []
        for i in pareto_front(cost, mean, mode=self.mode):
            same = [o.metric for o, k in zip(done, keys, strict=True) if k == keys[i]]
            out.append({"config": dict(done[i].config), "metric": float(mean[i]), "observed": float(np.mean(same)),
                        "runs": len(same), "cost": float(done[i].cost)})
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically, as plain JSON-ready data."""
        return {
            "version": STATE_VERSION,
            "dimensions": [asdict(d) for d in self.dimensions],
            "mode": self.mode,
            "rng": self._rng.bit_generator.state,
            "n_suggested": self.n_suggested,
            "n_reruns": self.n_reruns,
            "observations": [asdict(o) for o in self._observations],
            "pending": {k: list(v) for k, v in self._pending.items()},
            "theta": {k: v.tolist() for k, v in self._theta.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state_dict()` output; the search space and mode must be the same."""
        if state.get("version") != STATE_VERSION:
            raise UserError(f"searcher state: version: expected {STATE_VERSION}, got {state.get('version')!r}")
        dims = [Dimension(**d) for d in state["dimensions"]]
        if tuple(dims) != self.dimensions or state["mode"] != self.mode:
            raise UserError("searcher state: dimensions: saved with a different search space or mode")
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self.n_suggested = int(state["n_suggested"])
        self.n_reruns = int(state.get("n_reruns", 0))
        self._observations = [_Observation(**o) for o in state["observations"]]
        self._pending = {str(k): list(v) for k, v in state["pending"].items()}
        self._theta = {k: np.array(v, dtype=float) for k, v in state["theta"].items()}

    # ---- the model-based suggestion --------------------------------------------------------------------------

    def _model_suggestion(self) -> tuple[np.ndarray, int | None]:
        """The next point in unit coordinates, and the seed offset when it re-runs a front point."""
        rng = self._rng
        done = [o for o in self._observations if o.status == "ok"]
        modelled = [o for o in self._observations if o.status in ("ok", "pruned")]
        x_done = np.array([o.unit for o in done])
        cost_done = np.array([o.cost for o in done])
        metric_done = np.array([o.metric for o in done])

        # Metric model, and cost model (log-cost of completed trials).
        metric_gp, scale, x_m, y_m = self._fit_metric(modelled, rng)
        self._theta["metric"] = metric_gp.kernel_.theta
        keep_c = self._subsample(done, rng)
        log_cost, lc_mean, lc_std = _standardise(np.log(cost_done[keep_c]))
        cost_gp = _fit_regressor(x_done[keep_c], log_cost, self._theta.get("cost"))
        self._theta["cost"] = cost_gp.kernel_.theta

        # The front in 1-D: goodness against log-cost, each point judged by the model's mean (which averages
        # the noise it fitted) or by what was observed.
        good_done = metric_gp.predict(x_done - 0.5) if self.front_by == "model" else scale(metric_done)
        front = pareto_front(cost_done, good_done, mode="max", min_cost_quantile=self.min_front_cost_quantile)
        origins = x_done[front]
        front_lc = np.log(cost_done[front])
        front_model = _FrontModel(front_lc, good_done[front], extrapolate=self.extrapolate_front)
        self._record_front(scale, front_lc, good_done[front], np.zeros(front.size, dtype=bool))

        noise_sd = _noise_sd(metric_gp)
        rerun = self._rerun_choice(x_done, cost_done, good_done, front, noise_sd)
        if rerun is not None:
            unit, repeat, lead = rerun
            self.last_info = {"random": 0.0, "rerun": 1.0, "repeat": float(repeat),
                              "lead_in_noise_sd": lead, "front_size": float(front.size)}
            return unit, repeat

        # Pending suggestions enter the metric model with made-up outcomes, so that the next suggestion
        # expects little from their neighbourhood.
        if self._pending and self.pending != "ignore":
            x_p = np.array(list(self._pending.values()))
            lc_p = cost_gp.predict(x_p - 0.5) * lc_std + lc_mean
            if self.pending == "thompson":
                lie = metric_gp.sample_y(x_p - 0.5, random_state=int(rng.integers(2**31)))[:, 0]
            else:  # "front": each pending trial just matches the front at its predicted cost
                lie = front_model(lc_p)
            x_m, y_m = np.vstack([x_m, x_p]), np.concatenate([y_m, lie])
            metric_gp = _fit_regressor(x_m, y_m, metric_gp.kernel_.theta, fixed=True)
            if self.pending_front:
                # the made-up outcomes also move the front, at their predicted costs: a running trial
                # expected to extend the front leaves less to gain around it
                lc_all = np.r_[np.log(cost_done), lc_p]
                good_all = np.r_[good_done, lie]
                both = pareto_front(np.exp(lc_all), good_all, mode="max",
                                    min_cost_quantile=self.min_front_cost_quantile)
                front_lc = lc_all[both]
                front_model = _FrontModel(front_lc, good_all[both], extrapolate=self.extrapolate_front)
                self._record_front(scale, front_lc, good_all[both], both >= cost_done.size)

        floor = -np.inf
        if front.size > 1 and rng.uniform() < self.raise_front:
            floor = float(front_model(np.array([rng.uniform(front_lc[0], front_lc[-1])]))[0])

        # Candidates around the front, scored.
        cands = self._sample_around(origins, self.n_candidates)
        cands = np.stack([d.to_unit(d.from_unit(cands[:, j])) for j, d in enumerate(self.dimensions)], axis=1)
        log_density = self._log_density(cands, origins)
        mu, sd = metric_gp.predict(cands - 0.5, return_std=True)
        pred_lc = cost_gp.predict(cands - 0.5) * lc_std + lc_mean
        if self.acquisition == "hypervolume":
            # expected hypervolume gained per unit of cost spent (the trial's predicted cost): the search has a
            # budget, and a cheap trial that adds a little can be worth more than a dear one that adds more
            gain = log_expected_hypervolume_improvement(
                mu, sd, pred_lc, front_model.lc, front_model.good,
                self._reference(metric_gp, cost_gp, (lc_mean, lc_std), np.log(cost_done), good_done, pred_lc, floor),
            ) - pred_lc
        else:
            gain = log_expected_improvement(mu, sd, np.maximum(front_model(pred_lc), floor))
        score = gain + log_density
        p_ok = self._success_probability(cands)
        score += np.log(np.maximum(p_ok, 1e-12))
        if self.max_cost is not None:
            too_costly = pred_lc > math.log(self.max_cost)
            if too_costly.all():  # nothing predicted affordable: take the cheapest candidate
                score = -pred_lc
            else:
                score[too_costly] = -np.inf
        i = int(np.argmax(score))
        self.last_info = {
            "random": 0.0,
            "predicted_metric": float(scale.inverse(mu[i : i + 1])[0]),
            "predicted_cost": float(np.exp(pred_lc[i])),
            "log_acquisition": float(score[i]),
            "p_success": float(p_ok[i]),
            "front_size": float(front.size),
            "noise_sd": noise_sd,
        }
        return cands[i], None

    def _reference(self, metric_gp: GaussianProcessRegressor, cost_gp: GaussianProcessRegressor,
                   lc_scale: tuple[float, float], lc_seen: np.ndarray, good_seen: np.ndarray, lc_cands: np.ndarray,
                   floor: float) -> tuple[float, float]:
        """The corner (log-cost, goodness) that bounds the hypervolume a suggestion would add: the dearest and
        the worst the models predict anywhere in the space (over a uniform sample of it) or that was seen,
        each 10% of its observed range beyond (the margin BoTorch's `infer_reference_point` adds to the
        observed nadir; here the bounds also cover the models' predictions over the space and, for cost,
        the candidates' predicted costs); the goodness no lower than `floor` (a raised front). Both must
        reach past what was seen: with the worst observed goodness as the floor, a point cheaper than every
        trial so far, and so worse than all of them, would add nothing, and with the dearest observed cost,
        a dearer one a sliver."""
        space = self._rng.uniform(size=(256, len(self.dimensions))) - 0.5
        lc_space = cost_gp.predict(space) * lc_scale[1] + lc_scale[0]
        ref_lc = max(lc_seen.max(), lc_cands.max(), lc_space.max()) + 0.1 * max(np.ptp(lc_seen), 1e-3)
        ref_good = min(good_seen.min(), metric_gp.predict(space).min()) - 0.1 * max(np.ptp(good_seen), 1e-3)
        return float(ref_lc), max(float(ref_good), floor)

    def _record_front(self, scale: _MetricScale, log_cost: np.ndarray, goodness: np.ndarray,
                      pending: np.ndarray) -> None:
        """Keep the front a suggestion works from as `last_front`, in the metric's units."""
        self.last_front = [{"cost": float(np.exp(lc)), "metric": float(m), "pending": bool(p)} for lc, m, p in
                           zip(log_cost, scale.inverse(goodness), pending, strict=True)]

    def _fit_metric(self, modelled: list[_Observation], rng: np.random.Generator
                    ) -> tuple[GaussianProcessRegressor, _MetricScale, np.ndarray, np.ndarray]:
        """The metric GP on (at most `max_points` of) the modelled observations, its scale, inputs and targets."""
        keep = self._subsample(modelled, rng)
        x_m = np.array([modelled[i].unit for i in keep])
        scale = _MetricScale(np.array([modelled[i].metric for i in keep]), self._sign)
        y_m = scale(np.array([modelled[i].metric for i in keep]))
        return _fit_regressor(x_m, y_m, self._theta.get("metric")), scale, x_m, y_m

    def _rerun_choice(self, x_done: np.ndarray, cost_done: np.ndarray, good_done: np.ndarray, front: np.ndarray,
                      noise_sd: float) -> tuple[np.ndarray, int, float] | None:
        """The front point whose lead over every cheaper point is least certain, when that lead is within
        two noise standard deviations of its mean over its runs: (its unit point, the seed offset of the
        next run, the lead in noise standard deviations). None when re-runs are off, would exceed their
        share of the suggestions, or no front point needs one."""
        if self.rerun_key is None or noise_sd <= 0:
            return None
        if self.n_reruns + 1 > self.rerun_fraction * (self.n_suggested + 1):
            return None
        keys = [_point_key(u) for u in x_done]
        pending = Counter(_point_key(np.asarray(u)) for u in self._pending.values())
        runs = Counter(keys)
        choice: tuple[np.ndarray, int, float] | None = None
        for i in front:
            key = keys[i]
            if runs[key] >= self.max_repeats or pending[key]:
                continue
            rivals = (cost_done <= cost_done[i]) & np.array([k != key for k in keys])
            if not rivals.any():  # the cheapest point leads no one
                continue
            lead = float(good_done[i] - good_done[rivals].max()) * math.sqrt(runs[key]) / noise_sd
            if lead < 2.0 and (choice is None or lead < choice[2]):
                choice = (x_done[i], runs[key], lead)
        return choice

    def _success_probability(self, cands: np.ndarray) -> np.ndarray:
        failed = [o for o in self._observations if o.status == "failed"]
        if not self.failure_model or not failed:
            return np.ones(len(cands))
        worked = [o for o in self._observations if o.status != "failed"]
        sample = self._subsample(worked, self._rng, keep=())
        x = np.array([worked[i].unit for i in sample] + [o.unit for o in failed[-self.max_points :]])
        ok = np.r_[np.ones(len(sample)), np.zeros(min(len(failed), self.max_points))]
        return _fit_classifier(x, ok).predict_proba(cands - 0.5)[:, 1]

    def _subsample(
        self, obs: list[_Observation], rng: np.random.Generator, keep: Sequence[int] | None = None
    ) -> np.ndarray:
        """Indices of at most `max_points` of `obs`: `keep` (default: the front), the best, then at random."""
        if len(obs) <= self.max_points:
            return np.arange(len(obs))
        if keep is None:
            done = [i for i, o in enumerate(obs) if o.status == "ok"]
            front = pareto_front([obs[i].cost for i in done], [obs[i].metric for i in done], mode=self.mode)
            keep = [done[j] for j in front]
        chosen = list(keep)[: self.max_points]
        taken = set(chosen)
        goodness = np.array([self._sign * o.metric if o.metric is not None else -np.inf for o in obs])
        ranked = [int(i) for i in np.argsort(-goodness, kind="stable") if int(i) not in taken]
        n_best = max(0, self.max_points // 2 - len(chosen))
        chosen += ranked[:n_best]
        chosen += rng.choice(ranked[n_best:], size=self.max_points - len(chosen), replace=False).tolist()
        return np.sort(np.array(chosen))

    # ---- sampling and coordinates ----------------------------------------------------------------------------

    def _sample_around(self, origins: np.ndarray, n: int) -> np.ndarray:
        """`n` points of the unit cube, normal around uniformly chosen origins (rejecting those outside)."""
        out: list[np.ndarray] = []
        got = 0
        for _ in range(20):
            o = origins[self._rng.integers(len(origins), size=2 * n)]
            x = o + self._rng.normal(0.0, self.radius, size=o.shape)
            x = x[np.all((x >= 0.0) & (x <= 1.0), axis=1)]
            out.append(x)
            got += len(x)
            if got >= n:
                break
        x = np.concatenate(out)[:n]
        if len(x) < n:  # origins pressed into a corner: fill with clipped samples
            o = origins[self._rng.integers(len(origins), size=n - len(x))]
            x = np.vstack([x, np.clip(o + self._rng.normal(0.0, self.radius, size=o.shape), 0.0, 1.0)])
        return x

    def _log_density(self, x: np.ndarray, origins: np.ndarray) -> np.ndarray:
        sq = ((x[:, None, :] - origins[None, :, :]) ** 2).sum(-1)
        return -0.5 * sq.min(axis=1) / self.radius**2

    def _center(self) -> np.ndarray:
        return np.array([d.unit_center for d in self.dimensions])

    def _config(self, unit: np.ndarray) -> dict[str, float | int]:
        return {d.name: d.python_value(float(d.from_unit(u))) for d, u in zip(self.dimensions, unit, strict=True)}

    def _unit(self, config: Mapping[str, Any]) -> np.ndarray:
        return np.array([float(d.to_unit(config[d.name])) for d in self.dimensions])

    def _count(self, status: str) -> int:
        return sum(o.status == status for o in self._observations)

    def _drop_pending(self, key: str | None, unit: np.ndarray) -> None:
        if key is not None and str(key) in self._pending:
            del self._pending[str(key)]
            return
        for k, v in self._pending.items():
            if np.allclose(v, unit, rtol=0.0, atol=1e-9):
                del self._pending[k]
                return


# --------------------------------------------------------------------------------------------------------------
# Ray Tune


class CostAwareProposer(Proposer):
    """`CostAwareSearch` as a `Proposer` (Ray Tune drives it through `sweeper.search.tune`).

    Each finished trial is observed with `metric` and `cost` (e.g. "m.loss" and "cost" or "flops") from
    its last result, or the latest result that had them. Errored trials, and trials whose metric is NaN or
    infinite, train the failure model.

    With a scheduler that stops trials early (ASHA, Hyperband), Tune hands the searcher the last result
    of a stopped trial exactly as it does for one that ran to the end, so the two cannot be told apart by
    Tune alone. Pass `complete_key`: the name of a result entry that is true only in a trial's final,
    completed report (sweeper's trainable sends `FINAL_KEY`, "sweeper.final", when the workload returns).
    A trial whose last result lacks it is observed as pruned: its metric counts, as the pessimistic value
    the scheduler judged it on, but its cost and its place on the front do not. Without `complete_key`,
    every trial is taken at face value: what it reached for what it spent.

    After a crash (`requeue_unfinished`) the observations are kept and the trials that were in flight are
    forgotten (they never report to the new process).
    """

    def __init__(
        self,
        dimensions: Sequence[Dimension],
        *,
        metric: str = "m.loss",
        cost: str = "cost",
        mode: Mode = "min",
        complete_key: str | None = None,
        seed: int = 0,
        **options: Any,
    ):
        accepted = set(inspect.signature(CostAwareSearch).parameters) - {"dimensions", "mode", "seed"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise UserError(f"search.options: cost_aware has no option(s) {unknown}; it takes {sorted(accepted)}")
        self.search = CostAwareSearch(dimensions, mode=mode, seed=seed, **options)
        self.metric = metric
        self.cost_key = cost
        self.complete_key = complete_key
        self._live: dict[str, dict[str, Any]] = {}
        self._latest: dict[str, dict[str, float]] = {}  # trial -> last reported metric and cost

    def suggest(self, trial_id: str) -> dict[str, Any]:
        config = self.search.suggest(key=trial_id)
        self._live[trial_id] = config
        return dict(config)

    def observe(self, trial_id: str, result: Mapping[str, Any] | None, *, final: bool, error: bool = False) -> None:
        if not final:
            # Metrics may come only in some reports (e.g. at evaluation steps): keep the latest of each, so a
            # trial stopped right after a report without them is still observed with its last values.
            latest = self._latest.setdefault(trial_id, {})
            for key in (self.metric, self.cost_key):
                if (result or {}).get(key) is not None:
                    latest[key] = result[key]
            return
        config = self._live.pop(trial_id, None)
        latest = {**self._latest.pop(trial_id, {}), **{k: v for k, v in (result or {}).items() if v is not None}}
        if config is None:
            return
        metric, cost = latest.get(self.metric), latest.get(self.cost_key)
        if error:
            self.search.observe(config, None, cost, failed=True, key=trial_id)
            return
        if result is None:  # removed before it ever ran
            self.search.forget(trial_id)
            return
        pruned = self.complete_key is not None and not result.get(self.complete_key)
        if pruned and metric is None:  # stopped before it reported the metric: nothing learned
            self.search.forget(trial_id)
            return
        if metric is not None and cost is None:
            raise UserError(f"search: cost: trial results have no {self.cost_key!r}; got {sorted(result)}")
        self.search.observe(config, metric, cost, pruned=pruned, key=trial_id)

    def requeue_unfinished(self) -> int:
        stale = list(self._live)
        for trial_id in stale:
            self.search.forget(trial_id)
        self._live, self._latest = {}, {}
        return len(stale)

    def state_dict(self) -> dict[str, Any]:
        return {"search": self.search.state_dict(), "live": self._live, "latest": self._latest}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.search.load_state_dict(state["search"])
        self._live = {str(k): dict(v) for k, v in state["live"].items()}
        self._latest = {str(k): dict(v) for k, v in state["latest"].items()}
