"""Parquet results of a study: one row per report plus one summary row per trial.

Layout: ``<study_dir>/rows/part-<lo>-<hi>.parquet``. Each file covers a range of flush sequence numbers;
a flush writes one file ``part-<n>-<n>``, compaction merges files into one whose range covers theirs.
Files are written under a temporary name and renamed, so a killed process leaves only whole files;
``sync()`` (called every few seconds) fsyncs what was written since, so a power failure loses at most
those seconds, and a file left unreadable by one is set aside when the store is opened. Every file
shares one schema (when a new column or a wider type appears, earlier files are rewritten, again by
rename), so a plain ``pl.scan_parquet("<study_dir>/**/*.parquet")`` reads the study.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

BASE_FIELDS: list[pa.Field] = [
    pa.field("study", pa.string()),
    pa.field("phase", pa.string()),
    pa.field("trial_id", pa.string()),
    pa.field("row_kind", pa.string()),
    pa.field("status", pa.string()),
    pa.field("attempt", pa.int64()),
    pa.field("report_index", pa.int64()),
    pa.field("step", pa.int64()),
    pa.field("tokens", pa.int64()),
    pa.field("flops", pa.float64()),
    pa.field("wall_s", pa.float64()),
    pa.field("cost", pa.float64()),
    pa.field("seed", pa.int64()),
    pa.field("node", pa.string()),
    pa.field("time", pa.timestamp("us", tz="UTC")),
    pa.field("error", pa.string()),
]
BASE_SCHEMA = pa.schema(BASE_FIELDS)
_BASE_NAMES = {f.name for f in BASE_FIELDS}
_PART = re.compile(r"part-(\d{8})-(\d{8})\.parquet$")
ROW_KEY = ("trial_id", "attempt", "row_kind", "report_index")


def rows_dir(study_dir: str | Path) -> Path:
    """The folder holding a study's Parquet rows."""
    return Path(study_dir) / "rows"


def scan_rows(study_dir: str | Path) -> pl.LazyFrame:
    """Every row of a study (reports and summaries) as a Polars LazyFrame."""
    files = sorted(rows_dir(study_dir).glob("part-*.parquet"))
    if not files:
        return pl.LazyFrame(schema=pl.Schema(pl.from_arrow(BASE_SCHEMA.empty_table()).schema))
    return pl.scan_parquet(files)


def _in_phase(frame: pl.LazyFrame, phase: str | None) -> pl.LazyFrame:
    return frame if phase is None else frame.filter(pl.col("phase") == phase)


def read_trials(study_dir: str | Path, phase: str | None = None) -> pl.DataFrame:
    """One summary row per trial (its final status, config and last metrics); ``phase`` filters, e.g.
    ``"search"`` for the sweep itself and ``"validate"`` for a study's follow-up runs."""
    rows = _in_phase(scan_rows(study_dir), phase)
    return rows.filter(pl.col("row_kind") == "summary").sort("trial_id", "attempt").collect()


def read_reports(study_dir: str | Path, phase: str | None = None) -> pl.DataFrame:
    """The report rows of every trial, in order (whole learning curves)."""
    rows = _in_phase(scan_rows(study_dir), phase)
    return rows.filter(pl.col("row_kind") == "report").sort("trial_id", "attempt", "report_index").collect()


def column_order(names: Iterable[str]) -> list[str]:
    """Base columns first, then ``cfg.*``, ``mix.*``, ``m.*`` and anything else, each sorted."""
    names = set(names)
    ranked = [f.name for f in BASE_FIELDS if f.name in names]
    for prefix in ("cfg.", "mix.", "m."):
        ranked += sorted(n for n in names if n.startswith(prefix))
    ranked += sorted(names - set(ranked))
    return ranked


def _infer_type(name: str, values: list[Any]) -> pa.DataType:
    if name.startswith(("mix.", "m.")):  # weights and metrics are always numbers (a metric's type never changes)
        return pa.float64()
    present = [v for v in values if v is not None]
    if not present:
        return pa.null()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if any(isinstance(v, float) for v in present):
            return pa.float64()
        return pa.int64()
    return pa.string()


