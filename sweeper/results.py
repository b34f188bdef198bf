"""A study's results folder, read with one rule.

Every reader of results (the summary, the RegMix fit, the law fits, DataDecide, the curve fits) opens the
folder through `StudyResults` and so agrees on what a trial is:

- a trial is its **last attempt** (a retried trial's earlier attempts are superseded);
- ``phase`` selects one phase (``"search"``, ``"replicate"``, ``"validate"``); rows written before phases
  existed (no phase) count in every phase;
- a trial is **finished** when its last attempt's status is ``done``;
- ``study.yaml`` is read as a validated `sweeper.spec.Study` (without importing the workload, which a
  reader needs not have), and errors name the file and the field.

The laws never see a folder: they take the DataFrames this module returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sweeper import store
from sweeper.errors import UserError, first_line
from sweeper.spec import Study, result_key

STUDY_COPY = "study.yaml"


def check_study_dir(study_dir: str | Path) -> Path:
    """A results folder that holds a study's rows, every file of them readable, or a clear error."""
    path = Path(study_dir)
    rows = store.rows_dir(path)
    files = sorted(rows.glob("part-*.parquet")) if rows.is_dir() else []
    if not files:
        raise UserError(f"{study_dir}: not a study results folder (expected Parquet rows under {rows})")
    for file in files:
        try:
            pq.read_metadata(file)
        except FileNotFoundError:
            continue  # merged into another file by a running study's compaction since the listing
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{file}: not a readable Parquet rows file ({first_line(exc)}); move it out of "
                            f"{rows} to read the other rows") from None
    return path


def read_study_copy(copy: Path) -> Study:
    """The study saved in ``copy``, validated; errors name the file and the field. The workload is not
    imported: a reader needs none, and it may not be importable where the results are read."""
    from pydantic import ValidationError

    from sweeper.spec import parse_study, read_yaml

    data = read_yaml(copy)
    try:
        return Study.model_validate(data)
    except ValidationError:
        parse_study(data, str(copy))  # raises the StudyError that names the file and the field
        raise


def last_attempts(rows: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Each trial's summary row of its last attempt."""
    return (rows.lazy().filter(pl.col("row_kind") == "summary").sort("trial_id", "attempt")
            .unique(subset="trial_id", keep="last", maintain_order=True))


class StudyResults:
    """A study's results folder: its rows (through `sweeper.store`) and its validated ``study.yaml``."""

    def __init__(self, folder: str | Path, *, check_files: bool = False):
        self.folder = Path(folder)
        if check_files:
            check_study_dir(self.folder)
        elif not store.rows_dir(self.folder).is_dir():
            raise UserError(f"{folder}: not a study results folder (no rows/ with Parquet files)")

    def __repr__(self) -> str:
        return f"StudyResults({str(self.folder)!r})"

    # -- the study ---------------------------------------------------------------------------------------------

    @cached_property
    def study(self) -> Study | None:
        """The validated study that wrote the folder (None when it has no ``study.yaml``)."""
        copy = self.folder / STUDY_COPY
        return read_study_copy(copy) if copy.exists() else None

    def objective(self) -> tuple[str, str]:
        """The (first) metric column and its mode (``loss`` and ``min`` when the folder has no study)."""
        if self.study is None:
            return result_key("loss"), "min"
        return result_key(self.study.search.metrics[0]), self.study.search.modes[0]

    def block(self, name: str) -> Any:
        """A top-level block of the saved study (e.g. ``decide``), None when it has none."""
        study = self.study
        return None if study is None else getattr(study, name, None)

    # -- rows --------------------------------------------------------------------------------------------------

    def scan(self, phase: str | None = None) -> pl.LazyFrame:
        """Every row (reports and summaries, every attempt) of ``phase`` (None: every phase)."""
        rows = store.scan_rows(self.folder)
        if phase is not None:
            rows = rows.filter(pl.col("phase").is_null() | (pl.col("phase") == phase))
        return rows

    def _unreadable(self, exc: BaseException) -> UserError:
        return UserError(f"{store.rows_dir(self.folder)}: cannot read the study's rows ({first_line(exc)})")

    def _collect(self, frame: pl.LazyFrame) -> pl.DataFrame:
        try:
            return frame.collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self._unreadable(exc) from None

    def columns(self) -> list[str]:
        """The names of every column the rows have."""
        try:
            return self.scan().collect_schema().names()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self._unreadable(exc) from None

    def trials(self, phase: str | None = None, statuses: Iterable[str] | None = None) -> pl.DataFrame:
        """One summary row per trial, its last attempt, ordered by trial id; ``statuses`` keeps only those."""
        frame = last_attempts(self.scan(phase))
        if statuses is not None:
            frame = frame.filter(pl.col("status").is_in(list(statuses)))
        return self._collect(frame)

    def run_values(self, column: str) -> pl.DataFrame:
        """Per trial, the first value ``column`` was given in any row (a run-level value such as a parameter
        count that a workload reports once): columns ``trial_id`` and ``_n``."""
        return self._collect(self.scan().group_by("trial_id").agg(pl.col(column).drop_nulls().first().alias("_n")))

    def attempts(self, phase: str | None = None) -> pl.DataFrame:
        """Every attempt's summary row (what was spent, retries included)."""
        return self._collect(self.scan(phase).filter(pl.col("row_kind") == "summary").sort("trial_id", "attempt"))

    def finished_trials(self, phase: str | None = None) -> pl.DataFrame:
        """The trials whose last attempt finished (status ``done``)."""
        return self.trials(phase, statuses=("done",))

    def reports(self, phase: str | None = None, statuses: Iterable[str] | None = None) -> pl.DataFrame:
        """The report rows (learning curves) of each trial's last attempt, in order; ``statuses`` keeps the
        trials whose last attempt ended so (None: every trial, running ones included)."""
        rows = self.scan(phase)
        latest = rows.group_by("trial_id").agg(pl.col("attempt").max())
        if statuses is not None:
            ended = last_attempts(rows).filter(pl.col("status").is_in(list(statuses)))
            latest = latest.join(ended.select("trial_id", "attempt"), on=["trial_id", "attempt"])
        frame = (rows.filter(pl.col("row_kind") == "report").join(latest, on=["trial_id", "attempt"])
                 .sort("trial_id", "attempt", "report_index"))
        return self._collect(frame)
