"""The censoring convention of the search benchmark (bench/search.py), whose ratios the README quotes: a run that
never reached the reference hypervolume counts against its method, never for it."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest

import bench.common
import bench.search
from bench.search import (
    PROBLEMS,
    compare,
    cost_ratio,
    cost_to_hypervolume,
    median_cost,
    ratio_columns,
    ratio_interval,
    saved_runs,
)

BUDGET = 10.0
INF = math.inf


def test_the_median_counts_never_reached_as_worst_and_is_censored_when_half_never_got_there():
    assert median_cost([1.0, 2.0, 3.0]) == 2.0
    assert median_cost([1.0, 2.0, 3.0, INF]) == 3.0  # the higher middle of an even count
    assert median_cost([1.0, 2.0, INF, INF]) == INF
    assert median_cost([INF, INF, INF]) == INF


def test_a_censored_base_makes_the_ratio_an_upper_bound_and_a_censored_method_an_infinite_one():
    assert cost_ratio(2.0, 4.0, BUDGET) == 0.5
    assert cost_ratio(2.0, INF, BUDGET) == 0.2  # the base counted as reaching it at the budget
    assert cost_ratio(INF, 4.0, BUDGET) == INF
    assert cost_ratio(INF, INF, BUDGET) == INF  # both censored: no credit for the method
    assert list(cost_ratio(np.array([2.0, INF]), np.array([INF, 1.0]), BUDGET)) == [0.2, INF]


def test_the_columns_mark_a_bound_and_the_interval_keeps_infinite_resamples():
    to_target = {"random": [INF, INF, INF, 8.0], "tpe": [4.0, 4.0, 4.0, 4.0], "cost_aware": [2.0, 2.0, 2.0, 2.0],
                 "never": [INF, INF, INF, INF]}
    rng = np.random.default_rng(0)
    cols = ratio_columns(to_target, "cost_aware", BUDGET, rng)
    assert cols["x_random"] == "<=0.20" and cols["x_tpe"] == 0.5
    assert cols["x_tpe 90%"] == "[0.50, 0.50]"
    never = ratio_columns(to_target, "never", BUDGET, rng)
    assert never["x_tpe"] == INF and never["x_tpe 90%"] == "[inf, inf]"
    # a method that reached the reference in half its seeds: some resampled medians never did
    lo, hi = ratio_interval([1.0, 1.0, INF, INF], [4.0, 4.0, 4.0, 4.0], BUDGET, np.random.default_rng(0))
    assert lo == pytest.approx(0.25) and hi == INF


def test_the_cost_to_the_reference_is_what_was_spent_when_the_front_first_reached_it():
    costs, metrics = np.array([1.0, 2.0, 4.0]), np.array([3.0, 2.0, 1.0])
    reference = (10.0, 4.0)  # hypervolume of the front in (log10 cost, metric) below this corner
    from sweeper.maths.pareto import hypervolume

    after = [hypervolume(costs[: k + 1], metrics[: k + 1], reference) for k in range(3)]
    assert cost_to_hypervolume(costs, metrics, reference, after[1]) == 3.0
    assert cost_to_hypervolume(costs, metrics, reference, after[2] + 1.0) == INF


def test_extending_saved_runs_runs_only_the_new_seeds_and_equals_running_them_all():
    problem = replace(PROBLEMS["synthetic"], budget=3e18)  # a few trials per run
    methods = ("random", "tpe")

    def without_timing(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "run_s"} for r in rows]

    two = compare(problem, 2, jobs=1, methods=methods)
    extended = compare(problem, 3, jobs=1, methods=methods, earlier=saved_runs(two, methods, problem.budget))
    fresh = compare(problem, 3, jobs=1, methods=methods)
    assert extended["trials_by_seed"] == fresh["trials_by_seed"]
    assert without_timing(extended["rows"]) == without_timing(fresh["rows"])
    # the saved seeds are taken as they are, not run again
    doctored = saved_runs(two, methods, problem.budget)
    doctored["tpe"][0] = (doctored["tpe"][0][0], doctored["tpe"][0][1] + 1.0)
    again = compare(problem, 3, jobs=1, methods=methods, earlier=doctored)
    assert again["trials_by_seed"]["tpe"][0]["metric"] == list(doctored["tpe"][0][1])
    assert again["trials_by_seed"]["tpe"][2] == fresh["trials_by_seed"]["tpe"][2]
    with pytest.raises(SystemExit, match="budget"):
        saved_runs(two, methods, 1e19)
    with pytest.raises(SystemExit, match="no runs of cost_aware"):
        saved_runs(two, ("random", "cost_aware"), problem.budget)


def test_extend_refuses_a_missing_file_or_concurrency_before_running_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.search, "RESULTS", tmp_path)
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    ran: list[int] = []
    monkeypatch.setattr(bench.search, "compare", lambda *args, **kwargs: ran.append(1) or {})

    def main(*argv: str) -> None:
        monkeypatch.setattr(sys, "argv", ["search.py", "--problem", "synthetic", *argv])
        bench.search.main()

    with pytest.raises(SystemExit, match="does not exist; run without --extend first"):
        main("--extend", "--seeds", "3")
    with pytest.raises(SystemExit, match="does not exist; run without --rescore first"):
        main("--rescore")
    problem = replace(PROBLEMS["synthetic"], budget=3e18)
    saved = compare(problem, 2, jobs=1, methods=("random", "tpe"))
    (tmp_path / "search.json").write_text(json.dumps(
        {"when": "then", "problems": {"synthetic": {"concurrent=1": saved}}}, default=str))
    with pytest.raises(SystemExit, match="has no concurrent=3 to extend"):
        main("--extend", "--seeds", "3", "--concurrent", "1", "3")
    with pytest.raises(SystemExit, match="budget"):  # the saved runs were made at another budget
        main("--extend", "--seeds", "3", "--concurrent", "1", "--methods", "random", "tpe")
    assert ran == []  # every check came before any run


def test_rerun_runs_a_method_afresh_on_every_seed_and_keeps_the_saved_runs_of_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.search, "RESULTS", tmp_path)
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path)
    problem = replace(PROBLEMS["synthetic"], budget=3e18)
    saved = compare(problem, 2, jobs=1, methods=("random", "tpe"))
    fresh_tpe = saved["trials_by_seed"]["tpe"]
    doctored = json.loads(json.dumps(saved, default=str))
    for method in ("random", "tpe"):  # marks that a rerun would not keep
        doctored["trials_by_seed"][method][0]["metric"] = [m + 1.0 for m in fresh_tpe[0]["metric"]]
    (tmp_path / "search.json").write_text(json.dumps(
        {"when": "then", "problems": {"synthetic": {"concurrent=1": doctored}}}, default=str))

    def main(*argv: str) -> None:
        monkeypatch.setattr(sys, "argv", ["search.py", "--problem", "synthetic", "--budget", "3e18", "--jobs", "1",
                                          "--methods", "random", "tpe", *argv])
        bench.search.main()

    with pytest.raises(SystemExit, match="only with --extend"):
        main("--seeds", "2", "--rerun", "tpe")
    main("--extend", "--seeds", "2", "--rerun", "tpe")
    result = json.loads((tmp_path / "search.json").read_text())["problems"]["synthetic"]["concurrent=1"]
    assert result["trials_by_seed"]["random"] == doctored["trials_by_seed"]["random"]  # kept as saved
    assert result["trials_by_seed"]["tpe"] == fresh_tpe  # run again, so the mark is gone
    assert result["rerun"].startswith("tpe: every seed run afresh")
