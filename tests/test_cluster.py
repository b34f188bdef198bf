"""A real multi-node Ray cluster on this machine: a head and a worker node (separate `ray start`
processes with their own ports), a study run with --address, the worker node killed mid-study. The
study must finish on the head node with every row intact."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from sweeper.store import scan_rows
from tests.helpers import study_data, write_study

RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _pids_with(marker: str) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if marker in line]


def _kill_node(node_manager_port: int) -> None:
    """Kill one node's raylet and the processes it started (workers), nothing else."""
    for pid in _pids_with(f"--node_manager_port={node_manager_port}"):
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for child in [pid, *map(int, children.split())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


@pytest.fixture
def two_node_cluster(tmp_path):
    gcs, head_nm, head_om, worker_nm, worker_om = _free_ports(5)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = Path("/tmp") / f"sweeper-ray-{gcs}"  # a short path: Ray's socket names must stay short
    head = [RAY, "start", "--head", f"--port={gcs}", "--num-cpus=1", "--include-dashboard=false",
            f"--node-manager-port={head_nm}", f"--object-manager-port={head_om}", f"--temp-dir={temp}",
            "--min-worker-port=0", "--max-worker-port=0"]
    worker = [RAY, "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=1", f"--node-manager-port={worker_nm}",
              f"--object-manager-port={worker_om}", "--min-worker-port=0", "--max-worker-port=0"]
    try:
        for cmd in (head, worker):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        yield {"address": f"127.0.0.1:{gcs}", "worker_port": worker_nm, "env": env}
    finally:
        for port in (worker_nm, head_nm):
            _kill_node(port)
        for pid in _pids_with(str(temp)):  # every process of both nodes logs under the head's temp dir
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_study_survives_losing_a_worker_node(tmp_path, two_node_cluster):
    data = study_data(name="cluster", params={"steps": 20, "sleep_s": 0.05}, budget={"trials": 8, "concurrent": 2},
                      max_failures=5)  # a retry can still be placed on the dying node before Ray marks it dead
    path = write_study(tmp_path, data)
    results = tmp_path / "results"
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "sweeper.cli", "run", str(path), "--results", str(results), "--plain",
           "--address", two_node_cluster["address"]]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=two_node_cluster["env"])
    deadline = time.time() + 180
    nodes_before: set[str] = set()
    while time.time() < deadline and len(nodes_before) < 2 and proc.poll() is None:
        time.sleep(0.5)
        if (results / "rows").is_dir():
            nodes_before = set(scan_rows(results).collect()["node"].drop_nulls())
    _kill_node(two_node_cluster["worker_port"])
    killed_at = time.time()
    assert proc.wait(timeout=300) == 0, log.read_text()

    rows = scan_rows(results).collect()
    summaries = rows.filter(pl.col("row_kind") == "summary")
    assert summaries.height == 8 and set(summaries["status"]) == {"done"}, log.read_text()
    dups = rows.group_by("trial_id", "attempt", "row_kind", "report_index").len().filter(pl.col("len") > 1)
    assert dups.height == 0
    reports = rows.filter(pl.col("row_kind") == "report").group_by("trial_id", "attempt").agg(
        pl.len(), pl.col("report_index").max().alias("last"))
    assert (reports["len"] == reports["last"] + 1).all()
    assert len(nodes_before) == 2  # trials ran on both nodes before the kill
    after = rows.filter(pl.col("time").dt.epoch("s") > killed_at)
    assert after.height > 0  # the study went on after the kill (at least six of its eight trials were left)
    late = rows.filter(pl.col("time").dt.epoch("s") > killed_at + 5)["node"].drop_nulls().unique()
    assert late.len() <= 1  # ... on the one node left, once the dead node's last reports are in
