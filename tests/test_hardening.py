"""Hostile but realistic use (issue 16): every case here failed, hung or lost files before it was fixed."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import polars as pl
import pytest
import yaml

from sweeper.cli import main
from sweeper.engine import run_study
from sweeper.errors import StudyError, UserError
from sweeper.guard import resources_shortfall
from sweeper.search.build import build_searcher
from sweeper.spec import parse_study
from sweeper.store import read_reports, read_trials
from tests.helpers import run, study_data, write_study

HOSTILE = "tests.hostile_workloads"


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- 0. the NSGA-II searcher with the current Optuna -------------------------------------------------------
def test_optuna_searcher_pickles_and_keeps_working(tmp_path):
    """Ray Tune pickles the search algorithm; Optuna 5.1's NSGA-II sampler holds a lock."""
    study = parse_study(study_data(search={"algo": "optuna", "sampler": "nsga2", "metric": ["loss", "cost"],
                                           "mode": ["min", "min"]}))
    searcher = build_searcher(study, tmp_path, max_trials=3)
    first = searcher.suggest("a")
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy.suggest("b") is not None and set(first) == {"n_params", "lr"}
    copy.on_trial_complete("a", {"m.loss": 1.0, "cost": 2.0, "sweeper.final": True})
    trials = copy.proposer.study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]


# -- 1. resume of an edited study.yaml -----------------------------------------------------------------
@pytest.mark.usefixtures("ray_session")
def test_resume_refuses_an_edited_study_copy(tmp_path, capsys):
    results = run(tmp_path).results_dir
    copy = results / "study.yaml"
    data = yaml.safe_load(copy.read_text())
    data["params"]["steps"] = 3
    copy.write_text(yaml.safe_dump(data))
    assert main(["resume", str(results), "--set", "budget.trials=5", "--plain"]) == 2
    err = _err_line(capsys)
    assert "changed since its first run" in err and "params.steps: 10 -> 3" in err
    data["params"]["steps"] = 10
    data["name"] = "renamed"
    copy.write_text(yaml.safe_dump(data))
    assert main(["resume", str(results), "--plain"]) == 2
    assert "name: 't' -> 'renamed'" in _err_line(capsys)
    # the study as first run, with a safe change, still resumes
    data["name"] = "t"
    copy.write_text(yaml.safe_dump(data))
    assert main(["resume", str(results), "--set", "budget.trials=5", "--plain"]) == 0
    assert read_trials(results).height == 5


# -- 2. --fresh deletes only sweeper's files, and only of its own study ---------------------------------
@pytest.mark.usefixtures("ray_session")
def test_fresh_keeps_other_files_and_refuses_another_study(tmp_path):
    results = run(tmp_path).results_dir
    (results / "notes.txt").write_text("mine")
    (results / "plots").mkdir()
    (results / "plots" / "a.png").write_bytes(b"x")
    other = parse_study(study_data(name="other"))
    with pytest.raises(UserError, match="holds the results of study 't', not 'other'"):
        run_study(other, results, rich=False, fresh=True, stream=io.StringIO())
    assert read_trials(results).height == 4  # nothing was deleted
    run_study(parse_study(study_data(budget={"trials": 2, "concurrent": 2})), results, rich=False, fresh=True,
              stream=io.StringIO())
    assert read_trials(results).height == 2
    assert (results / "notes.txt").read_text() == "mine" and (results / "plots" / "a.png").exists()
    run_study(other, results, rich=False, fresh=True, force=True, stream=io.StringIO())
    assert set(read_trials(results)["study"]) == {"other"}


def test_results_that_is_a_file_is_refused(tmp_path, capsys):
    path = write_study(tmp_path, study_data())
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    assert main(["run", str(path), "--results", str(target)]) == 2
    assert "is a file, expected a folder" in _err_line(capsys)
    assert main(["run", str(path), "--force"]) == 2
    assert "--force" in _err_line(capsys)


