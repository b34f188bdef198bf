"""RegMix: a regression from data-mixture weights to a target metric, and a search of the simplex with it.

After Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model Pre-training". Many small
proxies are trained on mixtures drawn around a prior; a regression learns the target (e.g. a validation
loss) from the weights; the regression then scores many fresh mixtures and the mean of the best few is
the predicted best mixture.

Regressions (``MODELS``), each scored by the Spearman rank correlation of its k-fold out-of-fold
predictions with the measured target (ranking mixtures is what the search needs):

- ``lightgbm``: gradient-boosted trees with the paper's settings (1000 rounds at learning rate 0.01).
  The paper's notebook stops boosting early on its held-out mixtures; here there is no held-out set to
  peek at, so the rounds are fixed. Leaves need ``min(20, n/25)`` rows (at least 3), LightGBM's default
  of 20 for a few hundred proxies and still able to split a few dozen.
- ``linear``: ridge regression on the weights (the paper's linear model; the penalty by leave-one-out).
- ``logquad``: ridge regression on a second-order polynomial of ``log(weight + floor)``. Losses move with
  the logarithm of a domain's share, and the cross terms let domains substitute for one another; the
  floor (0.1% of the mixture by default) treats any smaller share as about as good as none.
- ``ensemble``: the mean of ``lightgbm`` and ``logquad``: trees capture thresholds and interactions the
  smooth model misses, the smooth model carries the trend between and beyond the trees' steps.

Target transforms (``TRANSFORMS``): the regression may learn a monotone transform of the target rather
than the target itself. ``rank`` (each mixture's rank among the measured ones, scaled to 0-1) keeps what
the search needs, the order, and stops a few very bad mixtures (a proxy trained only on arithmetic can
score twice the loss of any sensible mixture) from spending the regression's capacity on the corners of
the simplex; ``log`` and ``inverse`` (-1/y) compress large values less bluntly; ``none`` keeps the
magnitudes, which on a smooth, quiet target place the optimum more precisely than ranks do. ``auto`` (the
default) cross-validates every model on every transform with the same folds and keeps the best pair.
Predictions are mapped back to target units (for ``rank`` by interpolating between the measured values, so
they never leave their range); the search ranks mixtures by the model's own score.

`fit_mixture` scores the requested models and refits the best on all rows; `search_simplex` draws fresh
mixtures from the prior with `sweeper.maths.simplex.sample_mixtures` and averages the top k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sweeper.errors import ParameterError, UserError

if TYPE_CHECKING:
    from sweeper.maths.simplex import DirichletOptions

MODELS: tuple[str, ...] = ("lightgbm", "linear", "logquad", "ensemble")
TRANSFORMS: tuple[str, ...] = ("none", "rank", "log", "inverse")
AUTO = "auto"
DEFAULT_TRANSFORM = AUTO
ENSEMBLE_MEMBERS: tuple[str, ...] = ("lightgbm", "logquad")
LOG_FLOOR = 1e-3
MIN_ROWS = 8
RIDGE_ALPHAS = np.logspace(-6, 4, 41)
PREDICT_CHUNK = 16_384

Mode = Literal["min", "max"]


# --------------------------------------------------------------------------------------------------------------
# Regressions


def _log_floor(x: np.ndarray, floor: float = LOG_FLOOR) -> np.ndarray:
    return np.log(np.asarray(x, dtype=float) + floor)


def make_model(name: str, *, n_rows: int, seed: int = 0, floor: float = LOG_FLOOR) -> Any:
    """An unfitted scikit-learn-style regressor for ``name`` (one of ``MODELS``), sized for ``n_rows``."""
    from sklearn.ensemble import VotingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

    if name == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMRegressor(
            n_estimators=1000, learning_rate=0.01, num_leaves=31,
            min_child_samples=int(np.clip(n_rows // 25, 3, 20)),
            random_state=seed, deterministic=True, force_row_wise=True, n_jobs=1, verbosity=-1)
    if name == "linear":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    if name == "logquad":
        return make_pipeline(
            FunctionTransformer(_log_floor, kw_args={"floor": floor}), StandardScaler(),
            PolynomialFeatures(degree=2, include_bias=False), StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    if name == "ensemble":
        return VotingRegressor([(m, make_model(m, n_rows=n_rows, seed=seed, floor=floor))
                                for m in ENSEMBLE_MEMBERS])
    raise ParameterError("models", f"{name}: unknown regression (expected one of {', '.join(MODELS)})")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True)
class TargetTransform:
    """A monotone increasing map from target values to the scale the regression learns, and back.

    Built from the measured targets (``rank`` needs them to map a score back to a value).
    """

    name: str
    measured: np.ndarray

    def forward(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if self.name == "rank":
            from scipy.stats import rankdata

            return (rankdata(y) - 0.5) / len(y)
        if self.name == "log":
            return np.log(y)
        if self.name == "inverse":
            return -1.0 / y
        return y

    def inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        if self.name == "rank":
            ordered = np.sort(self.measured)
            return np.interp(z, (np.arange(len(ordered)) + 0.5) / len(ordered), ordered)
        if self.name == "log":
            return np.exp(z)
        if self.name == "inverse":
            return -1.0 / np.minimum(z, -1e-12)
        return z


def make_transform(name: str, y: np.ndarray, target_name: str = "target") -> TargetTransform:
    """The `TargetTransform` ``name`` (one of ``TRANSFORMS``) for measured targets ``y``."""
    if name not in TRANSFORMS:
        raise ParameterError("transform", f"{name!r}: expected one of {', '.join(TRANSFORMS)}")
    if name in ("log", "inverse") and not (np.asarray(y) > 0).all():
        raise UserError(f"{target_name}: the {name} transform needs positive values, "
                        f"found {int((np.asarray(y) <= 0).sum())} at or below zero")
    return TargetTransform(name, np.asarray(y, dtype=float))


@dataclass(frozen=True)
class MixtureFit:
    """A fitted regression from mixture weights to a target, with its cross-validation record.

    ``model`` is the regression used; ``cv_rho`` holds the k-fold Spearman rho of every model tried and
    ``cv_predictions`` their out-of-fold predictions in target units (row order of ``weights``);
    ``cv_scores`` are the same on the transformed scale the regression learns.
    """

    domains: tuple[str, ...]
    target_name: str
    model: str
    estimator: Any
    cv_rho: dict[str, float]
    cv_predictions: dict[str, np.ndarray]
    folds: int
    weights: np.ndarray
    target: np.ndarray
    seed: int = 0
    floor: float = LOG_FLOOR
    fitted: np.ndarray = field(default_factory=lambda: np.empty(0))
    transform: TargetTransform | None = None
    cv_scores: dict[str, np.ndarray] = field(default_factory=dict)
    cv_rho_by_transform: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rho(self) -> float:
        """The k-fold cross-validated Spearman rho of the model used."""
        return self.cv_rho[self.model]

    @property
    def n_rows(self) -> int:
        return len(self.target)

    @property
    def transform_name(self) -> str:
        return self.transform.name if self.transform is not None else "none"

    def predict(self, weights: np.ndarray | Mapping[str, float]) -> np.ndarray:
        """Predicted target for mixtures: an ``(n, domains)`` array (rows are normalised) or one mapping."""
        scores = self.score(weights)
        return scores if self.transform is None else self.transform.inverse(scores)

    def score(self, weights: np.ndarray | Mapping[str, float]) -> np.ndarray:
        """The regression's output on its own (transformed) scale: increasing in the predicted target, and
        unlike ``predict`` never clipped to the measured range, so it still orders the extremes."""
        if isinstance(weights, Mapping):
            from sweeper.maths.simplex import as_mixture

            mix = as_mixture(weights, self.domains)
            weights = np.array([[mix[d] for d in self.domains]])
        x = _as_weights(weights, len(self.domains), "weights")
        return np.concatenate([self.estimator.predict(x[i:i + PREDICT_CHUNK])
                               for i in range(0, len(x), PREDICT_CHUNK)]) if len(x) else np.empty(0)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the fit."""
        rho = {m: (None if np.isnan(r) else r) for m, r in self.cv_rho.items()}
        return {"target": self.target_name, "model": self.model, "cv_spearman": rho,
                "folds": self.folds, "rows": self.n_rows, "domains": list(self.domains),
                "seed": self.seed, "log_floor": self.floor, "transform": self.transform_name,
                "cv_spearman_by_transform": {t: {m: (None if np.isnan(r) else r) for m, r in rhos.items()}
                                             for t, rhos in self.cv_rho_by_transform.items()}}


