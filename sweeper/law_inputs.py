"""A study's results turned into the inputs of the laws: scaling-law points, DataDecide runs, loss curves.

Each reads the folder through `sweeper.results.StudyResults` (one rule for last attempts, phases and
statuses) and hands plain DataFrames to the pure functions of `sweeper.laws`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sweeper.errors import UserError
from sweeper.laws import curves as lc
from sweeper.laws import data as ld
from sweeper.laws import decide as dd
from sweeper.tables import read_table

if TYPE_CHECKING:  # a study's results need the study schema (pydantic); a table fit does without
    from sweeper.results import StudyResults


def _results(study: str | Path | StudyResults) -> StudyResults:
    from sweeper.results import StudyResults

    return study if isinstance(study, StudyResults) else StudyResults(study)


def table_points(path: str | Path, loss: str, *, n: str | None = None, d: str | None = None,
                 c: str | None = None, run: str | None = None, extra: Sequence[str] = (),
                 flops_per_token_param: float = ld.FLOPS_PER_TOKEN_PARAM) -> ld.LawData:
    """Scaling-law points from a CSV or Parquet table. D defaults to C / (6 N) when only C is given, C to
    6 N D. (N is never derived: counted FLOPs of real models are not exactly 6 N D.)"""
    frame = read_table(path)
    wanted = {"n": n, "d": d, "c": c}
    if not any(wanted.values()):
        raise UserError(f"{path}: name at least one of --n, --d, --c (columns: {', '.join(frame.columns)})")
    return ld.from_frame(frame, str(path), loss, wanted, run, extra, flops_per_token_param)


def law_points(study: str | Path | StudyResults, loss: str, *, n: str = "cfg.n_params", d: str = "tokens",
               c: str = "flops", intermediate: bool = False, min_fraction: float = 0.1,
               extra: Sequence[str] = (), flops_per_token_param: float = ld.FLOPS_PER_TOKEN_PARAM,
               phase: str | None = None) -> ld.LawData:
    """Scaling-law points of a study (of ``phase``, None: every phase): the final losses of its finished
    trials, or with ``intermediate``
    every checkpoint of its finished or pruned trials (the Hitchhiker's Guide finding: checkpoints make laws
    cheaper and steadier). Checkpoints below ``min_fraction`` of their run's final tokens are left out (the
    earliest part of a curve is dominated by transients, not by the law)."""
    results = _results(study)
    source = str(results.folder)
    names = results.columns()
    if loss not in names:
        metrics = [x for x in names if x.startswith("m.")]
        raise UserError(f"{source}: {loss}: no such column; metrics: {', '.join(metrics) or 'none'}")
    if intermediate and d not in names:
        raise UserError(f"{source}: {d}: no such column; --intermediate needs the tokens of every checkpoint")
    if intermediate:
        frame = (results.reports(phase, statuses=("done", "pruned"))
                 .filter(pl.col(d) >= min_fraction * pl.col(d).max().over("trial_id"))
                 .filter(pl.col(d) > 0))
    else:
        frame = results.finished_trials(phase)
    if frame.is_empty():
        where = ""
        if phase is not None:
            phases = results.scan().select("phase").unique().collect()["phase"].drop_nulls().sort().to_list()
            where = f" in phase {phase!r} (its phases: {', '.join(phases) or 'none'})"
        raise UserError(f"{source}: no finished runs{where} to fit")
    wanted = {"n": n if n in names else None, "d": d if d in names else None, "c": c if c in names else None}
    if wanted["n"] and frame[n].null_count():
        # A run-level value reported once (tinylm reports n_params with its first report): spread it over the run.
        per_run = results.run_values(n)
        frame = frame.join(per_run, on="trial_id", how="left").with_columns(pl.col(n).fill_null(pl.col("_n")))
    return ld.from_frame(frame, source, loss, wanted, "trial_id", extra, flops_per_token_param,
                         requested={"n": n, "d": d, "c": c})


def decide_runs(study: str | Path | StudyResults, *, metrics: Sequence[str] | None = None,
                target_size: Any = None, higher_is_better: bool | Collection[str] | None = None,
                phase: str | None = None) -> dd.Runs:
    """DataDecide runs of a study's finished trials, with their reports as checkpoints. Metrics, target size
    and directions default to the study's ``decide:`` block, then to ``m.loss.valid.target``, the largest
    size and lower-is-better."""
    results = _results(study)
    block = results.block("decide")
    if results.trials(phase).is_empty():
        raise UserError(f"{results.folder}: no finished trials yet")
    trials = results.finished_trials(phase)
    wanted = list(metrics) if metrics else list(block.metrics if block else [dd.DEFAULT_METRIC])
    if higher_is_better is None:
        higher_is_better = block.higher_is_better if block else False
    if target_size is None and block is not None:
        target_size = block.target_size
    reports = results.reports(phase) if trials.height else pl.DataFrame()
    return dd.from_study_frames(trials, reports, metrics=wanted, target_size=target_size,
                                higher_is_better=higher_is_better, source=str(results.folder))


def loss_curves(study: str | Path | StudyResults, loss: str, lr: str = "m.lr", total_steps: str | None = None,
                phase: str | None = None) -> list[lc.Curve]:
    """The loss curves of a study's trials (last attempt of each), schedules rebuilt from the logged LR."""
    results = _results(study)
    return lc.curves_from_reports(results.reports(phase), loss, lr, total_steps, source=str(results.folder))
