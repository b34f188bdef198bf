"""Fault benchmark: run studies, inject faults at random (seeded) points, and count what the Parquet
results hold afterwards.

Faults: a trial that raises, one whose loss is NaN, one that hangs past budget.trial_timeout_s, a Ray
worker process killed mid-trial (retried by max_failures), and the driver killed with SIGKILL or
interrupted with SIGINT mid-study, then resumed. For every study: rows expected (the reports of every
trial attempt that finished, from the synthetic workload's known behaviour), rows found, duplicates, and
whether the study completed (every trial of the budget has a final status).

    python bench/faults.py [--seed 0] [--driver-kills 4] [--worker-kills 3]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402

STEPS = 12


def study(name: str, trials: int, **params) -> dict:
    return {
        "name": name, "workload": "workloads.synthetic:train",
        "params": {"steps": STEPS, "sleep_s": 0.05, **params},
        "space": {"lr": {"type": "log", "low": 1e-4, "high": 1e-1}},
        "search": {"algo": "random", "metric": "loss"},
        "budget": {"trials": trials, "concurrent": 2, "trial_timeout_s": 3},
        "max_failures": 1, "seed": random.randrange(1000),
    }


def expected_reports(row: dict, params: dict) -> int:
    """Reports the synthetic workload makes in one finished attempt, by its fault settings."""
    lr = row["cfg.lr"]
    if params.get("fail_above_lr") is not None and lr > params["fail_above_lr"]:
        return 0
    if params.get("hang_above_lr") is not None and lr > params["hang_above_lr"]:
        return 1
    return STEPS


def audit(results: Path, params: dict, trials: int) -> dict:
    rows = pl.scan_parquet(f"{results}/**/*.parquet").collect()
    summaries = rows.filter(pl.col("row_kind") == "summary")
    final = summaries.filter(pl.col("status").is_in(["done", "error", "pruned"]))
    reports = rows.filter(pl.col("row_kind") == "report")
    expected = found = 0
    for row in final.iter_rows(named=True):
        expected += expected_reports(row, params)
        found += reports.filter((pl.col("trial_id") == row["trial_id"]) & (pl.col("attempt") == row["attempt"])).height
    dups = rows.group_by("trial_id", "attempt", "row_kind", "report_index").len().filter(pl.col("len") > 1).height
    return {"rows_expected": expected, "rows_found": found, "duplicates": dups,
            "completed": final.height == trials and summaries["trial_id"].n_unique() == summaries.height}


def run_cli(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "sweeper.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def in_trial_faults(tmp: Path, env: dict) -> dict:
    # lr 1e-3 runs cleanly; 2e-2 reports NaN; 5e-2 hangs after its first report; 8e-2 raises
    params = {"fail_above_lr": 7e-2, "nan_above_lr": 1e-2, "hang_above_lr": 4e-2}
    data = study("trial-faults", 16, **params)
    data["space"] = {"lr": {"type": "choice", "values": [1e-3, 2e-2, 5e-2, 8e-2]},
                     "seed": {"type": "choice", "values": [0, 1, 2, 3]}}
    data["search"] = {"algo": "grid", "metric": "loss"}
    data["max_failures"] = 0
    path = tmp / "trial.yaml"
    path.write_text(yaml.safe_dump(data))
    results = tmp / "trial-faults"
    proc = run_cli(["run", str(path), "--results", str(results), "--plain"], tmp / "trial.log", env)
    proc.wait()
    trials = pl.scan_parquet(f"{results}/**/*.parquet").filter(pl.col("row_kind") == "summary").collect()
    errors = trials.filter(pl.col("status") == "error")
    kinds = {"raise": errors.filter(pl.col("error").str.starts_with("RuntimeError")).height,
             "nan": errors.filter(pl.col("error").str.starts_with("non-finite")).height,
             "hang": errors.filter(pl.col("error").str.starts_with("TrialTimeout")).height}
    return {"fault": "in trial: " + ", ".join(f"{k} {v}" for k, v in kinds.items()), "injected": sum(kinds.values()),
            **audit(results, params, 16)}


def start_study(tmp: Path, data: dict, env: dict) -> tuple[subprocess.Popen, Path, Path]:
    """Write the study and start `sweeper run` on it; returns the process, its results folder and its log."""
    path = tmp / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    results, log = tmp / data["name"], tmp / f"{data['name']}.log"
    return run_cli(["run", str(path), "--results", str(results), "--plain"], log, env), results, log


def driver_fault(tmp: Path, env: dict, sig: int, label: str, i: int) -> dict:
    proc, results, log = start_study(tmp, study(f"driver-{label}-{i}", 10), env)
    wait_for = random.randint(1, 7)
    deadline = time.time() + 120
    while time.time() < deadline and log.read_text().count(" done ") < wait_for and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(random.uniform(0, 1.0))
    os.killpg(proc.pid, sig)
    proc.wait()
    if sig != signal.SIGKILL:
        time.sleep(1)
    resumed = run_cli(["resume", str(results), "--plain"], log, env)
    resumed.wait()
    return {"fault": f"driver {label} after {wait_for} trials, resume", "injected": 1, **audit(results, {}, 10)}


def worker_fault(tmp: Path, env: dict, i: int) -> dict:
    proc, results, log = start_study(tmp, study(f"worker-{i}", 8), env)
    deadline = time.time() + 120
    while time.time() < deadline and log.read_text().count(" done ") < random.randint(1, 4):
        time.sleep(0.1)
    victims = _trial_workers(proc.pid)
    if victims:
        os.kill(random.choice(victims), signal.SIGKILL)
    proc.wait()
    return {"fault": "Ray worker killed mid-trial", "injected": int(bool(victims)), **audit(results, {}, 8)}


def _trial_workers(driver_pid: int) -> list[int]:
    """Ray worker processes running a trial, among the descendants of our driver's process session."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, sid, args = line.strip().split(None, 2)
        if int(sid) == driver_pid and ("ImplicitFunc" in args or "sweeper_trial" in args):
            pids.append(int(pid))
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--driver-kills", type=int, default=4, help="SIGKILL and SIGINT runs each")
    parser.add_argument("--worker-kills", type=int, default=3)
    args = parser.parse_args()
    random.seed(args.seed)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows.append(in_trial_faults(tmp, env))
        for i in range(args.driver_kills):
            rows.append(driver_fault(tmp, env, signal.SIGKILL, "SIGKILL", i))
            rows.append(driver_fault(tmp, env, signal.SIGINT, "SIGINT", i))
        for i in range(args.worker_kills):
            rows.append(worker_fault(tmp, env, i))
    total = {"fault": "all", "injected": sum(r["injected"] for r in rows),
             "rows_expected": sum(r["rows_expected"] for r in rows), "rows_found": sum(r["rows_found"] for r in rows),
             "duplicates": sum(r["duplicates"] for r in rows), "completed": all(r["completed"] for r in rows)}
    rows.append(total)
    print_table(rows, "faults injected and what the results hold afterwards")
    path = write_results("faults", {"seed": args.seed, "target": "0 lost, 0 duplicated, every study completed",
                                    "runs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
