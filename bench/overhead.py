"""Orchestration overhead per trial: N trivial trials through sweeper (Ray Tune + Optuna + Parquet rows +
the live view) against the same N trials in a plain Optuna loop. Ray's start-up is excluded.

    python bench/overhead.py [--trials 200] [--concurrent 2]
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

import sweeper  # noqa: E402,F401
from bench.common import print_table, write_results  # noqa: E402
from sweeper.engine import run_study  # noqa: E402
from sweeper.spec import parse_study  # noqa: E402
from sweeper.store import scan_rows  # noqa: E402
from workloads.synthetic import train  # noqa: E402

PARAMS = {"steps": 1, "noise": 0.0, "n_params": 1e7, "tokens": 1e9}


def plain_optuna(n: int) -> float:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        return train({**PARAMS, "lr": lr}, lambda **_: None)["loss"]

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    return time.perf_counter() - t0


def through_sweeper(n: int, concurrent: int, rich: bool) -> tuple[float, int]:
    study = parse_study({
        "name": "overhead", "workload": "workloads.synthetic:train", "params": PARAMS,
        "space": {"lr": {"type": "log", "low": 1e-4, "high": 1e-1}},
        "search": {"algo": "optuna", "sampler": "tpe", "metric": "loss", "mode": "min"},
        "budget": {"trials": n, "concurrent": concurrent},
    })
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        outcome = run_study(study, Path(tmp) / "overhead", stream=io.StringIO(), rich=rich)
        wall = time.perf_counter() - t0
        rows = scan_rows(outcome.results_dir).collect().height
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray_start = time.perf_counter() - t0
    through_sweeper(5, args.concurrent, rich=False)  # warm-up: worker processes, imports

    optuna_wall = plain_optuna(args.trials)
    rows = []
    for rich in (False, True):
        wall, n_rows = through_sweeper(args.trials, args.concurrent, rich)
        rows.append({
            "view": "rich" if rich else "plain",
            "trials": args.trials,
            "concurrent": args.concurrent,
            "sweeper_s": wall,
            "optuna_loop_s": optuna_wall,
            "overhead_per_trial_s": (wall - optuna_wall) / args.trials,
            "parquet_rows": n_rows,
        })
    ray.shutdown()
    print_table(rows, f"orchestration overhead (Ray start-up {ray_start:.1f} s excluded)")
    path = write_results("overhead", {"ray_startup_s": ray_start, "target_per_trial_s": 0.1, "runs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
