"""End to end: real Ray Tune + real Optuna on tiny synthetic studies; every report lands in Parquet."""

from __future__ import annotations

import optuna
import polars as pl
import pytest

from sweeper.search.optuna_searcher import STORAGE_FILE
from sweeper.store import read_reports, read_trials, scan_rows
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("ray_session")


def _check_rows_whole(results):
    """Each trial attempt has report rows 0..n-1 exactly once and one summary row."""
    reports = read_reports(results)
    per_trial = reports.group_by("trial_id", "attempt").agg(
        pl.col("report_index").sort(), pl.len().alias("n"), pl.col("report_index").n_unique().alias("unique")
    )
    for row in per_trial.iter_rows(named=True):
        assert row["report_index"] == list(range(row["n"])) and row["unique"] == row["n"]
    trials = read_trials(results)
    assert trials["trial_id"].n_unique() == trials.height
    return reports, trials


def test_every_report_lands_in_parquet(tmp_path):
    outcome = run(tmp_path, params={"steps": 12}, budget={"trials": 6, "concurrent": 2})
    results = outcome.results_dir
    reports, trials = _check_rows_whole(results)
    assert trials.height == 6 and set(trials["status"]) == {"done"}
    assert reports.height == 6 * 12  # FIFO: every trial reports all 12 steps
    assert outcome.rows_written == 6 * 12 + 6
    # the schema of DESIGN.md
    for col in ("study", "trial_id", "status", "step", "tokens", "flops", "wall_s", "cost", "seed", "node",
                "error", "cfg.n_params", "cfg.lr", "m.loss"):
        assert col in reports.columns
    ratio = reports["flops"] / (6 * reports["cfg.n_params"] * reports["tokens"])
    assert ((ratio - 1).abs() < 1e-6).all()  # the synthetic workload counts 6 N D
    # a plain glob over the study folder reads the whole study
    assert pl.scan_parquet(f"{results}/**/*.parquet").collect().height == 6 * 12 + 6
    # the final summary carries the last loss
    last = reports.sort("step").group_by("trial_id").last().select("trial_id", "m.loss")
    joined = trials.join(last, on="trial_id", suffix="_last")
    assert (joined["m.loss"] == joined["m.loss_last"]).all()
    # the Optuna study opens with plain optuna.load_study
    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(results / STORAGE_FILE))))
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    outcome = run(tmp_path, params={"steps": 5, "fail_above_lr": 3e-3}, budget={"trials": 8, "concurrent": 2})
    _, trials = _check_rows_whole(outcome.results_dir)
    assert trials.height == 8
    failed = trials.filter(pl.col("status") == "error")
    done = trials.filter(pl.col("status") == "done")
    assert failed.height > 0 and done.height > 0
    assert (failed["cfg.lr"] > 3e-3).all() and (done["cfg.lr"] <= 3e-3).all()
    assert all(e.startswith("RuntimeError: diverged") for e in failed["error"])
    assert done["error"].null_count() == done.height


def test_retries_record_each_attempt(tmp_path):
    outcome = run(tmp_path, params={"steps": 3, "fail_above_lr": 1e-9}, budget={"trials": 2, "concurrent": 2},
                  max_failures=1)
    rows = scan_rows(outcome.results_dir).collect()
    trials = rows.filter(pl.col("row_kind") == "summary")
    assert trials.height == 2 and set(trials["status"]) == {"error"}
    assert set(trials["attempt"]) == {1}  # failed once, retried once, failed again


def test_asha_prunes_and_tells_optuna(tmp_path):
    outcome = run(
        tmp_path, params={"steps": 27}, budget={"trials": 12, "concurrent": 2},
        search={"algo": "optuna", "sampler": "tpe", "metric": "loss", "mode": "min"},
        scheduler={"type": "asha", "grace": 3, "reduction": 3, "max_t": 27},
    )
    reports, trials = _check_rows_whole(outcome.results_dir)
    statuses = trials["status"].value_counts()
    assert set(trials["status"]) <= {"done", "pruned"}
    assert "pruned" in set(statuses["status"]) and "done" in set(statuses["status"])
    pruned = trials.filter(pl.col("status") == "pruned")
    assert (pruned["step"] < 27).all()  # a trial stopped at max_t ran in full: it is done
    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(outcome.results_dir / STORAGE_FILE))))
    states = {t.state.name for t in study.trials}
    assert states == {"COMPLETE", "PRUNED"}


def test_multi_objective_loss_and_cost(tmp_path):
    outcome = run(tmp_path, budget={"trials": 6, "concurrent": 2},
                  search={"sampler": "nsga2", "metric": ["loss", "cost"], "mode": ["min", "min"]})
    trials = read_trials(outcome.results_dir)
    assert trials.height == 6 and set(trials["status"]) == {"done"}
    study = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(outcome.results_dir / STORAGE_FILE))))
    assert len(study.directions) == 2 and len(study.best_trials) >= 1


def test_grid_search_runs_every_point(tmp_path):
    outcome = run(tmp_path, budget={"concurrent": 2}, search={"algo": "grid", "metric": "loss"},
                  space={"lr": {"type": "log", "low": 1e-3, "high": 1e-1, "points": 3},
                         "n_params": {"type": "choice", "values": [1e6, 1e7]}})
    trials = read_trials(outcome.results_dir)
    assert trials.height == 6
    assert set(zip(trials["cfg.lr"].round(6), trials["cfg.n_params"], strict=True)) == {
        (round(lr, 6), n) for lr in (1e-3, 1e-2, 1e-1) for n in (1e6, 1e7)}


