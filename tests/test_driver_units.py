"""Unit tests of the driver's pieces without a Ray cluster: the recorder (fed real Tune ``Trial`` objects),
the progress, the results layer, the summary, queries, the Tune searcher adapter and the trial helpers."""

from __future__ import annotations

import json
import math
import time

import polars as pl
import pytest
from ray.tune.experiment import Trial
from ray.tune.search import Searcher

from sweeper.errors import UserError
from sweeper.plan import FINAL_KEY, RunPlan
from sweeper.progress import StudyProgress
from sweeper.query import run_query
from sweeper.recorder import Recorder
from sweeper.results import StudyResults
from sweeper.search.base import Proposer
from sweeper.search.tune import TuneSearcher
from sweeper.spec import parse_study
from sweeper.store import ResultStore
from sweeper.summary import summarize
from sweeper.trial import MetricTypeError, TrialTimeout, _metric_columns, _Watchdog
from tests.helpers import study_data


def _trial(trial_id: str, **config) -> Trial:
    return Trial("sweeper_trial", config={"n_params": 1e7, "lr": 0.01, **config}, trial_id=trial_id, stub=True)


@pytest.fixture
def recording(tmp_path):
    study = parse_study(study_data())
    plan = RunPlan.from_study(study)
    progress = StudyProgress("t", "loss", "min", total_trials=4)
    synced: list[int] = []
    recorder = Recorder(progress, ResultStore(tmp_path, "t"), plan, syncs=[lambda: synced.append(1)])
    return recorder, progress, tmp_path, synced


def _report(recorder: Recorder, trial: Trial, step: int, loss: float | None, **extra) -> None:
    result = {"step": step, "flops": 1e9 * step, "wall_s": 0.1 * step, "cost": 1e9 * step,
              "report_index": step - 1, **({"m.loss": loss} if loss is not None else {}), **extra}
    recorder.on_trial_result(0, [], trial, result)


def test_recorder_writes_a_report_row_per_report_and_one_summary_per_attempt(recording):
    recorder, progress, folder, synced = recording
    done, pruned = _trial("a"), _trial("b", lr=0.1)
    for t in (done, pruned):
        recorder.on_trial_start(0, [], t)
    for step in (1, 2):
        _report(recorder, done, step, 3.0 - step)
        _report(recorder, pruned, step, 4.0 - step)
    _report(recorder, done, 2, 1.0, **{FINAL_KEY: True})  # the trainable's last word: not a row of its own
    recorder.on_trial_complete(0, [], done)
    recorder.on_trial_complete(0, [], pruned)  # stopped by a scheduler: no final report
    recorder.on_experiment_end([])
    assert synced  # the searcher's sync runs with the Parquet sync

    results = StudyResults(folder)
    trials = results.trials()
    assert dict(zip(trials["trial_id"], trials["status"], strict=True)) == {"a": "done", "b": "pruned"}
    assert trials.filter(pl.col("trial_id") == "a")["m.loss"].item() == 1.0
    assert trials["cfg.lr"].to_list() == [0.01, 0.1] and trials["seed"].to_list() == [0, 0]
    reports = results.reports()
    assert reports.height == 4 and reports["report_index"].to_list() == [0, 1, 0, 1]
    assert results.finished_trials()["trial_id"].to_list() == ["a"]
    assert progress.best().trial_id == "a" and progress.best_value() == 1.0


def test_recorder_marks_a_non_finite_objective_and_a_metric_nobody_reports(recording):
    recorder, _, folder, _ = recording
    nan, silent = _trial("n"), _trial("s")
    _report(recorder, nan, 1, math.nan, **{FINAL_KEY: True})
    recorder.on_trial_complete(0, [], nan)
    assert recorder.fatal is None  # the metric was reported (as NaN): a bad trial, not a bad study
    _report(recorder, silent, 1, None, **{"m.acc": 0.5, FINAL_KEY: True})
    recorder.on_trial_complete(0, [], silent)
    trials = StudyResults(folder).trials()
    errors = dict(zip(trials["trial_id"], trials["error"], strict=True))
    assert trials["status"].to_list() == ["error", "error"]
    assert errors["n"] == "non-finite or missing objective: loss=nan"


def test_recorder_never_reported_metric_is_fatal(tmp_path):
    study = parse_study(study_data(search={"algo": "optuna", "sampler": "random", "metric": "accuracy"}))
    recorder = Recorder(StudyProgress("t", "accuracy", "min", 2), ResultStore(tmp_path, "t"),
                        RunPlan.from_study(study))
    trial = _trial("x")
    _report(recorder, trial, 1, 2.0, **{FINAL_KEY: True})
    recorder.on_trial_complete(0, [], trial)
    assert recorder.fatal is not None and "never reported 'accuracy'" in recorder.fatal


def test_a_retried_trial_keeps_every_attempt_and_reads_as_its_last(recording):
    recorder, _, folder, _ = recording
    trial = _trial("r")
    _report(recorder, trial, 1, 5.0)
    recorder.on_trial_error(0, [], trial)  # attempt 0 fails ("error (no message)": no error file)
    trial.run_metadata.num_failures = 1
    recorder.on_trial_start(0, [], trial)
    _report(recorder, trial, 1, 2.0, **{FINAL_KEY: True})
    recorder.on_trial_complete(0, [], trial)
    results = StudyResults(folder)
    attempts = results.attempts()
    assert attempts["status"].to_list() == ["error", "done"] and attempts["attempt"].to_list() == [0, 1]
    assert results.trials()["status"].to_list() == ["done"]
    assert summarize(folder)["by_status"] == {"done": 1}
    assert summarize(folder)["cost"] == pytest.approx(2e9)  # both attempts' cost was spent


