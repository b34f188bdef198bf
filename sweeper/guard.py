"""Checks made around and while a study runs: a trial's resources against the cluster's nodes, a signal
to stop, and a study that cannot succeed (its metric is never reported)."""

from __future__ import annotations

import time
from typing import Any

from ray import tune

from sweeper.errors import UserError
from sweeper.interrupt import StopSignals
from sweeper.progress import StudyProgress


def _alive_nodes() -> list[dict[str, float]]:
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def resources_shortfall(cpu: float, gpu: float, nodes: list[dict[str, float]] | None = None) -> str | None:
    """Why no single node can run a trial asking for ``cpu`` and ``gpu`` (None when one can)."""
    nodes = _alive_nodes() if nodes is None else nodes
    need = {"CPU": cpu, "GPU": gpu}
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return None
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    return (f"a trial asks for cpu={cpu:g}, gpu={gpu:g} but no node has that much "
            f"(the largest has cpu={largest.get('CPU', 0.0):g}, gpu={largest.get('GPU', 0.0):g}; "
            f"{len(nodes)} node(s) alive)")


def check_resources(cpu: float, gpu: float, source: str) -> None:
    """Refuse, before any trial starts, a request that no node of the cluster can give."""
    why = resources_shortfall(cpu, gpu)
    if why is not None:
        raise UserError(f"{source}: resources: {why}; lower resources.cpu / resources.gpu, "
                        "or join a larger cluster with --address")


class RunGuard(tune.Callback):
    """Runs at every step of the Tune loop (a safe point): raises a pending signal, stops a study whose
    metric the workload never reports, and shows in the live view when the cluster shrank below what a
    trial needs (instead of waiting silently)."""

    def __init__(self, signals: StopSignals, progress: StudyProgress, cpu: float, gpu: float,
                 recorder: Any, check_every_s: float = 5.0):
        self.signals = signals
        self.progress = progress
        self.need = (cpu, gpu)
        self.recorder = recorder
        self.check_every_s = check_every_s
        self._last_check = time.monotonic()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self.signals.check()
        problem = getattr(self.recorder, "fatal", None)
        if problem:
            raise UserError(problem)
        now = time.monotonic()
        if now - self._last_check >= self.check_every_s:
            self._last_check = now
            waiting = any(getattr(t, "status", "") == "PENDING" for t in trials)
            why = resources_shortfall(*self.need) if waiting else None
            self.progress.warning = f"waiting: {why}; the cluster shrank" if why else None
