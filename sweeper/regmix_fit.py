"""RegMix steps 3-4 as a library pipeline: proxies (with their seed replicates) in, a fitted regression, the
predicted best mixture and its baselines out. ``sweeper fit mixture`` and the study pipeline
(`sweeper.regmix`) both call it; it prints nothing.

Replicates: a study may train some proxy mixtures again with other seeds (rows of phase ``replicate``).
They measure the noise (`sweeper.laws.noise`), and a replicated mixture enters the regression as the
mean over its seeds, moved by each seed's shared shift to the proxies' own seed, so that it stays
comparable with the other proxies (which all ran that seed).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sweeper.errors import UserError
from sweeper.laws import mixture as mx
from sweeper.laws.noise import NoiseEstimate, estimate_noise
from sweeper.results import StudyResults
from sweeper.tables import write_table

REPLICATE_PHASE = "replicate"
WEIGHT_DIGITS = 9  # weights rounded this far identify one mixture across runs


class Baseline(str, Enum):
    """What the RegMix pick is compared with."""

    PICK = "regmix"
    UNIFORM = "uniform"
    PRIOR = "prior"
    BEST_PROXY = "best_proxy"


@dataclass(frozen=True)
class Proxies:
    """One row per proxy mixture: weights and target (seed-adjusted mean where replicated)."""

    frame: pl.DataFrame
    columns: list[str]
    domains: list[str]
    target: str
    noise: NoiseEstimate | None = None

    @property
    def weights(self) -> np.ndarray:
        return weight_matrix(self.frame, self.columns, "proxies")

    @property
    def values(self) -> np.ndarray:
        return self.frame[self.target].to_numpy()


@dataclass(frozen=True)
class RegMixFit:
    """The fitted regression, the pick, and the baselines it is compared with (keyed by `Baseline`)."""

    fit: mx.MixtureFit
    pick: mx.MixturePick
    baselines: dict[Baseline, dict[str, float]]
    predicted: dict[Baseline, float]
    prior_known: bool
    best_measured: float
    noise: NoiseEstimate | None = None

    def label(self, baseline: Baseline) -> str:
        """The name a baseline has in outputs and plots."""
        if baseline is Baseline.PRIOR and not self.prior_known:
            return "mean of fitted mixtures"
        return {Baseline.PICK: "RegMix pick", Baseline.BEST_PROXY: "best fitted mixture"}.get(baseline,
                                                                                               baseline.value)

    def predicted_better_than_pick(self) -> list[Baseline]:
        """Baselines the model itself predicts better than the averaged pick (compared on the model's own
        scale, which a rank transform does not clip)."""
        score = {b: float(self.fit.score(m)[0]) for b, m in self.baselines.items()}
        pick = score[Baseline.PICK]
        better = (lambda v: v < pick) if self.pick.mode == "min" else (lambda v: v > pick)
        return [b for b, v in score.items() if b is not Baseline.PICK and better(v)]

    def summary(self, source: str, weights: Sequence[str], held_out_spearman: float | None = None) -> dict[str, Any]:
        """The content of ``mixture_fit.json``."""
        return {
            "source": source, "weights": list(weights), **self.fit.summary(), "held_out_spearman": held_out_spearman,
            "pick": self.pick.summary(),
            "baselines": {self.label(b): {"mixture": m, "predicted": self.predicted[b]}
                          for b, m in self.baselines.items()},
            "best_fitted_measured": self.best_measured,
            "noise": self.noise.summary() if self.noise is not None else None,
        }


def fit_and_search(proxies: Proxies, prior: Mapping[str, float] | None, *, mode: str = "min",
                   models: Sequence[str] = mx.MODELS, folds: int = 5, seed: int = 0, samples: int = 100_000,
                   top_k: int = 128, transform: str = mx.DEFAULT_TRANSFORM) -> RegMixFit:
    """Fit the regressions (on ``transform`` of the target), keep the best by cross-validated Spearman rho,
    search the simplex around ``prior`` (None: the mean of the proxies) and predict every baseline."""
    x, y = proxies.weights, proxies.values
    fit = mx.fit_mixture(x, y, proxies.domains, models=models, folds=folds, seed=seed, target_name=proxies.target,
                         transform=transform)
    pick = mx.search_simplex(fit, prior, n_samples=samples, top_k=top_k, mode=mode, seed=seed)
    best_row = int(np.argmin(y) if mode == "min" else np.argmax(y))
    domains = proxies.domains
    baselines = {
        Baseline.PICK: pick.mixture,
        Baseline.UNIFORM: {d: 1.0 / len(domains) for d in domains},
        Baseline.PRIOR: pick.prior,
        Baseline.BEST_PROXY: dict(zip(domains, fit.weights[best_row].tolist(), strict=True)),
    }
    predicted = {b: float(fit.predict(m)[0]) for b, m in baselines.items()}
    return RegMixFit(fit=fit, pick=pick, baselines=baselines, predicted=predicted, prior_known=prior is not None,
                     best_measured=float(y[best_row]), noise=proxies.noise)


# --------------------------------------------------------------------------------------------------------------
# Inputs


def weight_columns(names: Sequence[str], pattern: str, source: str) -> tuple[list[str], list[str]]:
    """Columns whose names match the glob ``pattern`` (in table order) and their domain names: the column
    names without the pattern's literal prefix and suffix (``mix.code`` -> ``code`` for ``mix.*``)."""
    columns = [c for c in names if fnmatch.fnmatchcase(c, pattern)]
    if len(columns) < 2:
        raise UserError(f"{source}: weights {pattern!r}: expected at least two matching columns, found "
                        f"{len(columns)} (columns: {', '.join(names[:30])}{', ...' if len(names) > 30 else ''})")
    wild = [i for i, ch in enumerate(pattern) if ch in "*?[]"]
    prefix, suffix = (pattern[:wild[0]], pattern[wild[-1] + 1:]) if wild else ("", "")
    domains = [c[len(prefix):len(c) - len(suffix)] for c in columns]
    if len(set(domains)) != len(domains) or not all(domains):
        domains = list(columns)
    return columns, domains


