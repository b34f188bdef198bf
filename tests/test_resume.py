"""Resume: one writer per results folder, unsafe study changes refused, a killed run continued with every
reported row kept exactly once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import optuna
import polars as pl
import pytest

from sweeper.engine import run_study
from sweeper.errors import UserError
from sweeper.folder import study_changes
from sweeper.resume import StudyLock
from sweeper.spec import parse_study
from sweeper.store import scan_rows
from tests.helpers import study_data, write_study


def _assert_exactly_once(results) -> pl.DataFrame:
    rows = scan_rows(results).collect()
    dups = rows.group_by("trial_id", "attempt", "row_kind", "report_index").len().filter(pl.col("len") > 1)
    assert dups.height == 0
    summaries = rows.filter(pl.col("row_kind") == "summary")
    assert summaries["trial_id"].n_unique() == summaries.height  # one summary per trial
    reports = rows.filter(pl.col("row_kind") == "report").group_by("trial_id", "attempt").agg(
        pl.len(), pl.col("report_index").max().alias("last"))
    assert (reports["len"] == reports["last"] + 1).all()  # no gaps in any trial's reports
    assert set(reports["trial_id"]) <= set(summaries["trial_id"])
    return rows


def test_second_writer_is_refused(tmp_path):
    study = parse_study(study_data())
    with StudyLock(tmp_path / "results"), pytest.raises(UserError, match="in use by another sweeper run"):
        run_study(study, tmp_path / "results", rich=False)


def test_study_changes_split_safe_and_unsafe():
    old = parse_study(study_data()).model_dump(mode="json")
    new = parse_study(study_data(budget={"trials": 9, "concurrent": 2}, seed=4)).model_dump(mode="json")
    unsafe, safe = study_changes(old, new)
    assert unsafe == ["seed: 0 -> 4"] and safe == ["budget.trials: 4 -> 9"]


@pytest.mark.usefixtures("ray_session")
def test_resume_refuses_unsafe_changes_and_continues_safe_ones(tmp_path):
    results = tmp_path / "results"
    run_study(parse_study(study_data()), results, rich=False, stream=io.StringIO())
    with pytest.raises(UserError, match="already holds results"):
        run_study(parse_study(study_data()), results, rich=False)
    changed = study_data(space={"lr": {"type": "log", "low": 1e-3, "high": 1e-1}})
    with pytest.raises(UserError, match=r"space\.lr\.low"):
        run_study(parse_study(changed), results, rich=False, resume=True)
    outcome = run_study(parse_study(study_data(budget={"trials": 6, "concurrent": 2})), results, rich=False,
                        resume=True, stream=io.StringIO())
    assert outcome.progress.finished == 6
    rows = _assert_exactly_once(results)
    assert rows.filter(pl.col("row_kind") == "summary").height == 6


def test_kill_dash_nine_then_resume(tmp_path):
    """A real `sweeper run` process is killed with SIGKILL mid-study; `sweeper resume` finishes it."""
    data = study_data(name="killed", params={"steps": 20, "sleep_s": 0.05}, budget={"trials": 8, "concurrent": 2},
                      search={"sampler": "tpe", "metric": "loss"})
    path = write_study(tmp_path, data)
    results = tmp_path / "results"
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "sweeper.cli", "run", str(path), "--results", str(results), "--plain"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and log.read_text().count(" done ") < 3:
        time.sleep(0.2)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    before = scan_rows(results).filter(pl.col("row_kind") == "summary").collect()
    assert 3 <= before.height < 8, log.read_text()

    resumed = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", str(results), "--plain"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = _assert_exactly_once(results)
    summaries = rows.filter(pl.col("row_kind") == "summary")
    finished = summaries.filter(pl.col("status") == "done")
    assert finished.height == 8
    # trials finished before the kill are kept as they were
    assert set(before["trial_id"]) <= set(finished["trial_id"])
    study = optuna.load_study(study_name="killed", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(results / "optuna.journal"))))
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 8
