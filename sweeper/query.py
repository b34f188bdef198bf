"""SQL over a study's rows with Polars, and export of the result."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sweeper.errors import UserError
from sweeper.store import scan_rows
from sweeper.summary import check_study_dir


def run_query(study_dir: str | Path, sql: str) -> pl.DataFrame:
    """Run ``sql`` with tables ``rows``, ``reports`` and ``trials`` bound to the study's rows."""
    rows = scan_rows(check_study_dir(study_dir))
    ctx = pl.SQLContext(
        rows=rows,
        reports=rows.filter(pl.col("row_kind") == "report"),
        trials=rows.filter(pl.col("row_kind") == "summary"),
    )
    try:
        return ctx.execute(sql, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"query: {first} (tables: rows, reports, trials; quote dotted names: \"m.loss\")") from None


def print_table(frame: pl.DataFrame, limit: int = 200) -> None:
    """Print a frame as a Rich table."""
    from rich.console import Console
    from rich.table import Table

    from sweeper.live import fmt_num

    table = Table(show_lines=False)
    for name in frame.columns:
        table.add_column(name, overflow="fold")
    for row in frame.head(limit).iter_rows():
        table.add_row(*(fmt_num(v) if isinstance(v, (int, float)) else ("" if v is None else str(v)) for v in row))
    console = Console()
    console.print(table)
    if frame.height > limit:
        console.print(f"... {frame.height - limit} more rows (use --format csv -o FILE for all)")


def export(frame: pl.DataFrame, fmt: str, output: str | None) -> None:
    """Write ``frame`` as csv/json/parquet to ``output`` (stdout for csv and json when absent)."""
    if fmt == "parquet":
        if not output:
            raise UserError("--format parquet: needs -o FILE")
        frame.write_parquet(output)
    elif fmt == "json":
        if output:
            frame.write_json(output)
        else:
            print(frame.write_json())
    elif output:
        frame.write_csv(output)
    else:
        print(frame.write_csv(), end="")