def weight_matrix(frame: pl.DataFrame, columns: Sequence[str], source: str) -> np.ndarray:
    """The weight columns as a float array; a UserError for missing or non-numeric weights."""
    x = frame.select(pl.col(c).cast(pl.Float64, strict=False) for c in columns).to_numpy()
    bad = ~np.isfinite(x)
    if bad.any():
        col = columns[int(np.argmax(bad.any(axis=0)))]
        raise UserError(f"{source}: {col}: {int(bad.any(axis=1).sum())} rows have a missing or non-numeric weight")
    return x


def proxies_from_table(frame: pl.DataFrame, pattern: str, target: str, source: str) -> tuple[Proxies, int]:
    """Proxies from any table (one row per mixture); also returns how many rows had no target."""
    columns, domains = weight_columns(frame.columns, pattern, source)
    if target not in frame.columns:
        numeric = [c for c, t in frame.schema.items() if t.is_numeric() and c not in columns]
        raise UserError(f"{source}: target: no column {target!r}; numeric columns: {', '.join(numeric)}")
    if target in columns:
        raise UserError(f"target: {target!r} is also matched by the weights {pattern!r}")
    frame = frame.with_columns(pl.col(target).cast(pl.Float64, strict=False))
    valid = frame[target].is_not_null() & frame[target].is_not_nan()
    return Proxies(frame.filter(valid), columns, domains, target), int((~valid).sum())


def load_study_proxies(study_dir: str | Path, target: str, phase: str = "search", pattern: str = "mix.*",
                       replicate_phase: str = REPLICATE_PHASE) -> tuple[Proxies, int]:
    """A study's proxies: its finished trials of ``phase`` ordered by mixture (so the same proxies give the
    same folds), with the replicates of ``replicate_phase`` folded in and the noise they measure."""
    results = StudyResults(study_dir)
    trials = results.finished_trials(phase)
    if trials.is_empty():
        raise UserError(f"{study_dir}: no trial has finished (status done) yet")
    weights = sorted(c for c in trials.columns if c.startswith("mix."))
    trials = trials.sort([*weights, "trial_id"])
    proxies, missing = proxies_from_table(trials, pattern, target, str(study_dir))
    replicates = results.finished_trials(replicate_phase) if replicate_phase != phase else pl.DataFrame()
    if replicates.is_empty() or target not in replicates.columns:
        return proxies, missing
    return _fold_in_replicates(proxies, replicates), missing


