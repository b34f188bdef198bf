"""DataDecide (Magnusson et al. 2025): how often do small runs pick the data recipe that wins at scale?

Input: runs of several data *recipes* at a ladder of model *sizes*, with several *seeds*, one size being the
*target*. Every run may carry intermediate checkpoints (its reports) besides its final one.

**Decision accuracy.** The truth is the order of the recipes at the target size on the judged metric (its
final value, mean over the target's seeds). Over every pair of recipes whose target values differ, a
predictor scores 1 when it orders the pair the same way, 0 when it orders it the other way, and 1/2 when it
cannot tell them apart (equal predictions: the expected score of breaking the tie by a coin). Pairs tied at
the target have no right answer and are left out. Decision accuracy is the score summed over pairs divided
by the number of pairs scored. Two values are tied when they differ by at most ``TIE_RTOL`` of the larger.
Spearman's rho and Kendall's tau-b compare the whole predicted ranking with the target's.

**Predictors**, each scored for every proxy metric separately (a proxy metric is what is measured on the
small runs; the judged metric at the target stays the same):

- *single-scale*: rank the recipes by the proxy metric at one proxy size (mean over the seeds used), at the
  final checkpoint or an earlier one (``checkpoints``: fractions of the run's compute; each run's latest
  checkpoint at or before the fraction, up to ``CHECKPOINT_SLACK`` past it);
- *power law*: per recipe, fit ``L = E + A * C^-alpha`` (:mod:`sweeper.laws.power`) to the final points of
  the proxy sizes up to a size (at least 3 of them) and rank by the law's value at the target compute;
- *two-step* (for a proxy metric other than the judged one): per recipe, compute -> proxy metric by the power
  law, proxy -> judged metric by the sigmoid of :mod:`sweeper.laws.twostep` (fitted on the checkpoints of
  the same runs), chained at the target compute; fitted on every proxy size with every seed, as the OLMo
  ladder does (its sigmoid fits are the slow part of the analysis).

Each is evaluated with every number of seeds ``k`` (the two-step with all of them): the accuracy is the mean
over subsets of ``k`` seeds (all of them, or ``max_subsets`` drawn at random when there are more), the
expected accuracy of an experimenter who trains ``k`` seeds.

A predictor's **compute** is the total compute of the runs it uses (every recipe, every seed used, every size
used, up to the checkpoint used), so single-scale and law-based predictors sit on one compute-versus-decision-
accuracy axis; the **frontier** is the set of predictors that no cheaper predictor matches or beats.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sweeper.atomic import write_text_atomic
from sweeper.errors import ParameterError, UserError

FORMAT = "sweeper.decide/1"
TIE_RTOL = 1e-9
CHECKPOINTS = (0.25, 0.5, 1.0)
CHECKPOINT_SLACK = 0.05
"""A checkpoint at up to 5% past a requested fraction counts as that fraction (the ``fraction`` column of
the table holds the fraction actually used, and ``compute`` its compute)."""
PREDICTORS = ("single-scale", "power law", "two-step")
MIN_LAW_SIZES = 3
LAW_GRID = np.geomspace(0.01, 3.0, 20)
"""Exponents tried by the power-law fits (coarser than the library's default: a recipe has a dozen points)."""
LAW_STARTS = 2
MAX_WARNINGS = 10
"""Distinct warnings of the law fits kept in ``info["fit_warnings"]`` (the table counts them per row)."""
STEP2_MIN_FRACTION = 0.1
"""Two-step: checkpoints before this fraction of a run's compute are left out of the sigmoid (transients)."""
DEFAULT_METRIC = "m.loss.valid.target"
POINT_COLUMNS = ("recipe", "size", "seed", "run", "compute", "fraction", "final")


# --------------------------------------------------------------------------------------------------
# Pairwise decision accuracy and rank correlations
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairScore:
    """Decision accuracy over the pairs of recipes with a true order (target ties left out)."""

    accuracy: float
    correct: int
    wrong: int
    predicted_ties: int
    pairs: int
    target_ties: int

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": _num(self.accuracy), "correct": self.correct, "wrong": self.wrong,
                "predicted_ties": self.predicted_ties, "pairs": self.pairs, "target_ties": self.target_ties}


def _signs(values: np.ndarray, rel_tol: float) -> np.ndarray:
    """sign(v_i - v_j) for i < j (upper triangle, flattened), 0 where the two agree within ``rel_tol``."""
    i, j = np.triu_indices(len(values), k=1)
    diff = values[i] - values[j]
    scale = np.maximum(np.abs(values[i]), np.abs(values[j]))
    return np.where(np.abs(diff) <= rel_tol * scale, 0, np.sign(diff)).astype(int)