# -- 3. metrics are numbers or missing ------------------------------------------------------------------
@pytest.mark.usefixtures("ray_session")
def test_text_metric_fails_its_trial_and_never_changes_the_column_type(tmp_path):
    outcome = run(tmp_path, workload=f"{HOSTILE}:text_metric", params={"bad": True},
                  space={"x": {"type": "float", "low": 0, "high": 1}}, budget={"trials": 2, "concurrent": 2})
    trials = read_trials(outcome.results_dir)
    assert set(trials["status"]) == {"error"}
    assert all("metric 'loss' must be a number or None, got str 'high'" in e for e in trials["error"])
    reports = read_reports(outcome.results_dir)
    assert reports.schema["m.loss"] == pl.Float64 and reports.schema["m.acc"] == pl.Float64
    assert "m.note_free" not in reports.columns or reports["m.note_free"].null_count() == reports.height
    assert main(["status", str(outcome.results_dir), "--json"]) == 0


@pytest.mark.usefixtures("ray_session")
def test_text_in_another_metric_fails_the_trial_too(tmp_path):
    outcome = run(tmp_path, workload=f"{HOSTILE}:text_side_metric", space={"x": {"type": "float", "low": 0, "high": 1}},
                  budget={"trials": 1})
    trials = read_trials(outcome.results_dir)
    assert trials["status"].to_list() == ["error"] and "metric 'phase'" in trials["error"][0]


@pytest.mark.usefixtures("ray_session")
def test_none_is_missing_not_text(tmp_path):
    outcome = run(tmp_path, workload=f"{HOSTILE}:missing_values", space={"x": {"type": "float", "low": 0, "high": 1}},
                  budget={"trials": 1})
    reports = read_reports(outcome.results_dir)
    assert reports.schema["m.valid"] == pl.Float64
    assert reports["m.valid"].to_list() == [None, 0.7]
    assert read_trials(outcome.results_dir)["status"].to_list() == ["done"]


# -- 4. grids too large to enumerate ----------------------------------------------------------------------
def test_huge_grid_is_refused_before_enumerating(tmp_path):
    space = {k: {"type": "float", "low": 0, "high": 1, "points": 100_000} for k in ("a", "b", "c")}
    with pytest.raises(StudyError, match=r"space: search.algo grid: 1,000,000,000,000,000 configs"):
        parse_study(study_data(space=space, search={"algo": "grid"}))
    huge_int = {"n": {"type": "int", "low": 0, "high": 10**15}}
    start = time.perf_counter()
    with pytest.raises(StudyError, match="more than 100,000"):
        parse_study(study_data(space=huge_int, search={"algo": "grid"}))
    assert time.perf_counter() - start < 5  # counted, not listed (a behaviour, not a benchmark: minutes before)


