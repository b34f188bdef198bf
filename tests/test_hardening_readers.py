"""Issue 16, the readers: `query`, `status`, `fit law --from` and `predict law` refuse bad input with one line.

Every case exits 2 with one `sweeper: error: ...` line naming the file, the field or the flag; `query`
reads the study's own tables and no other file. Results folders are written with ResultStore (no Ray).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from sweeper.cli import main
from sweeper.store import ResultStore

SECRET = "s3cret-line-that-must-not-leak"
STUDY = {
    "name": "t",
    "workload": "workloads.synthetic:train",
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
    "search": {"algo": "optuna", "sampler": "random", "metric": "loss", "mode": "min"},
}


def _one_line(err: str) -> str:
    """The one ``sweeper: error:`` line of a refused command's stderr."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sweeper: error: "), err
    return lines[0]


def _error(capsys) -> str:
    return _one_line(capsys.readouterr().err)


def _results(tmp_path: Path, name: str = "results") -> Path:
    """A results folder of three finished trials (losses 1, 2, 3) and its study.yaml."""
    folder = tmp_path / name
    store = ResultStore(folder, "t")
    for i in range(3):
        store.append({"trial_id": f"t{i}", "row_kind": "report", "status": "running", "attempt": 0,
                      "report_index": 0, "step": 1, "m.loss": 1.0 + i})
        store.append({"trial_id": f"t{i}", "row_kind": "summary", "status": "done", "attempt": 0,
                      "report_index": 1, "step": 1, "m.loss": 1.0 + i, "cfg.lr": 0.01 * (i + 1),
                      "error": "read_csv(x)" if i == 2 else None})
    store.flush()
    (folder / "study.yaml").write_text(yaml.safe_dump(STUDY))
    return folder


def _rows_file(folder: Path) -> Path:
    return next((folder / "rows").glob("part-*.parquet"))


@pytest.fixture
def results(tmp_path) -> Path:
    return _results(tmp_path)


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text(f"{SECRET}\n{SECRET}\n")
    return path


# -- query: the study's tables and nothing else (item 8) ----------------------------------------------------
@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('{p}')",
    "SELECT * FROM READ_PARQUET ('{p}')",
    'SELECT * FROM "read_csv"(\'{p}\')',
    "SELECT * FROM `read_csv`('{p}')",
    "SELECT * FROM read_csv/* a comment */('{p}')",
    "SELECT * FROM read_csv -- a comment\n('{p}')",
    "SELECT trial_id FROM trials WHERE trial_id IN (SELECT 1 FROM read_json('{p}'))",
    "SELECT nope FROM trials, read_csv('{p}') AS t",
    "SELECT * FROM trials JOIN (read_ndjson('{p}')) t ON true",
    "FROM read_ipc('{p}')",
    "SELECT * FROM trials, some_table_function('{p}')",
    "/* /* nested */ ' */ SELECT nope FROM read_csv('{p}') --'",
])
def test_query_refuses_table_functions(results, secret, sql, capsys):
    assert "table functions are not allowed" in _refused_query(results, sql.format(p=secret), capsys)


def _refused_query(results, sql, capsys) -> str:
    """Run a query that must be refused; the file's contents never show; returns the one error line."""
    assert main(["query", str(results), sql]) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    line = _one_line(captured.err)
    assert line.startswith("sweeper: error: query: ")
    return line


@pytest.mark.parametrize("sql", [
    "SELECT $$'$$ AS x FROM read_csv('{p}') --'",
    "SELECT R'''x'y''' AS x FROM read_csv('{p}') --'",
    "CREATE TABLE t AS SELECT * FROM read_csv('{p}')",
])
def test_query_refuses_what_could_hide_a_table_function(results, secret, sql, capsys):
    _refused_query(results, sql.format(p=secret), capsys)