def pair_score(predicted_good: Sequence[float], target_good: Sequence[float], rel_tol: float = TIE_RTOL) -> PairScore:
    """Decision accuracy of ``predicted_good`` against ``target_good``, both oriented so higher is better and
    aligned by recipe: 1 per pair ordered as at the target, 1/2 per pair predicted tied, over the pairs
    not tied at the target."""
    pred, true = np.asarray(predicted_good, dtype=float), np.asarray(target_good, dtype=float)
    if pred.shape != true.shape or pred.ndim != 1:
        raise ValueError(f"predicted and target must be aligned 1-d arrays, got {pred.shape} and {true.shape}")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()):
        raise ValueError("predicted and target values must be finite")
    p, t = _signs(pred, rel_tol), _signs(true, rel_tol)
    scored = t != 0
    correct = int(((p == t) & scored).sum())
    ties = int(((p == 0) & scored).sum())
    pairs = int(scored.sum())
    accuracy = (correct + 0.5 * ties) / pairs if pairs else math.nan
    return PairScore(accuracy, correct, pairs - correct - ties, ties, pairs, int((~scored).sum()))


def decision_accuracy(predicted: Sequence[float] | Mapping[str, float], target: Sequence[float] | Mapping[str, float],
                      *, higher_is_better: bool = False, predicted_higher_is_better: bool | None = None,
                      rel_tol: float = TIE_RTOL) -> PairScore:
    """Decision accuracy of ``predicted`` values against ``target`` values of the same recipes.

    Both are sequences in the same recipe order or mappings recipe -> value (with the same recipes).
    ``higher_is_better`` is the direction of the target metric; ``predicted_higher_is_better`` that of the
    predicted one (default: the same), so a loss can predict an accuracy.
    """
    if isinstance(predicted, Mapping) or isinstance(target, Mapping):
        if not (isinstance(predicted, Mapping) and isinstance(target, Mapping)):
            raise ValueError("give both predicted and target as mappings recipe -> value, or both as sequences")
        if set(predicted) != set(target):
            raise ValueError(f"predicted and target name different recipes: {sorted(set(predicted) ^ set(target))}")
        keys = sorted(target)
        predicted, target = [predicted[k] for k in keys], [target[k] for k in keys]
    pred_hib = higher_is_better if predicted_higher_is_better is None else predicted_higher_is_better
    return pair_score(_good(np.asarray(predicted, float), pred_hib), _good(np.asarray(target, float), higher_is_better),
                      rel_tol)