def _mixture_key(frame: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    return pl.Series("mixture_key", ["|".join(f"{v:.{WEIGHT_DIGITS}f}" for v in row)
                                     for row in weight_matrix(frame, columns, "proxies")])


def _fold_in_replicates(proxies: Proxies, replicates: pl.DataFrame) -> Proxies:
    """Add the replicate runs to their proxies: the noise estimate, and a seed-adjusted mean target."""
    target, columns = proxies.target, proxies.columns
    base = proxies.frame.with_columns(_mixture_key(proxies.frame, columns))
    reps = replicates.with_columns(pl.col(target).cast(pl.Float64, strict=False)).drop_nulls(target)
    reps = reps.with_columns(_mixture_key(reps, columns))
    runs = pl.concat([base.select("mixture_key", "seed", target), reps.select("mixture_key", "seed", target)])
    runs = runs.filter(pl.col("mixture_key").is_in(reps["mixture_key"].unique().to_list()))
    if runs.is_empty():
        return proxies
    table = runs.pivot(on="seed", index="mixture_key", values=target, aggregate_function="mean").sort("mixture_key")
    seeds = [c for c in table.columns if c != "mixture_key"]
    values = table.select(seeds).to_numpy().astype(float)
    noise = estimate_noise(values, proxies.values)
    # each seed's shared shift against the proxies' own seed, from the seeds every replicated mixture ran
    proxy_seed = str(base["seed"].mode()[0]) if "seed" in base.columns and base["seed"].len() else None
    complete = np.all(np.isfinite(values), axis=0)
    shift = np.zeros(len(seeds))
    if proxy_seed in seeds and complete[seeds.index(proxy_seed)]:
        col_means = np.where(complete, np.nanmean(values, axis=0), np.nan)
        shift = np.nan_to_num(col_means - col_means[seeds.index(proxy_seed)])
    adjusted = np.nanmean(values - shift, axis=1)
    means = dict(zip(table["mixture_key"].to_list(), adjusted.tolist(), strict=True))
    frame = base.with_columns(
        pl.col("mixture_key").replace_strict(means, default=None, return_dtype=pl.Float64).alias("_mean"))
    frame = frame.with_columns(pl.coalesce("_mean", target).alias(target)).drop("_mean", "mixture_key")
    return Proxies(frame, columns, proxies.domains, target, noise)


def study_prior(study_dir: str | Path, domains: Sequence[str]) -> dict[str, float] | None:
    """The prior the study in ``DIR/study.yaml`` sampled its mixtures around (its simplex parameter's
    ``prior``, else the workload's token shares; see `sweeper.plan.mixture_prior`), if there is one."""
    from sweeper.maths.simplex import as_mixture
    from sweeper.plan import mixture_prior
    from sweeper.spec import load_study

    path = Path(study_dir) / "study.yaml"
    try:
        study = load_study(path)
    except UserError:
        return None
    if not any(getattr(p, "type", None) == "simplex" for p in study.space.values()):
        return None
    return as_mixture(mixture_prior(study), domains, f"{path}: prior")


# --------------------------------------------------------------------------------------------------------------
# Outputs


def write_outputs(result: RegMixFit, proxies: Proxies, out_dir: Path, *, source: str, keep: Sequence[str] = (),
                  predictions_path: Path | None = None, extra_sets: Sequence[tuple[str, Any, Any]] = (),
                  held_out_spearman: float | None = None) -> list[Path]:
    """Write the predictions table, ``best_mixture.yaml``, the two figures and ``mixture_fit.json``."""
    from sweeper.laws import mixture_plots

    fit, pick = result.fit, result.pick
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys([*keep, *proxies.columns, proxies.target]))
    fitted = proxies.frame.select(cols).with_columns(
        pl.Series("predicted_cv", fit.cv_predictions[fit.model]), pl.Series("predicted", fit.fitted))
    written = [write_table(fitted, predictions_path or out_dir / "mixture_predictions.csv")]
    yaml_path = out_dir / "best_mixture.yaml"
    yaml_path.write_text(mx.mixture_yaml(pick, fit, source=source))
    written.append(yaml_path)
    sets = [(f"proxies, {fit.folds}-fold CV ({fit.n_rows}), rho {fit.rho:.4f}", proxies.values,
             fit.cv_predictions[fit.model]), *extra_sets]
    written.append(mixture_plots.plot_predicted_vs_measured(
        out_dir / "mixture_predicted_vs_measured.png", sets, target=proxies.target,
        title=f"RegMix fit ({fit.model})\n{proxies.target}"))
    notes = {result.label(b): f"predicted {v:.4g}" for b, v in result.predicted.items()}
    notes[result.label(Baseline.BEST_PROXY)] += f", measured {result.best_measured:.4g}"
    written.append(mixture_plots.plot_mixtures(
        out_dir / "mixture_weights.png", {result.label(b): m for b, m in result.baselines.items()}, notes=notes,
        title=f"RegMix pick against baselines\n{proxies.target}"))
    json_path = out_dir / "mixture_fit.json"
    json_path.write_text(json.dumps(result.summary(source, proxies.columns, held_out_spearman), indent=2))
    written.append(json_path)
    return written


