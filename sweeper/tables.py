"""External tables (CSV, TSV, Parquet) read and written by the analysis commands, with errors naming the file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from sweeper.errors import UserError, first_line

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def read_table(path: str | Path, flag: str | None = None) -> pl.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame; a UserError naming ``flag`` (the option that named the
    file, if any) and the file when it is missing, empty, of another format or unreadable."""
    path = Path(path)
    where = f"{flag}: {path}" if flag else str(path)
    if not path.is_file():
        raise UserError(f"{where}: no such file (expected a CSV or Parquet table)")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"{where}: unknown table format {path.suffix!r} (expected .csv, .tsv or .parquet)")
    kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
    try:
        if kind == "Parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=10_000)
    except pl.exceptions.NoDataError:
        raise UserError(f"{where}: empty file (expected a {kind} table with a header and one row per point)") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise UserError(f"{where}: not a readable {kind} table ({first_line(exc)})") from None
    if not frame.columns:
        raise UserError(f"{where}: no columns (expected a {kind} table with a header and one row per point)")
    return frame


def read_tables(paths: Sequence[str | Path], on: Sequence[str] | None, flag: str) -> pl.DataFrame:
    """One table, or several joined (inner) on ``on`` or on the columns they all share."""
    frames = [read_table(p, flag) for p in paths]
    if len(frames) == 1:
        return frames[0]
    names = ", ".join(str(p) for p in paths)
    keys = list(on) if on else [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    if not keys:
        raise UserError(f"{flag}: {names}: the tables share no column to join on; name one with --on")
    for path, f in zip(paths, frames, strict=True):
        missing = [k for k in keys if k not in f.columns]
        if missing:
            raise UserError(f"{flag}: {path}: --on: no column {', '.join(missing)}")
        if f.select(keys).is_duplicated().any():
            raise UserError(f"{flag}: {path}: join key {', '.join(keys)} is not unique; name the key with --on")
    joined = frames[0]
    for f in frames[1:]:
        joined = joined.join(f, on=keys, how="inner")
    if joined.is_empty():
        raise UserError(f"{flag}: {names}: no rows match on {', '.join(keys)}")
    return joined


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write CSV, TSV or Parquet by the file's suffix, through a temporary name (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(tmp)
    else:
        frame.write_csv(tmp, separator="\t" if path.suffix.lower() == ".tsv" else ",")
    tmp.replace(path)
    return path
