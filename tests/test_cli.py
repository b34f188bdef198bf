"""The command line on a real study: run, status, query and export."""

from __future__ import annotations

import json

import polars as pl
import pytest

from sweeper.cli import build_parser, main
from tests.helpers import study_data, write_study

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, ray_session):
    tmp = tmp_path_factory.mktemp("cli")
    path = write_study(tmp, study_data(name="clistudy"))
    results = tmp / "out"
    assert main(["run", str(path), "--results", str(results), "--plain", "--set", "budget.trials=5"]) == 0
    return results


def test_run_writes_results_and_study_copy(study_dir):
    assert (study_dir / "study.yaml").exists() and (study_dir / "optuna.journal").exists()
    assert pl.scan_parquet(f"{study_dir}/**/*.parquet").filter(pl.col("row_kind") == "summary").collect().height == 5


def test_status_json(study_dir, capsys):
    assert main(["status", str(study_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trials"] == 5 and info["by_status"] == {"done": 5} and info["metric"] == "m.loss"
    trials = pl.read_parquet(list((study_dir / "rows").glob("*.parquet"))).filter(pl.col("row_kind") == "summary")
    assert info["best"]["value"] == pytest.approx(trials["m.loss"].min())
    assert set(info["best"]["config"]) == {"cfg.lr", "cfg.n_params", "cfg.noise", "cfg.steps"}


def test_status_table(study_dir, capsys):
    assert main(["status", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert "best m.loss (min)" in out and "done" in out


def test_query_table_and_exports(study_dir, capsys, tmp_path):
    sql = 'SELECT trial_id, "m.loss" FROM trials ORDER BY "m.loss" LIMIT 2'
    assert main(["query", str(study_dir), sql]) == 0
    assert "m.loss" in capsys.readouterr().out
    assert main(["query", str(study_dir), "SELECT count(*) AS n FROM reports", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 50}]
    out = tmp_path / "best.parquet"
    assert main(["query", str(study_dir), sql, "--format", "parquet", "-o", str(out)]) == 0
    assert pl.read_parquet(out).height == 2
    csv = tmp_path / "best.csv"
    assert main(["query", str(study_dir), sql, "--format", "csv", "-o", str(csv)]) == 0
    assert csv.read_text().startswith("trial_id,m.loss")


def test_query_errors_are_clear(study_dir, tmp_path, capsys):
    assert main(["query", str(study_dir), "SELECT nope FROM trials"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["status", str(tmp_path)]) == 2
    assert "not a study results folder" in capsys.readouterr().err


def test_help_lists_commands():
    text = build_parser().format_help()
    for command in ("run", "status", "query"):
        assert command in text


def test_a_module_command_loads_only_its_own_module():
    import subprocess
    import sys

    script = ("import sys; from sweeper.cli import build_parser; p = build_parser(['fit', 'law', '--help-me']); "
              "print(sorted(m for m in sys.modules if m.startswith('sweeper.commands.')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "sweeper.commands.fit_law" in out and "sweeper.commands.report" not in out, out
    for command in (["fit", "law", "-h"], ["decide", "-h"], ["report", "-h"]):
        with pytest.raises(SystemExit) as exc:
            main(command)
        assert exc.value.code == 0