def _as_weights(weights: Any, n_domains: int | None, where: str) -> np.ndarray:
    x = np.asarray(weights, dtype=float)
    if x.ndim != 2 or (n_domains is not None and x.shape[1] != n_domains):
        want = f"(rows, {n_domains})" if n_domains is not None else "(rows, domains)"
        raise UserError(f"{where}: expected an array of shape {want}, got {x.shape}")
    if not np.isfinite(x).all() or (x < 0).any():
        raise UserError(f"{where}: expected finite non-negative mixture weights")
    sums = x.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise UserError(f"{where}: {int((sums <= 0).sum())} rows have no positive weight")
    return x / sums


def fit_mixture(weights: np.ndarray, target: np.ndarray, domains: Sequence[str] | None = None, *,
                models: Sequence[str] = MODELS, folds: int = 5, seed: int = 0, floor: float = LOG_FLOOR,
                target_name: str = "target", transform: str = DEFAULT_TRANSFORM) -> MixtureFit:
    """Fit the regressions in ``models`` from mixture ``weights`` (rows normalised to sum to one) to
    ``target`` (through ``transform``: one of ``TRANSFORMS``, or ``auto`` to try each), score each by
    ``folds``-fold cross-validated Spearman rho (against the measured target) and refit the best on all rows.

    Ties go to the model, then the transform, listed first. Out-of-fold predictions of ``ensemble`` are the
    mean of its members' (the same folds, so this equals cross-validating the ensemble itself).
    """
    from sklearn.model_selection import KFold, cross_val_predict

    y = np.asarray(target, dtype=float).ravel()
    x = _as_weights(weights, None if domains is None else len(domains), "weights")
    names = tuple(domains) if domains is not None else tuple(f"w{i}" for i in range(x.shape[1]))
    if len(x) != len(y):
        raise UserError(f"{target_name}: expected one value per mixture ({len(x)}), got {len(y)}")
    if not np.isfinite(y).all():
        raise UserError(f"{target_name}: expected finite values, found {int((~np.isfinite(y)).sum())} missing")
    if len(y) < MIN_ROWS:
        raise UserError(f"{target_name}: need at least {MIN_ROWS} mixtures with a value to fit, got {len(y)}")
    if np.ptp(y) == 0:
        raise UserError(f"{target_name}: every mixture has the same value ({y[0]:.6g}); nothing to learn")
    if not models:
        raise ParameterError("models", "expected at least one of " + ", ".join(MODELS))
    for name in models:
        if name not in MODELS:
            raise ParameterError("models", f"{name}: unknown regression (expected one of {', '.join(MODELS)})")
    if folds < 2:
        raise ParameterError("folds", f"expected at least 2, got {folds}")
    if not floor > 0:
        raise UserError(f"log floor: expected a positive number, got {floor}")

    if transform != AUTO and transform not in TRANSFORMS:
        raise ParameterError("transform", f"{transform!r}: expected {AUTO} or one of {', '.join(TRANSFORMS)}")
    k = min(folds, len(y))
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    base = [m for m in MODELS if m != "ensemble" and (m in models or ("ensemble" in models and m in ENSEMBLE_MEMBERS))]
    tried = [t for t in TRANSFORMS if t not in ("log", "inverse") or (y > 0).all()] if transform == AUTO \
        else [transform]
    by_transform: dict[str, tuple[TargetTransform, dict[str, np.ndarray], dict[str, float]]] = {}
    for name in tried:
        tf = make_transform(name, y, target_name)
        z = tf.forward(y)
        oof = {m: cross_val_predict(make_model(m, n_rows=len(y), seed=seed, floor=floor), x, z, cv=splitter)
               for m in base}
        if "ensemble" in models:
            oof["ensemble"] = np.mean([oof[m] for m in ENSEMBLE_MEMBERS], axis=0)
        oof = {m: oof[m] for m in models}
        by_transform[name] = (tf, oof, {m: spearman(p, y) for m, p in oof.items()})
    order = [(t, m) for t in tried for m in models]

    def score(pair: tuple[str, str]) -> tuple[float, int]:
        r = by_transform[pair[0]][2][pair[1]]
        return (-np.inf if np.isnan(r) else r, -order.index(pair))

    chosen, best = max(order, key=score)
    tf, oof, rho = by_transform[chosen]
    estimator = make_model(best, n_rows=len(y), seed=seed, floor=floor).fit(x, tf.forward(y))
    return MixtureFit(domains=names, target_name=target_name, model=best, estimator=estimator, cv_rho=rho,
                      cv_predictions={m: tf.inverse(p) for m, p in oof.items()}, folds=k, weights=x, target=y,
                      seed=seed, floor=floor, fitted=tf.inverse(estimator.predict(x)), transform=tf, cv_scores=oof,
                      cv_rho_by_transform={t: v[2] for t, v in by_transform.items()})


