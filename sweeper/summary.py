"""Summaries of a finished or running study, read back from its Parquet rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from sweeper.errors import UserError
from sweeper.spec import Study, parse_study, read_yaml, result_key
from sweeper.store import read_trials, rows_dir


def check_study_dir(study_dir: str | Path) -> Path:
    """A results folder that holds a study's rows, every file of them readable, or a clear error."""
    path = Path(study_dir)
    files = sorted(rows_dir(path).glob("part-*.parquet")) if rows_dir(path).is_dir() else []
    if not files:
        raise UserError(f"{study_dir}: not a study results folder (expected Parquet rows under {rows_dir(path)})")
    for file in files:
        try:
            pq.read_metadata(file)
        except FileNotFoundError:
            continue  # merged into another file by a running study's compaction since the listing
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{file}: not a readable Parquet rows file ({_first_line(exc)}); move it out of "
                            f"{rows_dir(path)} to read the other rows") from None
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def study_objective(study_dir: Path) -> tuple[str, str]:
    """The (first) metric column and mode of the study that wrote ``study_dir``, from its validated
    ``study.yaml`` (the defaults, loss and min, when there is none)."""
    copy = study_dir / "study.yaml"
    if not copy.exists():
        return result_key("loss"), "min"
    search = _study(copy).search
    return result_key(search.metrics[0]), search.modes[0]


def _study(copy: Path) -> Study:
    """The study in ``copy``, validated; errors name the file and the field. (The workload is not imported:
    a summary needs none, and it may not be importable where the summary is read.)"""
    data = read_yaml(copy)
    try:
        return Study.model_validate(data)
    except ValidationError:
        parse_study(data, str(copy))  # raises the StudyError that names the file and the field
        raise


def summarize(study_dir: str | Path) -> dict[str, Any]:
    """Trials by status, the best trial's config and metric, and the cost spent."""
    path = check_study_dir(study_dir)
    metric, mode = study_objective(path)
    try:
        trials = read_trials(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UserError(f"{rows_dir(path)}: cannot read the study's rows ({_first_line(exc)})") from None
    counts = dict(trials.group_by("status").len().sort("status").iter_rows())
    out: dict[str, Any] = {
        "study": trials["study"][0] if trials.height else path.name,
        "trials": trials.height,
        "by_status": counts,
        "metric": metric,
        "mode": mode,
        "cost": float(trials["cost"].sum() or 0.0),
        "flops": float(trials["flops"].sum() or 0.0),
        "wall_s": float(trials["wall_s"].sum() or 0.0),
        "best": None,
    }
    if metric in trials.columns:
        # Rank numbers only: an old folder may hold a metric a workload once reported as text.
        value = pl.col(metric).cast(pl.Float64, strict=False)
        ranked = trials.with_columns(value.alias("_value")).filter(
            pl.col("status").is_in(["done", "pruned"]) & pl.col("_value").is_not_nan())
        ranked = ranked.drop_nulls("_value").sort("_value", descending=mode == "max")
        if ranked.height:
            best = ranked.row(0, named=True)
            out["best"] = {
                "trial_id": best["trial_id"],
                "value": best["_value"],
                "config": {k: v for k, v in best.items() if k.startswith(("cfg.", "mix.")) and v is not None},
            }
    return out