def test_query_literals_and_quoted_names_are_not_table_functions(results, capsys):
    sql = "SELECT trial_id, error FROM trials WHERE error = 'read_csv(x)' -- read_csv('/etc/passwd')"
    assert main(["query", str(results), sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"trial_id": "t2", "error": "read_csv(x)"}]
    sql = 'SELECT "m.loss" AS "read_csv(", \'it\'\'s\' AS "q" FROM trials ORDER BY "m.loss" LIMIT 1'
    assert main(["query", str(results), sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"read_csv(": 1.0, "q": "it's"}]
    sql = "SELECT x FROM UNNEST([1, 2]) AS t(x), trials WHERE trial_id = 't0' ORDER BY x"
    assert main(["query", str(results), sql, "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["x", "1", "2"]


# -- query: files and folders (item 7) ------------------------------------------------------------------------
def test_query_output_into_a_missing_folder(results, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "out.csv"
    for fmt in ("csv", "json", "parquet"):
        assert main(["query", str(results), "SELECT * FROM trials", "--format", fmt, "-o", str(target)]) == 2
        line = _error(capsys)
        assert str(target) in line and "no such folder" in line


def test_query_output_onto_a_folder(results, tmp_path, capsys):
    assert main(["query", str(results), "SELECT * FROM trials", "--format", "csv", "-o", str(tmp_path)]) == 2
    assert str(tmp_path) in _error(capsys)


def test_query_a_folder_without_rows(tmp_path, capsys):
    assert main(["query", str(tmp_path / "nope"), "SELECT * FROM trials"]) == 2
    assert "not a study results folder" in _error(capsys)
    (tmp_path / "empty" / "rows").mkdir(parents=True)
    assert main(["query", str(tmp_path / "empty"), "SELECT * FROM trials"]) == 2
    assert "not a study results folder" in _error(capsys)


def test_query_names_an_unreadable_rows_file(results, capsys):
    part = _rows_file(results)
    part.write_bytes(b"")
    assert main(["query", str(results), "SELECT * FROM trials"]) == 2
    assert str(part) in _error(capsys)


# -- status (item 7) --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["zero bytes", "truncated"])
def test_status_names_a_damaged_rows_file(results, damage, capsys):
    part = _rows_file(results)
    data = part.read_bytes()
    part.write_bytes(b"" if damage == "zero bytes" else data[: len(data) // 2])
    assert main(["status", str(results)]) == 2
    line = _error(capsys)
    assert str(part) in line and "Parquet" in line


@pytest.mark.parametrize(("text", "field"), [
    ("name: [unclosed\n", "not valid YAML"),
    ("- a list\n", "expected a mapping"),
    (yaml.safe_dump({**STUDY, "search": {**STUDY["search"], "metric": 3}}), "search.metric"),
    (yaml.safe_dump({**STUDY, "search": {**STUDY["search"], "mode": "sideways"}}), "search.mode"),
    (yaml.safe_dump({**STUDY, "surprise": 1}), "surprise"),
])
def test_status_names_a_broken_study_file(results, text, field, capsys):
    (results / "study.yaml").write_text(text)
    assert main(["status", str(results)]) == 2
    line = _error(capsys)
    assert str(results / "study.yaml") in line and field in line


def test_status_does_not_import_the_workload(results, capsys):
    (results / "study.yaml").write_text(yaml.safe_dump({**STUDY, "workload": "not_installed_here.mod:train"}))
    assert main(["status", str(results), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["trial_id"] == "t0"


def test_status_ranks_only_numbers_of_a_text_metric(results, capsys):
    # An old folder: a workload once reported loss="high", which turned the column into text.
    part = _rows_file(results)
    frame = pl.read_parquet(part)
    text = pl.when(pl.col("trial_id") == "t0").then(pl.lit("high")).otherwise(pl.col("m.loss").cast(pl.String))
    frame.with_columns(text.alias("m.loss")).write_parquet(part)
    assert main(["status", str(results), "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert best["trial_id"] == "t1" and best["value"] == 2.0


# -- fit law --from (item 7) ---------------------------------------------------------------------------------
def _fit_table(path: Path, *args: str) -> int:
    return main(["fit", "law", "--from", str(path), "--n", "params", "--d", "tokens", "--loss", "loss",
                 "--bootstrap", "0", *args])


def _points() -> pl.DataFrame:
    n, d = np.meshgrid([1e6, 3e6, 1e7, 3e7], [1e8, 3e8, 1e9])
    n, d = n.ravel(), d.ravel()
    return pl.DataFrame({"params": n, "tokens": d, "loss": 1.7 + 400 / n**0.34 + 410 / d**0.28})


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_fit_law_an_empty_file(tmp_path, name, capsys):
    path = tmp_path / name
    path.write_bytes(b"")
    assert _fit_table(path) == 2
    assert str(path) in _error(capsys)


def test_fit_law_a_truncated_parquet_table(tmp_path, capsys):
    path = tmp_path / "points.parquet"
    _points().write_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])
    assert _fit_table(path) == 2
    line = _error(capsys)
    assert str(path) in line and "Parquet" in line


@pytest.mark.parametrize("column", ["loss", "params", "tokens"])
def test_fit_law_text_in_a_numeric_column(tmp_path, column, capsys):
    frame = _points().with_columns(pl.col(column).cast(pl.String))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("abc"))
                               .otherwise(pl.col(column)).alias(column))
    path = tmp_path / "points.csv"
    frame.write_csv(path)
    assert _fit_table(path) == 2
    line = _error(capsys)
    assert f"{path}: {column}: expected numbers" in line and "'abc'" in line


def test_fit_law_text_in_a_study_metric(results, capsys):
    part = _rows_file(results)
    frame = pl.read_parquet(part)
    frame.with_columns(pl.lit("high").alias("m.loss")).write_parquet(part)
    assert main(["fit", "law", str(results), "--loss", "m.loss", "--n", "cfg.lr", "--bootstrap", "0"]) == 2
    line = _error(capsys)
    assert "m.loss: expected numbers" in line and str(results) in line


def test_fit_law_a_damaged_study_rows_file(results, capsys):
    _rows_file(results).write_bytes(b"")
    assert main(["fit", "law", str(results), "--loss", "m.loss", "--bootstrap", "0"]) == 2
    assert str(results / "rows") in _error(capsys)


@pytest.mark.parametrize(("change", "expected"), [
    (pl.lit(1e6).alias("params"), "params: 1 distinct values"),
    (pl.when(pl.int_range(pl.len()) == 0).then(-1.0).otherwise(pl.col("params")).alias("params"),
     "params: N (parameters) must be positive"),
    (pl.when(pl.int_range(pl.len()) == 0).then(0.0).otherwise(pl.col("tokens")).alias("tokens"),
     "tokens: D (tokens) must be positive"),
])
def test_fit_law_one_size_or_non_positive_values(tmp_path, change, expected, capsys):
    path = tmp_path / "points.parquet"
    _points().with_columns(change).write_parquet(path)
    assert _fit_table(path) == 2
    assert f"{path}: {expected}" in _error(capsys)


# -- predict law (item 9) ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fit_file(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fit")
    table = tmp / "points.csv"
    _points().write_csv(table)
    out = tmp / "fit.json"
    assert main(["fit", "law", "--from", str(table), "--n", "params", "--d", "tokens", "--loss", "loss",
                 "--bootstrap", "8", "-o", str(out)]) == 0
    return out


def _edit_param(raw: dict, name: str, value: float) -> None:
    raw["params"][name] = value


@pytest.mark.parametrize(("edit", "field"), [
    (lambda raw: _edit_param(raw, "alpha", -0.3), "params.alpha"),
    (lambda raw: _edit_param(raw, "beta", -0.1), "params.beta"),
    (lambda raw: _edit_param(raw, "A", -400.0), "params.A"),
    (lambda raw: _edit_param(raw, "B", 0.0), "params.B"),
    (lambda raw: _edit_param(raw, "E", -1.0), "params.E"),
    (lambda raw: _edit_param(raw, "E", "low"), "params.E"),
    (lambda raw: raw["params"].pop("beta"), "params: missing beta"),
    (lambda raw: raw["intervals"].__setitem__("alpha", [0.5, 0.1]), "intervals.alpha"),
    (lambda raw: raw["bootstrap"]["samples"][0].__setitem__(3, -0.2), "alpha"),
    (lambda raw: raw["bootstrap"]["samples"][0].pop(), "bootstrap.samples"),
    (lambda raw: raw.__setitem__("level", 1.5), "level"),
    (lambda raw: raw.__setitem__("flops_per_token_param", -6), "flops_per_token_param"),
    (lambda raw: raw.__setitem__("n_points", "many"), "n_points"),
])
def test_predict_law_refuses_a_hand_edited_fit(fit_file, tmp_path, edit, field, capsys):
    raw = json.loads(fit_file.read_text())
    edit(raw)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    assert main(["predict", "law", str(path), "--n", "1e9", "--d", "2e10"]) == 2
    line = _error(capsys)
    assert str(path) in line and field in line


def test_predict_law_accepts_the_fit_it_wrote(fit_file, capsys):
    assert main(["predict", "law", str(fit_file), "--n", "1e9", "--d", "2e10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    low, high = out["loss"]["interval"]
    assert low <= out["loss"]["value"] <= high


@pytest.mark.parametrize("value", ["-1e9", "-2.5E+3", "-1", "-.5", "-inf"])
@pytest.mark.parametrize("flag", ["--n", "--d"])
def test_predict_law_negative_numbers_reach_the_positivity_check(fit_file, flag, value, capsys):
    other = "--d" if flag == "--n" else "--n"
    assert main(["predict", "law", str(fit_file), flag, value, other, "1e9"]) == 2
    line = _error(capsys)
    assert line.startswith(f"sweeper: error: {flag}: ") and "expected a positive number" in line


@pytest.mark.parametrize(("args", "flag"), [
    (["--flops-per-token-param", "-6e0"], "--flops-per-token-param"),
    (["--flops-per-token-param", "0"], "--flops-per-token-param"),
    (["--min-fraction", "-1e-3"], "--min-fraction"),
])
def test_fit_law_refuses_negative_numbers_with_one_line(tmp_path, args, flag, capsys):
    path = tmp_path / "points.csv"
    _points().write_csv(path)
    assert _fit_table(path, *args) == 2
    assert _error(capsys).startswith(f"sweeper: error: {flag}: ")