# --------------------------------------------------------------------------------------------------------------
# Simplex search


@dataclass(frozen=True)
class MixturePick:
    """The predicted best mixture: the mean of the ``top_k`` best-scored of ``n_samples`` draws.

    ``predicted`` is the model's prediction at the pick itself, ``top_mean`` the mean prediction of the
    top ``top_k`` draws, ``top`` those draws (rows in ``domains`` order).
    """

    mixture: dict[str, float]
    predicted: float
    top_mean: float
    top_k: int
    n_samples: int
    mode: Mode
    prior: dict[str, float]
    top: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"mixture": self.mixture, "predicted": self.predicted, "top_mean": self.top_mean,
                "top_k": self.top_k, "samples": self.n_samples, "mode": self.mode, "prior": self.prior}


def search_simplex(fit: MixtureFit, prior: Mapping[str, float] | Sequence[float] | None = None, *,
                   n_samples: int = 100_000, top_k: int = 128, mode: Mode = "min", seed: int = 0,
                   options: DirichletOptions | None = None, plausible_within: float | None = 3.0) -> MixturePick:
    """Score ``n_samples`` mixtures drawn around ``prior`` with ``fit`` and average the ``top_k`` best.

    ``prior`` defaults to the mean of the fitted mixtures (for proxies drawn around a prior, an estimate
    of it). ``options`` is a `sweeper.maths.simplex.DirichletOptions` (default: its defaults).

    With ``plausible_within`` (k), a draw whose prediction is better than the best measured target by more
    than k typical (median absolute, cross-validated) errors of the model does not compete: that is
    extrapolation (a log-quadratic can predict losses far below any measured one in a corner of the
    simplex no proxy visited), not evidence.
    """
    from sweeper.maths.simplex import normalize_prior, sample_mixtures

    if mode not in ("min", "max"):
        raise ParameterError("mode", f"expected min or max, got {mode!r}")
    if n_samples < 1 or not 1 <= top_k <= n_samples:
        raise UserError(f"--samples, --top-k: expected 1 <= top_k <= samples, got {top_k} of {n_samples}")
    centre = fit.weights.mean(axis=0) if prior is None else normalize_prior(prior, fit.domains)
    samples = sample_mixtures(centre, n_samples, seed=seed, options=options)
    scores = fit.score(samples)
    if plausible_within is not None:
        z = fit.transform.forward(fit.target) if fit.transform is not None else fit.target
        cv = fit.cv_scores.get(fit.model, fit.cv_predictions[fit.model])
        margin = plausible_within * float(np.median(np.abs(cv - z)))
        ok = scores >= z.min() - margin if mode == "min" else scores <= z.max() + margin
        if ok.sum() >= top_k:
            samples, scores = samples[ok], scores[ok]
    order = np.argsort(scores if mode == "min" else -scores, kind="stable")[:top_k]
    top = samples[order]
    pick = top.mean(axis=0)
    pick /= pick.sum()
    mixture = dict(zip(fit.domains, pick.tolist(), strict=True))
    return MixturePick(mixture=mixture, predicted=float(fit.predict(pick[None, :])[0]),
                       top_mean=float(fit.predict(top).mean()), top_k=top_k, n_samples=len(samples), mode=mode,
                       prior=dict(zip(fit.domains, centre.tolist(), strict=True)), top=top)