def test_cost_budget_stops_the_study(tmp_path):
    # each trial costs 6 * N * D; N fixed at 1e6 and D at 1e8 -> 6e14 per trial; the cap allows about 3
    outcome = run(tmp_path, params={"steps": 5, "n_params": 1e6, "tokens": 1e8, "sleep_s": 0.05},
                  space={"lr": {"type": "log", "low": 1e-4, "high": 1e-1}},
                  budget={"trials": 40, "concurrent": 1, "max_cost": 1.7e15})
    trials = read_trials(outcome.results_dir)
    assert 2 <= trials.height < 10
    assert outcome.progress.cost_spent >= 1.7e15


def test_same_seed_same_configs(tmp_path):
    configs = []
    for i in range(2):
        outcome = run(tmp_path / str(i), budget={"trials": 5, "concurrent": 1},
                      search={"sampler": "qmc", "metric": "loss"})
        trials = read_trials(outcome.results_dir).sort("time")
        configs.append(trials.select("cfg.lr", "cfg.n_params").rows())
    assert configs[0] == configs[1]


def test_mixture_columns(tmp_path):
    outcome = run(tmp_path, budget={"trials": 3, "concurrent": 2},
                  space={"mix": {"type": "simplex", "domains": ["code", "prose", "math"]}})
    trials = read_trials(outcome.results_dir)
    weights = trials.select("mix.code", "mix.prose", "mix.math").sum_horizontal()
    assert ((weights - 1).abs() < 1e-9).all()


def test_nan_losses_and_hung_trials_are_errors_with_reasons(tmp_path):
    outcome = run(tmp_path, params={"steps": 3, "nan_above_lr": 1e-3, "hang_above_lr": 1e-2},
                  space={"lr": {"type": "choice", "values": [1e-4, 5e-3, 5e-2]}},
                  search={"algo": "grid", "metric": "loss"}, budget={"concurrent": 2, "trial_timeout_s": 3})
    trials = read_trials(outcome.results_dir).sort("cfg.lr")
    assert trials["status"].to_list() == ["done", "error", "error"]
    nan, hung = trials["error"][1], trials["error"][2]
    assert nan.startswith("non-finite or missing objective: loss=nan")
    assert hung.startswith("TrialTimeout") and "trial_timeout_s" in hung


def test_choice_presets_expand_into_the_config(tmp_path):
    sizes = {"s": {"n_params": 1e6, "tokens": 1e8}, "m": {"n_params": 1e7, "tokens": 1e9}}
    outcome = run(tmp_path, params={"steps": 2}, search={"algo": "grid", "metric": "loss"},
                  space={"size": {"type": "choice", "values": ["s", "m"], "presets": sizes},
                         "lr": {"type": "choice", "values": [1e-3]}}, budget={"concurrent": 2})
    trials = read_trials(outcome.results_dir).sort("cfg.size")
    assert trials["cfg.size"].to_list() == ["m", "s"]
    assert trials["cfg.n_params"].to_list() == [1e7, 1e6] and trials["cfg.tokens"].to_list() == [1e9, 1e8]
    assert trials["flops"].to_list() == pytest.approx([6 * 1e7 * 1e9, 6 * 1e6 * 1e8])  # the workload saw them


def test_cost_aware_search_through_the_engine(tmp_path):
    outcome = run(tmp_path, params={"steps": 3},
                  space={"n_params": {"type": "float", "low": 1e6, "high": 1e8, "log": True},
                         "tokens": {"type": "float", "low": 1e8, "high": 1e10, "log": True},
                         "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "center": 3e-3}},
                  search={"algo": "cost_aware", "metric": "loss", "mode": "min", "cost": "flops"},
                  budget={"trials": 10, "concurrent": 2})
    trials = read_trials(outcome.results_dir)
    assert trials.height == 10 and set(trials["status"]) == {"done"}
    assert (outcome.results_dir / "searcher-state.json").exists()
    assert trials["cfg.lr"].n_unique() == 10  # concurrent suggestions differ


def test_cost_aware_reruns_noisy_front_points_with_the_next_seed_through_the_engine(tmp_path):
    outcome = run(tmp_path, params={"steps": 3, "noise": 0.3}, seed=5,
                  space={"n_params": {"type": "float", "low": 1e6, "high": 1e8, "log": True},
                         "tokens": {"type": "float", "low": 1e8, "high": 1e10, "log": True},
                         "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "center": 3e-3}},
                  search={"algo": "cost_aware", "metric": "loss", "mode": "min", "cost": "flops",
                          "options": {"rerun_key": "seed", "rerun_fraction": 0.5, "front_by": "model"}},
                  budget={"trials": 16, "concurrent": 1})
    trials = read_trials(outcome.results_dir)
    assert trials.height == 16 and set(trials["status"]) == {"done"}
    repeated = trials.group_by("cfg.n_params", "cfg.tokens", "cfg.lr").agg(pl.col("seed").sort())
    repeated = repeated.filter(pl.col("seed").list.len() > 1)
    assert repeated.height >= 1, "no front point was run again"
    for seeds in repeated["seed"].to_list():  # the study's seed first, then the next ones
        assert seeds == list(range(5, 5 + len(seeds)))