def rank_correlations(predicted_good: Sequence[float], target_good: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau-b between two aligned score vectors (NaN when either is constant)."""
    from scipy.stats import kendalltau, spearmanr

    pred, true = np.asarray(predicted_good, float), np.asarray(target_good, float)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(true) == 0:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(pred, true).statistic), float(kendalltau(pred, true).statistic)


def _good(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return values if higher_is_better else -values


# --------------------------------------------------------------------------------------------------
# Runs: the input, from a study folder or any table
# --------------------------------------------------------------------------------------------------
@dataclass
class Runs:
    """Checkpoints of runs: columns ``recipe, size, seed, run`` (strings), ``compute`` (cumulative),
    ``fraction`` (of the run's final compute), ``final`` (bool) and one column per metric.

    ``metrics[0]`` is the judged metric; every metric is a proxy. ``sizes`` runs from smallest to largest.
    """

    points: pl.DataFrame
    metrics: list[str]
    higher_is_better: dict[str, bool]
    sizes: list[str]
    target_size: str
    source: str = "runs"
    compute_unit: str = "FLOPs"
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def proxy_sizes(self) -> list[str]:
        return self.sizes[: self.sizes.index(self.target_size)]

    @property
    def recipes(self) -> list[str]:
        return sorted(self.points["recipe"].unique().to_list())

    def finals(self) -> pl.DataFrame:
        return self.points.filter(pl.col("final"))


def from_frame(frame: pl.DataFrame, *, recipe: str, size: str, metrics: Sequence[str], seed: str | None = None,
               compute: str | None = None, target_size: Any = None,
               higher_is_better: bool | Collection[str] = False, source: str = "table") -> Runs:
    """Runs from a table with one row per run (or per checkpoint of a run, ordered by ``compute``).

    Without ``seed`` every (recipe, size) is one run. Without ``compute``, numeric sizes stand in for compute
    (each run a single final row); non-numeric sizes then give no order and are refused.
    """
    if not metrics:
        raise ParameterError("metrics", "name at least one metric column", source=source)
    columns = {"recipe": recipe, "size": size, "seed": seed, "compute": compute}
    for param, col in [*columns.items(), *(("metrics", m) for m in metrics)]:
        if col is not None and col not in frame.columns:
            raise ParameterError(param, f"no column {col!r} (columns: {_list(frame.columns)})", source=source)
    if len(set(metrics)) != len(metrics):
        raise ParameterError("metrics", f"each metric once, got {list(metrics)}", source=source)
    size_value = _numeric(frame[size])
    if compute is not None:
        comp = _as_float(frame, compute, source, "compute")
        unit = "FLOPs"
    elif size_value is not None:
        comp = size_value
        unit = f"{size} (no --compute: sizes stand in for compute)"
    else:
        raise ParameterError("compute", f"sizes in {size!r} are not numeric; name the compute column (FLOPs) "
                             "so sizes can be ordered and predictors costed", source=source)
    if frame[recipe].null_count() or frame[size].null_count():
        raise UserError(f"{source}: --recipe/--size: {recipe!r} and {size!r} must have a value in every row")
    labels = _labels(frame[size], size_value)
    points = pl.DataFrame({
        "recipe": frame[recipe].cast(pl.Utf8),
        "size": labels,
        "seed": frame[seed].cast(pl.Utf8).fill_null("?") if seed else pl.Series([""] * frame.height),
        "compute": comp,
        "_size_value": size_value if size_value is not None else pl.Series([None] * frame.height, dtype=pl.Float64),
        **{m: _as_float(frame, m, source, "metrics", allow_null=True) for m in metrics},
    })
    points = points.with_columns(run=pl.concat_str("recipe", "size", "seed", separator="\x1f"))
    dup = points.filter(pl.struct("run", "compute").is_duplicated())
    if dup.height:
        r = dup.row(0, named=True)
        where = f"recipe {r['recipe']!r}, size {r['size']!r}" + (f", seed {r['seed']!r}" if seed else "")
        hint = "name the seed column with --seed" if not seed else "rows must differ in --compute (checkpoints)"
        if compute is None:
            hint += "; several checkpoints of a run need --compute"
        raise UserError(f"{source}: {where}: {dup.height} rows for one run at the same compute; {hint}")
    return _build(points, list(metrics), _directions(metrics, higher_is_better, source), target_size, source, unit)


def from_study_frames(trials: pl.DataFrame, reports: pl.DataFrame, *, metrics: Sequence[str],
                      target_size: Any = None, higher_is_better: bool | Collection[str] = False,
                      source: str = "study") -> Runs:
    """Runs of a study's finished trials (``cfg.recipe``, ``cfg.size``, ``seed``, ``flops``; one summary row
    each) with their ``reports`` (rows of the same attempts) as checkpoints. ``metrics`` are metric names,
    with or without the ``m.`` prefix."""
    if trials.is_empty():
        raise UserError(f"{source}: no trial has finished (status done) yet")
    for col in ("cfg.recipe", "cfg.size"):
        if col not in trials.columns:
            raise UserError(f"{source}: {col}: no such column; a DataDecide study has choice parameters 'recipe' "
                            f"and 'size' (see studies/datadecide.yaml)")
    names = trials.columns
    wanted = [_metric_column(m, names, source) for m in metrics]
    if len(set(wanted)) != len(wanted):
        raise ParameterError("metrics", f"each metric once, got {wanted}", source=source)
    if not isinstance(higher_is_better, bool):
        higher_is_better = [_metric_column(m, names, source) for m in higher_is_better]
    keep = trials.select("trial_id", "attempt", final_compute=pl.col("flops"))
    if reports.height:
        reports = reports.join(keep, on=["trial_id", "attempt"])
        reports = reports.filter(pl.col("flops") < pl.col("final_compute") * (1 - 1e-9))

    def shape(rows: pl.DataFrame) -> pl.DataFrame:
        return rows.select(
            recipe=pl.col("cfg.recipe").cast(pl.Utf8), size=pl.col("cfg.size").cast(pl.Utf8),
            seed=pl.col("seed").cast(pl.Utf8), run=pl.col("trial_id").cast(pl.Utf8),
            compute=pl.col("flops").cast(pl.Float64), _size_value=pl.lit(None, dtype=pl.Float64),
            **{m: (pl.col(m).cast(pl.Float64) if m in rows.columns else pl.lit(None, dtype=pl.Float64))
               for m in wanted})

    points = pl.concat([shape(trials), shape(reports)]) if reports.height else shape(trials)
    return _build(points, wanted, _directions(wanted, higher_is_better, source), target_size, source, "FLOPs")


def _metric_column(name: str, columns: Sequence[str], source: str) -> str:
    for candidate in (name, f"m.{name}"):
        if candidate in columns:
            return candidate
    metrics = [c for c in columns if c.startswith("m.")]
    raise ParameterError("metrics", f"no column {name!r}; metrics: {_list(metrics) or 'none'}", source=source)


def _directions(metrics: Sequence[str], higher_is_better: bool | Collection[str], source: str) -> dict[str, bool]:
    if isinstance(higher_is_better, bool):
        return dict.fromkeys(metrics, higher_is_better)
    chosen = set(higher_is_better)
    unknown = sorted(chosen - set(metrics))
    if unknown:
        raise ParameterError("higher_is_better", f"{_list(unknown)} not among the metrics ({_list(metrics)})",
                             source=source)
    return {m: m in chosen for m in metrics}


def _numeric(series: pl.Series) -> pl.Series | None:
    if series.dtype.is_numeric():
        return series.cast(pl.Float64)
    if series.dtype == pl.Utf8:
        cast = series.cast(pl.Float64, strict=False)
        if cast.null_count() == series.null_count():
            return cast
    return None


def _labels(series: pl.Series, numeric: pl.Series | None) -> pl.Series:
    if numeric is not None and series.dtype.is_numeric():
        return pl.Series([None if v is None else f"{v:g}" for v in numeric.to_list()], dtype=pl.Utf8)
    return series.cast(pl.Utf8)


def _as_float(frame: pl.DataFrame, col: str, source: str, param: str, allow_null: bool = False) -> pl.Series:
    try:
        values = frame[col].cast(pl.Float64, strict=True)
    except (pl.exceptions.PolarsError, ValueError):
        raise ParameterError(param, f"column {col!r} is not numeric ({frame[col].dtype})", source=source) from None
    if not allow_null and values.null_count():
        raise ParameterError(param, f"column {col!r} has {values.null_count()} missing values", source=source)
    return values


def _build(points: pl.DataFrame, metrics: list[str], directions: dict[str, bool], target_size: Any, source: str,
           unit: str) -> Runs:
    """Finish the points (fraction, final), order the sizes, resolve the target size, check the basics."""
    notes: list[str] = []
    bad = points.filter(~pl.col("compute").is_finite() | (pl.col("compute") <= 0))
    if bad.height:
        raise UserError(f"{source}: compute must be positive and finite; {bad.height} rows are not")
    for m in metrics:
        bad_values = int((points[m].is_not_null() & ~points[m].is_finite()).sum())
        if bad_values:
            notes.append(f"{m}: {bad_values} NaN or infinite values (diverged runs?) treated as missing")
    points = points.with_columns(pl.when(pl.col(m).is_finite()).then(pl.col(m)).alias(m) for m in metrics)
    points = points.with_columns(_final_compute=pl.col("compute").max().over("run"))
    points = points.with_columns(fraction=pl.col("compute") / pl.col("_final_compute"),
                                 final=pl.col("compute") == pl.col("_final_compute"))
    finals = points.filter(pl.col("final"))
    order = (finals.group_by("size").agg(pl.col("compute").median().alias("c"), pl.col("_size_value").first())
             .sort("c", "_size_value", "size", nulls_last=True))
    sizes = order["size"].to_list()
    if len(sizes) < 2:
        raise ParameterError("size", f"{len(sizes)} distinct size(s); DataDecide needs proxy sizes and a target",
                             source=source)
    target = _resolve_size(target_size, sizes, order, source)
    metric = metrics[0]
    at_target = finals.filter((pl.col("size") == target) & pl.col(metric).is_not_null())
    have = set(at_target["recipe"].unique().to_list())
    every = sorted(points["recipe"].unique().to_list())
    missing = [r for r in every if r not in have]
    if missing:
        notes.append(f"recipes without a {metric} run at the target size {target!r} left out: {', '.join(missing)}")
        points = points.filter(pl.col("recipe").is_in(sorted(have)))
    if len(have) < 2:
        raise UserError(f"{source}: {metric}: {len(have)} recipe(s) have a final value at the target size "
                        f"{target!r}; decisions need at least 2")
    if sizes.index(target) == 0:
        raise ParameterError("target_size", f"{target!r} is the smallest size; no proxy size is smaller", source=source)
    larger = sizes[sizes.index(target) + 1:]
    if larger:
        notes.append(f"sizes larger than the target ({', '.join(larger)}) are not used as proxies")
    for size in sizes[: sizes.index(target)]:
        lacking = sorted(have - set(finals.filter(pl.col("size") == size)["recipe"].to_list()))
        if lacking:
            notes.append(f"size {size!r}: no run of {', '.join(lacking)}; its pairs are left out there")
    for m in metrics:
        if points[m].null_count() == points.height:
            raise UserError(f"{source}: {m}: no values")
    points = points.drop("_final_compute", "_size_value").select(*POINT_COLUMNS, *metrics)
    return Runs(points.sort("run", "compute"), metrics, directions, sizes, target, source, unit, notes)


def _resolve_size(value: Any, sizes: list[str], order: pl.DataFrame, source: str) -> str:
    if value is None or value == "":
        return sizes[-1]
    text = str(value)
    if text in sizes:
        return text
    try:
        wanted = float(text)
    except ValueError:
        wanted = None
    if wanted is not None:
        for label, v in zip(order["size"].to_list(), order["_size_value"].to_list(), strict=True):
            if v is not None and math.isclose(v, wanted, rel_tol=1e-6):
                return label
    raise ParameterError("target_size", f"{text!r} is not one of the sizes ({_list(sizes)})", source=source)


# --------------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------------
@dataclass
class _Truth:
    recipes: list[str]
    value: np.ndarray          # judged metric at the target, mean over seeds
    good: np.ndarray           # oriented: higher is better
    seeds: np.ndarray
    compute: float             # mean final compute of one target run
    total_compute: float       # every recipe once at the target size

    def score(self, recipes: Sequence[str], predicted_good: np.ndarray) -> tuple[PairScore, float, float]:
        index = [self.recipes.index(r) for r in recipes]
        truth = self.good[index]
        return (pair_score(predicted_good, truth), *rank_correlations(predicted_good, truth))


def target_ranking(runs: Runs) -> pl.DataFrame:
    """The truth: the judged metric's final value at the target size, mean over seeds, with each recipe's rank."""
    metric = runs.metric
    hib = runs.higher_is_better[metric]
    table = (runs.finals().filter((pl.col("size") == runs.target_size) & pl.col(metric).is_not_null())
             .group_by("recipe").agg(pl.col(metric).mean().alias("value"), pl.col(metric).std().alias("sd"),
                                     pl.len().alias("seeds"), pl.col("compute").mean().alias("compute")))
    return (table.sort("value", "recipe", descending=[hib, False])
            .with_columns(rank=pl.col("value").rank("min", descending=hib).cast(pl.Int64)))


def _truth(runs: Runs) -> _Truth:
    table = target_ranking(runs).sort("recipe")
    value = table["value"].to_numpy()
    compute = float(table["compute"].mean())
    return _Truth(table["recipe"].to_list(), value, _good(value, runs.higher_is_better[runs.metric]),
                  table["seeds"].to_numpy(), compute, float(table["compute"].sum()))


def _subsets(seeds: Sequence[str], k: int, limit: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    combos = list(itertools.combinations(sorted(seeds), k))
    if len(combos) <= limit:
        return combos
    pick = np.sort(rng.choice(len(combos), size=limit, replace=False))
    return [combos[i] for i in pick]


def _checkpoint(rows: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """Per run, the latest checkpoint at or before ``fraction`` of its compute, give or take
    ``CHECKPOINT_SLACK`` of it (reports every ``steps // 4`` steps land a hair past 25%); the final one for 1."""
    if fraction >= 1.0:
        return rows.filter(pl.col("final"))
    return (rows.filter(pl.col("fraction") <= fraction * (1.0 + CHECKPOINT_SLACK)).sort("run", "compute")
            .group_by("run", maintain_order=True).last())


@dataclass
class _Row:
    metric: str
    predictor: str
    sizes: list[str]
    seeds: int
    checkpoint: float
    fraction: float
    compute: list[float]
    scores: list[PairScore]
    rho: list[float]
    tau: list[float]
    warned: int = 0

    def add(self, compute: float, score: PairScore, rho: float, tau: float) -> None:
        """One scored subset (of seeds or checkpoints) of this predictor."""
        self.compute.append(compute)
        self.scores.append(score)
        self.rho.append(rho)
        self.tau.append(tau)

    def record(self, truth: _Truth) -> dict[str, Any]:
        acc = np.array([s.accuracy for s in self.scores])
        return {
            "metric": self.metric, "predictor": self.predictor, "size": self.sizes[-1],
            "sizes": ",".join(self.sizes), "seeds": self.seeds, "checkpoint": self.checkpoint,
            "fraction": self.fraction, "compute": float(np.mean(self.compute)),
            "compute_vs_target": float(np.mean(self.compute) / truth.total_compute),
            "decision_accuracy": float(acc.mean()),
            "accuracy_sd": _clean(float(acc.std(ddof=1))) if len(acc) > 1 else None,
            "spearman": _mean(self.rho), "kendall": _mean(self.tau),
            "pairs": int(np.mean([s.pairs for s in self.scores])), "subsets": len(self.scores),
            "warned_fits": self.warned,
        }


def _clean(value: float) -> float:
    """Round away floating-point dust (a spread of 1e-16 between equal accuracies is 0)."""
    return 0.0 if abs(value) < 1e-12 else value


def _mean(values: Iterable[float]) -> float | None:
    arr = np.array([v for v in values if v is not None and np.isfinite(v)])
    return float(arr.mean()) if arr.size else None


def _single_scale(runs: Runs, truth: _Truth, metric: str, size: str, checkpoints: Sequence[float], max_subsets: int,
                  rng: np.random.Generator, skipped: list[dict[str, Any]]) -> list[_Row]:
    rows = runs.points.filter((pl.col("size") == size) & pl.col(metric).is_not_null()
                              & pl.col("recipe").is_in(truth.recipes))
    if rows.is_empty():
        skipped.append(_skip(metric, "single-scale", [size], None, f"no {metric} values at this size"))
        return []
    hib = runs.higher_is_better[metric]
    seeds = sorted(rows["seed"].unique().to_list())
    out: list[_Row] = []
    seen: set[tuple] = set()
    for f in sorted(set(checkpoints), reverse=True):
        picked = _checkpoint(rows, f)
        if picked.is_empty():
            continue
        key = tuple(picked.sort("run")["compute"].to_list())
        if key in seen:  # no checkpoint between this fraction and the previous one
            continue
        seen.add(key)
        for k in range(1, len(seeds) + 1):
            row = _Row(metric, "single-scale", [size], k, f, float(picked["fraction"].mean()), [], [], [], [])
            for subset in _subsets(seeds, k, max_subsets, rng):
                used = picked.filter(pl.col("seed").is_in(list(subset)))
                means = used.group_by("recipe").agg(pl.col(metric).mean()).sort("recipe")
                if means.height < 2:
                    continue
                score, rho, tau = truth.score(means["recipe"].to_list(), _good(means[metric].to_numpy(), hib))
                if score.pairs == 0:
                    continue
                row.add(float(used["compute"].sum()), score, rho, tau)
            if row.scores:
                out.append(row)
    return out


def _law_rows(runs: Runs, truth: _Truth, metric: str, predictor: str, ladder: list[str], max_subsets: int,
              rng: np.random.Generator, skipped: list[dict[str, Any]], fit_warnings: list[str],
              all_seeds_only: bool) -> list[_Row]:
    """Per-recipe law fits on the final points of the ``ladder`` sizes, one row per number of seeds."""
    judged = runs.metric
    hib = runs.higher_is_better[metric]
    finals = runs.finals().filter(pl.col("size").is_in(ladder) & pl.col(metric).is_not_null()
                                  & pl.col("recipe").is_in(truth.recipes))
    if predictor == "two-step":
        finals = finals.filter(pl.col(judged).is_not_null())
    reason = None
    if hib:
        reason = f"{metric} is higher-is-better; the power law L = E + A C^-alpha fits a decreasing loss"
    elif finals.height and finals[metric].min() <= 0:
        reason = f"{metric} has values <= 0; the power law fits positive losses"
    if reason:
        skipped.append(_skip(metric, predictor, ladder, None, reason))
        return []
    seeds = sorted(finals["seed"].unique().to_list())
    ks = [len(seeds)] if all_seeds_only else range(1, len(seeds) + 1)
    checkpoints = runs.points.filter(
        pl.col("size").is_in(ladder) & pl.col(metric).is_not_null() & pl.col(judged).is_not_null()
        & (pl.col("fraction") >= STEP2_MIN_FRACTION)) if predictor == "two-step" else None
    out: list[_Row] = []
    for k in ks:
        row = _Row(metric, predictor, list(ladder), k, 1.0, 1.0, [], [], [], [])
        problems: list[str] = []
        for subset in _subsets(seeds, k, max_subsets, rng):
            used = finals.filter(pl.col("seed").is_in(list(subset)))
            recipes, predicted = [], []
            for recipe in truth.recipes:
                points = used.filter(pl.col("recipe") == recipe)
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", UserWarning)
                        warnings.simplefilter("ignore", RuntimeWarning)
                        if predictor == "power law":
                            good = -_power_prediction(points, metric, truth.compute, f"{runs.source}: {recipe}")
                        else:
                            step2 = checkpoints.filter(pl.col("run").is_in(points["run"].to_list()))
                            good = _two_step_prediction(points, step2, metric, judged,
                                                        runs.higher_is_better[judged], truth.compute,
                                                        f"{runs.source}: {recipe}")
                except (UserError, ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
                    problems.append(str(exc))
                    continue
                messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
                if messages:
                    row.warned += 1
                    for message in messages:
                        if message not in fit_warnings and len(fit_warnings) < MAX_WARNINGS:
                            fit_warnings.append(message)
                if np.isfinite(good):
                    recipes.append(recipe)
                    predicted.append(good)
                else:
                    problems.append(f"{recipe}: the fit predicts {good}")
            if len(recipes) < len(truth.recipes):
                continue  # a law predictor decides only when every recipe has a law
            score, rho, tau = truth.score(recipes, np.array(predicted))
            row.add(float(used["compute"].sum()), score, rho, tau)
        if row.scores:
            out.append(row)
        else:
            skipped.append(_skip(metric, predictor, ladder, k, problems[0] if problems else "no subset of seeds "
                                 "has runs of every recipe"))
    return out


def _power_prediction(points: pl.DataFrame, metric: str, compute: float, source: str) -> float:
    from sweeper.laws.data import LawData
    from sweeper.laws.power import fit_law

    data = LawData(loss=points[metric].to_numpy(), c=points["compute"].to_numpy(), run=points["run"].to_numpy(),
                   source=source, columns={"c": "compute", "loss": metric})
    fit = fit_law(data, "power", "flops", bootstrap=0, grid=LAW_GRID, n_starts=LAW_STARTS)
    return float(fit.predict(c=compute))


def _two_step_prediction(finals: pl.DataFrame, checkpoints: pl.DataFrame, proxy: str, judged: str, judged_hib: bool,
                         compute: float, source: str) -> float:
    """compute -> proxy (power law on the final points) -> judged metric (sigmoid on every checkpoint), chained at
    ``compute``; returns the predicted judged metric oriented so higher is better."""
    from sweeper.laws.data import LawData
    from sweeper.laws.twostep import fit_two_step

    def data(rows: pl.DataFrame) -> LawData:
        return LawData(loss=rows[proxy].to_numpy(), c=rows["compute"].to_numpy(), run=rows["run"].to_numpy(),
                       extra={"judged": _good(rows[judged].to_numpy(), judged_hib)}, source=source,
                       columns={"c": "compute", "loss": proxy})

    fit = fit_two_step(data(finals), "judged", law="power", x="flops", step2=data(checkpoints), bootstrap=0)
    return float(fit.predict(c=compute)["downstream"].value)


def _skip(metric: str, predictor: str, sizes: Sequence[str], seeds: int | None, reason: str) -> dict[str, Any]:
    return {"metric": metric, "predictor": predictor, "sizes": ",".join(sizes), "seeds": seeds, "reason": str(reason)}


# --------------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------------
TABLE_SCHEMA = {
    "metric": pl.Utf8, "predictor": pl.Utf8, "size": pl.Utf8, "sizes": pl.Utf8, "seeds": pl.Int64,
    "checkpoint": pl.Float64, "fraction": pl.Float64, "compute": pl.Float64, "compute_vs_target": pl.Float64,
    "decision_accuracy": pl.Float64, "accuracy_sd": pl.Float64, "spearman": pl.Float64, "kendall": pl.Float64,
    "pairs": pl.Int64, "subsets": pl.Int64, "warned_fits": pl.Int64,
}


@dataclass
class Decisions:
    """The outcome: ``table`` (one row per predictor variant, ``on_frontier`` marked per proxy metric),
    ``target`` (the true ranking), ``proxies`` (one row per proxy metric, best first), ``skipped``
    predictors with the reason, and ``info`` (what was analysed)."""

    table: pl.DataFrame
    target: pl.DataFrame
    proxies: pl.DataFrame
    skipped: list[dict[str, Any]]
    info: dict[str, Any]

    @property
    def best_metric(self) -> str | None:
        return self.proxies["metric"][0] if self.proxies.height else None

    def baseline(self, metric: str | None = None) -> pl.DataFrame:
        """The single-scale baseline: every proxy size, all seeds, final checkpoint."""
        return baseline_rows(self.table, metric)

    def frontier(self, metric: str | None = None) -> pl.DataFrame:
        rows = self.table.filter(pl.col("on_frontier"))
        return rows.filter(pl.col("metric") == metric) if metric else rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, **self.info,
            "best_proxy_metric": self.best_metric,
            "target": _records(self.target),
            "proxy_metrics": _records(self.proxies),
            "predictors": _records(self.table),
            "skipped": self.skipped,
        }

    def save_json(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2))


def evaluate(runs: Runs, *, predictors: Sequence[str] = PREDICTORS, checkpoints: Sequence[float] = CHECKPOINTS,
             max_subsets: int = 10, law_seeds: str = "each", seed: int = 0) -> Decisions:
    """Score every predictor on every proxy metric against the target ranking.

    ``law_seeds``: ``"each"`` evaluates the power law with every number of seeds, ``"all"`` only with all seeds
    (the two-step always uses all seeds). ``max_subsets`` caps the seed subsets drawn per number of seeds;
    ``seed`` fixes which are drawn.
    """
    unknown = [p for p in predictors if p not in PREDICTORS]
    if unknown:
        raise ParameterError("predictors", f"{_list(unknown)}: expected some of {_list(PREDICTORS)}")
    if law_seeds not in ("each", "all"):
        raise ParameterError("law_seeds", f"{law_seeds!r}: expected 'each' or 'all'")
    bad = [f for f in checkpoints if not 0 < f <= 1]
    if bad or not checkpoints:
        raise ParameterError("checkpoints", f"expected fractions in (0, 1], got {list(checkpoints)}")
    if max_subsets < 1:
        raise ParameterError("max_subsets", f"expected at least 1, got {max_subsets}")
    truth = _truth(runs)
    if pair_score(truth.good, truth.good).pairs == 0:
        raise UserError(f"{runs.source}: {runs.metric}: every recipe ties at the target size {runs.target_size!r}; "
                        f"there is no decision to predict")
    rng = np.random.default_rng(seed)
    skipped: list[dict[str, Any]] = []
    fit_warnings: list[str] = []
    rows: list[_Row] = []
    proxy_sizes = runs.proxy_sizes
    for metric in runs.metrics:
        if "single-scale" in predictors:
            for size in proxy_sizes:
                rows += _single_scale(runs, truth, metric, size, checkpoints, max_subsets, rng, skipped)
        for predictor in ("power law", "two-step"):
            if predictor not in predictors or (predictor == "two-step" and metric == runs.metric):
                continue
            if len(proxy_sizes) < MIN_LAW_SIZES:
                skipped.append(_skip(metric, predictor, proxy_sizes, None, f"{len(proxy_sizes)} proxy sizes; a law "
                                     f"needs at least {MIN_LAW_SIZES}"))
                continue
            # the two-step fits (a sigmoid from nine starts per recipe) are the slow part: only on every proxy size
            first = len(proxy_sizes) if predictor == "two-step" else MIN_LAW_SIZES
            for top in range(first, len(proxy_sizes) + 1):
                rows += _law_rows(runs, truth, metric, predictor, proxy_sizes[:top], max_subsets, rng, skipped,
                                  fit_warnings, all_seeds_only=law_seeds == "all" or predictor == "two-step")
    records = [r.record(truth) for r in rows]
    table = pl.DataFrame(records, schema=TABLE_SCHEMA) if records else pl.DataFrame(schema=TABLE_SCHEMA)
    table = mark_frontier(table)
    target = target_ranking(runs)
    info = {
        "source": runs.source, "metric": runs.metric, "metrics": runs.metrics,
        "higher_is_better": runs.higher_is_better, "target_size": runs.target_size, "sizes": _size_info(runs),
        "proxy_sizes": proxy_sizes, "recipes": truth.recipes, "pairs": pair_score(truth.good, truth.good).pairs,
        "target_ties": pair_score(truth.good, truth.good).target_ties,
        "target_compute": truth.compute, "target_total_compute": truth.total_compute,
        "compute_unit": runs.compute_unit, "tie_rtol": TIE_RTOL, "checkpoints": sorted(set(checkpoints)),
        "max_subsets": max_subsets, "law_seeds": law_seeds, "notes": runs.notes, "fit_warnings": fit_warnings,
    }
    return Decisions(table, target, proxy_summary(table), skipped, info)


def _size_info(runs: Runs) -> list[dict[str, Any]]:
    finals = runs.finals()
    out = []
    for size in runs.sizes:
        rows = finals.filter(pl.col("size") == size)
        out.append({"size": size, "compute": float(rows["compute"].mean()) if rows.height else None,
                    "runs": rows.height, "seeds": sorted(rows["seed"].unique().to_list()),
                    "role": "target" if size == runs.target_size else
                    ("proxy" if size in runs.proxy_sizes else "unused")})
    return out


def mark_frontier(table: pl.DataFrame) -> pl.DataFrame:
    """Add ``on_frontier``: per proxy metric, the rows that no row of lower or equal compute matches or beats
    (a row is on the frontier when its decision accuracy exceeds that of every cheaper row)."""
    if table.is_empty():
        return table.with_columns(on_frontier=pl.lit(False))
    table = table.with_row_index("_i")
    marks: dict[int, bool] = {}
    for _, group in table.group_by("metric", maintain_order=True):
        best = -math.inf
        for r in group.sort(["compute", "decision_accuracy"], descending=[False, True]).iter_rows(named=True):
            on = r["decision_accuracy"] > best + 1e-12
            marks[r["_i"]] = on
            best = max(best, r["decision_accuracy"])
    return table.with_columns(on_frontier=pl.Series([marks[i] for i in table["_i"].to_list()])).drop("_i")


def baseline_rows(table: pl.DataFrame, metric: str | None = None) -> pl.DataFrame:
    """Single-scale rows with every seed and the final checkpoint, one per proxy size (per metric)."""
    if table.is_empty():
        return table
    rows = table.filter((pl.col("predictor") == "single-scale") & (pl.col("checkpoint") == 1.0))
    rows = rows.filter(pl.col("seeds") == pl.col("seeds").max().over("metric", "size"))
    rows = rows.filter(pl.col("metric") == metric) if metric else rows
    return rows.sort("metric", "compute")


def proxy_summary(table: pl.DataFrame) -> pl.DataFrame:
    """One row per proxy metric, the best first: its single-scale baseline's mean decision accuracy over the
    proxy sizes, and its best predictor."""
    schema = {"metric": pl.Utf8, "single_scale_mean": pl.Float64, "best_accuracy": pl.Float64,
              "best_predictor": pl.Utf8, "best_compute": pl.Float64, "frontier_points": pl.Int64}
    if table.is_empty():
        return pl.DataFrame(schema=schema)
    base = baseline_rows(table).group_by("metric").agg(pl.col("decision_accuracy").mean().alias("single_scale_mean"))
    best = (table.sort(["decision_accuracy", "compute"], descending=[True, False]).group_by("metric").first()
            .select("metric", best_accuracy="decision_accuracy", best_compute="compute",
                    best_predictor=pl.struct("predictor", "sizes", "seeds", "checkpoint")
                    .map_elements(describe_row, return_dtype=pl.Utf8)))
    front = table.group_by("metric").agg(pl.col("on_frontier").sum().cast(pl.Int64).alias("frontier_points"))
    out = best.join(base, on="metric", how="left").join(front, on="metric", how="left")
    return (out.select(list(schema)).sort(["single_scale_mean", "best_accuracy"], descending=True, nulls_last=True))


def describe_row(row: Mapping[str, Any]) -> str:
    """A short name of a predictor variant, e.g. 'single-scale m, 3 seeds, 50%' or 'power law xs..l, 1 seed'."""
    sizes = str(row["sizes"]).split(",")
    span = sizes[0] if len(sizes) == 1 else f"{sizes[0]}..{sizes[-1]}"
    seeds = f"{row['seeds']} seed" + ("s" if row["seeds"] != 1 else "")
    text = f"{row['predictor']} {span}, {seeds}"
    if row["predictor"] == "single-scale" and row["checkpoint"] < 1.0:
        text += f", {row['checkpoint']:.0%} ckpt"
    return text


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: _num(v) for k, v in r.items()} for r in frame.iter_rows(named=True)]


def _num(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _list(items: Iterable[Any], limit: int = 30) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")