@dataclass(frozen=True)
class Scored:
    """Other mixtures scored by a fit: their rows with a ``predicted`` column, and the Spearman rho against
    the measured target where they have it."""

    frame: pl.DataFrame
    rho: float | None
    measured: np.ndarray
    predicted: np.ndarray


def score_mixtures(result: RegMixFit, proxies: Proxies, other: pl.DataFrame, source: str) -> Scored:
    """Predict the target for ``other``'s mixtures (the proxies' weight columns) with the fit."""
    missing = [c for c in proxies.columns if c not in other.columns]
    if missing:
        raise UserError(f"{source}: missing weight columns {', '.join(missing)}")
    predicted = result.fit.predict(weight_matrix(other, proxies.columns, source))
    scored = other.with_columns(pl.Series("predicted", predicted))
    if proxies.target not in other.columns:
        return Scored(scored, None, np.empty(0), np.empty(0))
    measured = other[proxies.target].cast(pl.Float64, strict=False).to_numpy()
    ok = np.isfinite(measured)
    rho = mx.spearman(predicted[ok], measured[ok]) if ok.sum() >= 2 else None
    return Scored(scored, rho, measured[ok], predicted[ok])


def _transform_text(name: str) -> str:
    return {"none": "fitted on the target itself", "rank": "fitted on the target's ranks",
            "log": "fitted on log(target)", "inverse": "fitted on -1/target"}[name]


def report_lines(result: RegMixFit, source: str) -> list[str]:
    """What ``sweeper fit mixture`` and ``sweeper run`` print about a fit."""
    fit, pick = result.fit, result.pick
    lines = [f"fit mixture: {fit.n_rows} mixtures x {len(fit.domains)} domains -> {fit.target_name} ({source})",
             f"  {fit.folds}-fold CV Spearman rho ({_transform_text(fit.transform_name)}): "
             + "  ".join(f"{m} {r:.4f}" for m, r in fit.cv_rho.items()) + f"  -> using {fit.model}"]
    if len(fit.cv_rho_by_transform) > 1:
        best = {t: max((r for r in rhos.values() if r == r), default=float("nan"))
                for t, rhos in fit.cv_rho_by_transform.items()}
        lines.append("  target transform chosen by CV (best model's rho): "
                     + "  ".join(f"{t} {r:.4f}" for t, r in best.items()) + f"  -> {fit.transform_name}")
    if result.noise is not None:
        lines.append(f"  signal and noise: {result.noise.describe()}")
    lines.append(f"  predicted best mixture (mean of top {pick.top_k} of {pick.n_samples}): predicted "
                 f"{fit.target_name} {pick.predicted:.4f} (the top {pick.top_k} themselves: {pick.top_mean:.4f})")
    for baseline, value in result.predicted.items():
        if baseline is not Baseline.PICK:
            lines.append(f"    vs {result.label(baseline)}: predicted {value:.4f}")
    top = sorted(pick.mixture.items(), key=lambda kv: -kv[1])
    lines.append("    " + ", ".join(f"{d} {w:.3f}" for d, w in top[:8]) + (", ..." if len(top) > 8 else ""))
    beaten = result.predicted_better_than_pick()
    if beaten:
        lines.append(f"  note: the model predicts {', '.join(result.label(b) for b in beaten)} better than the "
                     f"averaged pick itself: the top {pick.top_k} draws lie apart on the simplex and their mean "
                     "falls between them (try a smaller --top-k, and trust only a measured comparison: "
                     "regmix.validate trains each at a larger scale)")
    return lines