def test_progress_counts_best_and_eta():
    progress = StudyProgress("s", "loss", "max", total_trials=4, started=time.time() - 100)
    progress.add_finished(pl.DataFrame({
        "trial_id": ["a", "b"], "status": ["done", "error"], "attempt": [0, 0], "report_index": [3, 1],
        "step": [3, 1], "tokens": [30, 10], "flops": [3.0, 1.0], "wall_s": [1.0, 1.0], "cost": [3.0, 1.0],
        "error": [None, "boom"], "m.loss": [0.7, None], "cfg.lr": [0.1, 0.2], "mix.web": [None, None]}))
    assert progress.finished == 2 and progress.finished_before == 2
    assert progress.counts()["done"] == 1 and progress.counts()["error"] == 1
    assert progress.best().trial_id == "a" and progress.best().config == {"lr": 0.1}
    assert progress.cost_spent == 4.0
    assert progress.eta_s() is None  # nothing finished in this run yet: no rate to go by
    progress.max_cost = 8.0
    assert progress.eta_s() == pytest.approx(100.0, rel=0.05)  # half the cost cap spent in ~100 s


def test_results_layer_phases_statuses_and_a_missing_folder(tmp_path):
    store = ResultStore(tmp_path, "s", phase="search")
    for trial_id, status in (("a", "done"), ("b", "pruned")):
        store.append({"trial_id": trial_id, "row_kind": "summary", "status": status, "attempt": 0, "m.loss": 1.0})
    store.flush()
    validate = ResultStore(tmp_path, "s", phase="validate")
    validate.append({"trial_id": "v", "row_kind": "summary", "status": "done", "attempt": 0, "m.loss": 2.0})
    validate.flush()
    results = StudyResults(tmp_path)
    assert results.trials("search")["trial_id"].to_list() == ["a", "b"]
    assert results.finished_trials("validate")["trial_id"].to_list() == ["v"]
    assert results.trials(statuses=("pruned",))["trial_id"].to_list() == ["b"]
    assert results.study is None and results.objective() == ("m.loss", "min")
    with pytest.raises(UserError, match="not a study results folder"):
        StudyResults(tmp_path / "nowhere")


def test_query_reads_the_three_tables(recording):
    recorder, _, folder, _ = recording
    trial = _trial("q")
    _report(recorder, trial, 1, 3.0)
    _report(recorder, trial, 2, 2.0, **{FINAL_KEY: True})
    recorder.on_trial_complete(0, [], trial)
    counts = run_query(folder, 'SELECT (SELECT COUNT(*) FROM reports) AS r, (SELECT COUNT(*) FROM trials) AS t, '
                               '(SELECT COUNT(*) FROM rows) AS a')
    assert counts.row(0) == (1, 1, 2)
    assert run_query(folder, 'SELECT "m.loss" FROM trials')["m.loss"].to_list() == [2.0]


class _Counter(Proposer):
    """A tiny proposer: configs numbered in order; remembers what it observed."""

    def __init__(self):
        self.next, self.seen, self.live = 0, [], []

    def suggest(self, trial_id):
        self.next += 1
        self.live.append(trial_id)
        return {"x": self.next}

    def observe(self, trial_id, result, *, final, error=False):
        if final:
            self.live.remove(trial_id)
            self.seen.append((trial_id, None if error else (result or {}).get("m.loss")))

    def state_dict(self):
        return {"next": self.next, "seen": self.seen, "live": self.live}

    def load_state_dict(self, state):
        self.next, self.seen, self.live = state["next"], [tuple(s) for s in state["seen"]], list(state["live"])

    def requeue_unfinished(self):
        stale, self.live = len(self.live), []
        return stale


def test_tune_adapter_counts_the_budget_persists_on_change_and_resumes(tmp_path):
    path = tmp_path / "searcher-state.json"
    searcher = TuneSearcher(_Counter(), max_trials=2, state_path=path)
    assert isinstance(searcher, Searcher)
    assert searcher.suggest("a") == {"x": 1} and searcher.suggest("b") == {"x": 2}
    assert searcher.suggest("c") == Searcher.FINISHED
    searcher.on_trial_complete("a", {"m.loss": 0.5})
    searcher.sync()
    written = path.stat().st_mtime_ns
    searcher.sync()  # nothing changed
    assert path.stat().st_mtime_ns == written
    assert json.loads(path.read_text()) == {"asked": 2, "proposer": {"next": 2, "seen": [["a", 0.5]], "live": ["b"]}}

    again = TuneSearcher(_Counter(), max_trials=1, state_path=path)
    assert again.resume() == 1  # b was running
    assert again.suggest("d") == {"x": 3} and again.suggest("e") == Searcher.FINISHED
    assert again.proposer.seen == [("a", 0.5)]
    path.write_text("{broken")
    with pytest.raises(UserError, match="cannot read the searcher's state"):
        TuneSearcher(_Counter(), state_path=path).resume()


def test_trial_helpers_metric_types_and_the_watchdog():
    assert _metric_columns({"loss": 2, "acc": None, "ok": True}, "report") == {"m.loss": 2, "m.ok": 1.0}
    with pytest.raises(MetricTypeError, match="loss"):
        _metric_columns({"loss": "low"}, "report")
    dog = _Watchdog(0.05)
    with pytest.raises(TrialTimeout):
        for _ in range(1000):
            time.sleep(0.01)
    dog.cancel()