# -- 5. resources no node can give ----------------------------------------------------------------------
def test_resources_shortfall_names_the_largest_node():
    nodes = [{"CPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert resources_shortfall(4, 0, nodes) is None and resources_shortfall(8, 1, nodes) is None
    why = resources_shortfall(64, 0, nodes)
    assert "cpu=64" in why and "largest has cpu=8, gpu=1" in why
    assert "gpu=2" in resources_shortfall(1, 2, nodes)


@pytest.mark.usefixtures("ray_session")
def test_impossible_resources_exit_2_before_any_trial(tmp_path, capsys):
    path = write_study(tmp_path, study_data(resources={"cpu": 64}))
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = _err_line(capsys)
    assert "resources: a trial asks for cpu=64" in err and str(path) in err
    assert not (tmp_path / "r" / "rows").exists()


def test_zero_resources_are_refused(tmp_path):
    with pytest.raises(StudyError, match="resources: expected cpu > 0 or gpu > 0"):
        parse_study(study_data(resources={"cpu": 0}))


# -- 6. Ctrl-C and SIGTERM --------------------------------------------------------------------------------
def _ray_processes(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(f"{pid}: {cmd[:120]}")
    return found


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_exits_nonzero_keeps_rows_and_leaves_no_ray_process(tmp_path, sig, code):
    data = study_data(name="sig", workload=f"{HOSTILE}:slow", params={"steps": 400},
                      space={"x": {"type": "float", "low": 0, "high": 1}}, budget={"trials": 4, "concurrent": 2})
    path = write_study(tmp_path, data)
    results = tmp_path / "results"
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(path), "--results", str(results),
                                 "--plain"], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((results / "rows").glob("part-*.parquet")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code, log.read_text()
    assert "continue with: sweeper resume" in log.read_text()
    rows = pl.read_parquet(list((results / "rows").glob("part-*.parquet")))
    assert rows.filter(pl.col("row_kind") == "report").height > 0
    time.sleep(2.0)
    try:
        assert _ray_processes(ray_tmp) == []
        if sig == signal.SIGINT:
            resumed = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", str(results), "--plain",
                                      "--set", "budget.trials=1"], capture_output=True, text=True, timeout=300,
                                     env=env)
            assert resumed.returncode == 0, resumed.stderr
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# -- 7. option types ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("search", "message"), [
    ({"sampler": "tpe", "options": {"n_startup_trials": "x"}}, "n_startup_trials: expected int, got 'x'"),
    ({"sampler": "tpe", "options": {"gamma": 3}}, "gamma: expected Callable"),
    ({"sampler": "nsga2", "options": {"crossover_prob": "high"}}, "crossover_prob: expected float"),
    ({"algo": "cost_aware", "options": {"pending": "maybe"}}, "pending: expected Literal"),
    ({"algo": "cost_aware", "options": {"radius": [1]}}, "radius: expected float"),
    ({"algo": "cost_aware", "options": {"rerun_key": "lr"}}, "s.yaml: search.options: cost_aware: .*rerun_key"),
    ({"algo": "cost_aware", "options": {"radius": 5.0}}, "s.yaml: search.options: cost_aware: .*radius"),
])
def test_wrong_option_types_are_refused_before_running(tmp_path, search, message):
    study = parse_study(study_data(search={"metric": "loss", **search}))
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        build_searcher(study, tmp_path, path="s.yaml")


def test_dirichlet_option_type_is_refused(tmp_path):
    study = parse_study(study_data(space={"mix": {"type": "simplex", "domains": ["a", "b"]}},
                                   search={"algo": "dirichlet", "metric": "loss", "options": {"n_scales": 2.5}}))
    with pytest.raises(UserError, match="n_scales: expected int, got 2.5"):
        build_searcher(study, tmp_path)


# -- 9. smaller ------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("ray_session")
def test_a_metric_never_reported_stops_the_study_after_the_first_trial(tmp_path, capsys):
    path = write_study(tmp_path, study_data(workload=f"{HOSTILE}:other_metric",
                                            space={"x": {"type": "float", "low": 0, "high": 1}},
                                            budget={"trials": 30, "concurrent": 1}))
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--plain"]) == 2
    err = capsys.readouterr().err
    assert "search.metric: the workload never reported 'loss'" in err and "val_loss" in err
    assert read_trials(tmp_path / "r").height < 5  # stopped, not run to the end


@pytest.mark.usefixtures("ray_session")
def test_sys_exit_in_a_workload_is_recorded_as_such(tmp_path):
    outcome = run(tmp_path, workload=f"{HOSTILE}:exits", space={"x": {"type": "float", "low": 0, "high": 1}},
                  budget={"trials": 1})
    trials = read_trials(outcome.results_dir)
    assert trials["status"].to_list() == ["error"]
    assert "the workload called sys.exit(0)" in trials["error"][0]


def test_nsga2_journal_opens_after_a_pickle_round_trip(tmp_path):
    study = parse_study(study_data(search={"algo": "optuna", "sampler": "nsga2", "metric": ["loss", "cost"],
                                           "mode": ["min", "min"]}))
    searcher = build_searcher(study, tmp_path, max_trials=2)
    searcher.suggest("a")
    pickle.loads(pickle.dumps(searcher))
    loaded = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))))
    assert len(loaded.trials) == 1