def _wider(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type that holds values of both: null < bool < int64 < float64 < string."""
    if a == b:
        return a
    order = [pa.null(), pa.bool_(), pa.int64(), pa.float64(), pa.string()]
    rank = {str(t): i for i, t in enumerate(order)}
    if str(a) in rank and str(b) in rank:
        return order[max(rank[str(a)], rank[str(b)])]
    return pa.string()


def _to_arrow(values: list[Any], dtype: pa.DataType) -> pa.Array:
    if pa.types.is_string(dtype):
        values = [None if v is None else (v if isinstance(v, str) else repr(v)) for v in values]
    elif pa.types.is_floating(dtype):
        values = [None if v is None else _as_float(v) for v in values]
    return pa.array(values, type=dtype)


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class ResultStore:
    """Append-only, crash-safe Parquet writer for one study's rows (used on the driver only)."""

    def __init__(self, study_dir: str | Path, study: str, phase: str = "search"):
        self.study = study
        self.phase = phase
        self.dir = rows_dir(study_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pending: list[dict[str, Any]] = []
        self._unsynced: set[Path] = set()
        self._remove_covered_files()
        self._set_aside_unreadable_files()
        self._schema = self._read_schema()
        self._next_seq = 1 + max((hi for _, hi, _ in self._parts()), default=0)
        self.rows_written = 0

    # -- writing -----------------------------------------------------------------------------------
    def append(self, row: dict[str, Any]) -> None:
        """Queue one row; it reaches disk at the next ``flush``."""
        self._pending.append({"study": self.study, "phase": self.phase, **row})

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> Path | None:
        """Write queued rows as one new file (and widen earlier files if the schema grew)."""
        if not self._pending:
            return None
        rows, self._pending = self._pending, []
        names = set().union(*(r.keys() for r in rows))
        merged = self._merge_schema({n: _infer_type(n, [r.get(n) for r in rows]) for n in names})
        if merged != self._schema:
            self._schema = merged
            self._rewrite_all()
        table = pa.Table.from_arrays(
            [_to_arrow([r.get(f.name) for r in rows], f.type) for f in self._schema], schema=self._schema
        )
        seq = self._next_seq
        self._next_seq += 1
        path = self.dir / f"part-{seq:08d}-{seq:08d}.parquet"
        self._write_atomic(table, path)
        self.rows_written += len(rows)
        return path

    def compact(self) -> Path | None:
        """Merge all files into one (the merged file is renamed in before the parts are removed)."""
        self.flush()
        parts = self._parts()
        if len(parts) < 2:
            return None
        lo, hi = min(p[0] for p in parts), max(p[1] for p in parts)
        table = pa.concat_tables(pq.read_table(p[2]) for p in parts)
        target = self.dir / f"part-{lo:08d}-{hi:08d}.parquet"
        self._write_atomic(table, target)
        self.sync()  # the merged file is durable before the parts it replaces go
        for _, _, path in parts:
            if path != target:
                path.unlink(missing_ok=True)
        return target

    # -- internals ---------------------------------------------------------------------------------
    def _parts(self) -> list[tuple[int, int, Path]]:
        out = []
        for path in self.dir.glob("part-*.parquet"):
            m = _PART.search(path.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), path))
        return sorted(out)

    def sync(self) -> None:
        """fsync every file written since the last sync, and the folder (their names)."""
        if not self._unsynced:
            return
        for path in self._unsynced:
            if path.exists():
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._unsynced.clear()

    def _set_aside_unreadable_files(self) -> None:
        """A file that a power failure left unreadable is renamed ``*.unreadable`` (out of every glob)."""
        for _, _, path in self._parts():
            try:
                pq.read_metadata(path)
            except (OSError, pa.ArrowException):
                warnings.warn(f"{path}: unreadable Parquet file set aside as {path.name}.unreadable", stacklevel=2)
                path.rename(path.with_name(path.name + ".unreadable"))

    def _remove_covered_files(self) -> None:
        """Delete files whose range lies inside a compacted file's (left by a crash mid-compaction)."""
        parts = self._parts()
        for lo, hi, path in parts:
            if any(lo2 <= lo and hi <= hi2 and (lo2, hi2) != (lo, hi) for lo2, hi2, _ in parts):
                path.unlink(missing_ok=True)
        for tmp in self.dir.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def _read_schema(self) -> pa.Schema:
        schema = BASE_SCHEMA
        for _, _, path in self._parts():
            file_schema = pq.read_schema(path)
            schema = self._merge_into(schema, {f.name: f.type for f in file_schema})
        return schema

    def _merge_schema(self, types: dict[str, pa.DataType]) -> pa.Schema:
        return self._merge_into(self._schema, types)

    @staticmethod
    def _merge_into(schema: pa.Schema, types: dict[str, pa.DataType]) -> pa.Schema:
        current = {f.name: f.type for f in schema}
        for name, dtype in types.items():
            if name in _BASE_NAMES:
                continue
            current[name] = _wider(current[name], dtype) if name in current else dtype
        base = {f.name: f.type for f in BASE_FIELDS}
        return pa.schema([pa.field(n, base.get(n, current.get(n))) for n in column_order(current)])

    def _rewrite_all(self) -> None:
        for _, _, path in self._parts():
            table = pq.read_table(path)
            if table.schema == self._schema:
                continue
            columns = []
            for field in self._schema:
                if field.name in table.column_names:
                    columns.append(table.column(field.name).cast(field.type))
                else:
                    columns.append(pa.nulls(table.num_rows, type=field.type))
            self._write_atomic(pa.Table.from_arrays(columns, schema=self._schema), path)

    def _write_atomic(self, table: pa.Table, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        self._unsynced.add(path)