def round_mixture(mixture: Mapping[str, float], digits: int = 6) -> dict[str, float]:
    """Weights rounded to ``digits`` decimals that still sum to one (the rounding error goes to the largest)."""
    rounded = {d: round(float(w), digits) for d, w in mixture.items()}
    largest = max(rounded, key=lambda d: rounded[d])
    rounded[largest] = round(rounded[largest] + 1.0 - sum(rounded.values()), digits)
    return rounded


def mixture_yaml(pick: MixturePick, fit: MixtureFit, param: str = "mix", source: str | None = None) -> str:
    """The pick as YAML a study can use as a fixed mixture (``mix: {domain: weight}``), with the predicted
    target value and how it was found as comments."""
    import yaml

    lines = [
        f"# RegMix predicted best mixture{f' for {source}' if source else ''}",
        f"# predicted {fit.target_name}: {pick.predicted:.6g} ({'lower' if pick.mode == 'min' else 'higher'} "
        "is better)",
        f"# mean of the top {pick.top_k} of {pick.n_samples} mixtures drawn around the prior, scored by "
        f"{fit.model} (k={fit.folds} cross-validated Spearman rho {fit.rho:.4f} on {fit.n_rows} mixtures)",
    ]
    body = yaml.safe_dump({param: round_mixture(pick.mixture)}, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + body
