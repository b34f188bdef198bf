"""Continuing a study in an existing results folder: one writer at a time, and pick up where the Parquet
rows say the study stands (the study itself is checked against its fingerprint in ``sweeper.folder``)."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sweeper.errors import UserError
from sweeper.folder import LOCK_FILE
from sweeper.store import ResultStore, rows_dir, scan_rows


class StudyLock:
    """An exclusive lock on a results folder for the life of a run (released by the OS if the process dies)."""

    def __init__(self, results_dir: Path):
        self.path = results_dir / LOCK_FILE
        self._fh = None

    def __enter__(self) -> StudyLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise UserError(
                f"{self.path.parent}: in use by another sweeper run ({holder}); wait for it to finish, "
                "or write to another folder with --results DIR"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now().isoformat(timespec='seconds')}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def has_results(results_dir: Path) -> bool:
    return rows_dir(results_dir).is_dir() and any(rows_dir(results_dir).glob("part-*.parquet"))


@dataclass
class PriorRun:
    """What earlier runs of a study left in its results folder."""

    finished: pl.DataFrame
    interrupted: list[str] = field(default_factory=list)

    @property
    def n_finished(self) -> int:
        return self.finished.height


def close_interrupted(results_dir: Path, store: ResultStore, phase: str = "search") -> PriorRun:
    """Give every trial that reported but has no summary row (its run was killed) an ``interrupted``
    summary, so each trial has exactly one; return the finished trials."""
    rows = scan_rows(results_dir).filter(pl.col("phase") == phase).collect()
    summaries = rows.filter(pl.col("row_kind") == "summary")
    done_ids = set(summaries["trial_id"])
    reports = rows.filter((pl.col("row_kind") == "report") & ~pl.col("trial_id").is_in(list(done_ids)))
    interrupted = []
    for trial_id, group in reports.sort("report_index").group_by("trial_id", maintain_order=True):
        last = group.row(group.height - 1, named=True)
        summary = {k: v for k, v in last.items() if k not in ("study", "phase")}
        summary.update(row_kind="summary", status="interrupted", report_index=group.height,
                       error="interrupted: the run stopped before this trial finished; it was run again",
                       time=dt.datetime.now(dt.timezone.utc))
        store.append(summary)
        interrupted.append(trial_id[0] if isinstance(trial_id, tuple) else trial_id)
    store.flush()
    store.sync()
    finished = summaries.filter(pl.col("status").is_in(["done", "error", "pruned"]))
    return PriorRun(finished=finished, interrupted=interrupted)
