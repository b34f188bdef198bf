"""The Parquet store: whole files only, one schema across files, compaction, any Parquet client reads it."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow.parquet as pq
import pytest

from sweeper.store import ResultStore, read_reports, read_trials, rows_dir, scan_rows


def _row(trial: str, index: int, **extra):
    return {"trial_id": trial, "row_kind": "report", "status": "running", "attempt": 0, "report_index": index,
            "step": index + 1, "time": dt.datetime.now(dt.timezone.utc), **extra}


def test_flush_writes_whole_files_with_one_schema(tmp_path):
    store = ResultStore(tmp_path, "s")
    store.append(_row("a", 0, **{"m.loss": 3, "cfg.width": 16}))
    store.flush()
    # A new metric, a wider type (int -> float) and a string config arrive later.
    store.append(_row("a", 1, **{"m.loss": 2.5, "m.loss.valid.code": 2.7, "cfg.width": 24.5, "cfg.act": "gelu"}))
    store.flush()
    files = sorted(rows_dir(tmp_path).glob("*.parquet"))
    assert len(files) == 2
    schemas = {str(pq.read_schema(f)) for f in files}
    assert len(schemas) == 1  # earlier files were rewritten to the grown schema
    frame = pl.scan_parquet(f"{tmp_path}/**/*.parquet").collect()
    assert frame.height == 2
    assert frame.schema["cfg.width"] == pl.Float64 and frame.schema["m.loss"] == pl.Float64
    assert frame["m.loss.valid.code"].to_list() == [None, 2.7]
    assert not list(rows_dir(tmp_path).glob(".*"))  # no temporary files left behind


def test_compaction_merges_and_a_crash_mid_compaction_is_repaired(tmp_path):
    store = ResultStore(tmp_path, "s")
    for i in range(5):
        store.append(_row("a", i, **{"m.loss": float(i)}))
        store.flush()
    parts = sorted(rows_dir(tmp_path).glob("*.parquet"))
    assert len(parts) == 5
    # Simulate a crash after the merged file was renamed in but before the parts were removed.
    store.compact()
    merged = sorted(rows_dir(tmp_path).glob("*.parquet"))
    assert [p.name for p in merged] == ["part-00000001-00000005.parquet"]
    for p in parts[:2]:
        pq.write_table(pq.read_table(merged[0]).slice(0, 1), p)
    reopened = ResultStore(tmp_path, "s")
    assert [p.name for p in rows_dir(tmp_path).glob("*.parquet")] == ["part-00000001-00000005.parquet"]
    reopened.append(_row("b", 0, **{"m.loss": 9.0}))
    new = reopened.flush()
    assert new.name == "part-00000006-00000006.parquet"
    assert scan_rows(tmp_path).collect().height == 6


def test_readers_split_reports_and_summaries(tmp_path):
    store = ResultStore(tmp_path, "s")
    store.append(_row("a", 1, **{"m.loss": 2.0}))
    store.append(_row("a", 0, **{"m.loss": 3.0}))
    store.append({**_row("a", 2, **{"m.loss": 2.0}), "row_kind": "summary", "status": "done"})
    store.flush()
    assert read_reports(tmp_path)["report_index"].to_list() == [0, 1]
    trials = read_trials(tmp_path)
    assert trials.height == 1 and trials["status"][0] == "done"


def test_duckdb_and_pandas_read_the_rows(tmp_path):
    import duckdb
    import pandas as pd

    store = ResultStore(tmp_path, "s")
    for i in range(3):
        store.append(_row("a", i, **{"m.loss": 1.0 / (i + 1)}))
        store.flush()
    glob = f"{tmp_path}/**/*.parquet"
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall()[0][0] == 3
    assert len(pd.read_parquet(rows_dir(tmp_path))) == 3


def test_empty_study_scans_to_an_empty_frame(tmp_path):
    assert scan_rows(tmp_path).collect().height == 0


def test_unreadable_file_is_set_aside_on_open(tmp_path):
    store = ResultStore(tmp_path, "s")
    store.append(_row("a", 0, **{"m.loss": 1.0}))
    store.flush()
    store.sync()
    # what a power failure can leave: a renamed file whose data never reached the disk
    (rows_dir(tmp_path) / "part-00000002-00000002.parquet").write_bytes(b"")
    with pytest.warns(UserWarning, match="unreadable"):
        reopened = ResultStore(tmp_path, "s")
    assert [p.name for p in rows_dir(tmp_path).glob("*.parquet")] == ["part-00000001-00000001.parquet"]
    assert pl.scan_parquet(f"{tmp_path}/**/*.parquet").collect().height == 1
    reopened.append(_row("b", 0, **{"m.loss": 2.0}))
    assert reopened.flush().name == "part-00000002-00000002.parquet"
