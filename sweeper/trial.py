"""The adapter that runs a plain ``train(config, report)`` workload as a Ray Tune function trainable.

Each workload report becomes one Tune result: ``step``, ``tokens``, ``flops`` (cumulative), ``wall_s``
(since the trial started), ``cost`` (in the study's unit), ``report_index`` and the metrics as
``m.<name>``. When the workload returns, one last result carries its final metrics and
``sweeper.final``; the driver turns it into the trial's summary row rather than a report row.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ray import tune

from sweeper.plan import FINAL_KEY, RunPlan


class TrialTimeout(Exception):
    """A trial ran past the study's ``budget.trial_timeout_s``."""

    def __init__(self, message: str = "the trial ran past its time limit (budget.trial_timeout_s)"):
        super().__init__(message)


def make_trainable(plan: RunPlan) -> Callable[[dict], None]:
    """A Tune function trainable that calls the plan's workload with the trial's full config.

    With a ``timeout_s``, a watchdog raises ``TrialTimeout`` inside the workload once the time is up (at its
    next Python instruction); a workload stuck in native code past a further grace period takes its
    worker process down with it, which Ray reports as a dead actor.
    """

    def sweeper_trial(config: dict[str, Any]) -> None:
        train = plan.load_workload()
        reporter = _Reporter(plan.cost_unit)
        watchdog = _Watchdog(plan.timeout_s) if plan.timeout_s else None
        try:
            final = train(plan.workload_config(config), reporter)
        except SystemExit as exc:
            raise RuntimeError(f"the workload called sys.exit({exc.code!r}); a workload returns its final "
                               "metrics or raises an exception") from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        reporter.finish(final if isinstance(final, dict) else {})

    return sweeper_trial


class _Watchdog:
    """Raises ``TrialTimeout`` in the thread that created it after ``timeout_s``; exits the process if
    the thread is still busy ``grace_s`` later."""

    def __init__(self, timeout_s: float, grace_s: float = 30.0):
        self._thread_id = threading.get_ident()
        self._done = threading.Event()
        self._timer = threading.Thread(target=self._watch, args=(timeout_s, grace_s), daemon=True)
        self._timer.start()

    def _watch(self, timeout_s: float, grace_s: float) -> None:
        if self._done.wait(timeout_s):
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), ctypes.py_object(TrialTimeout))
        if not self._done.wait(grace_s):
            os._exit(70)

    def cancel(self) -> None:
        self._done.set()


class _Reporter:
    """The ``report`` callable handed to a workload."""

    def __init__(self, cost_unit: str):
        self._node = _node_name()
        self._t0 = time.perf_counter()
        self._cost_unit = cost_unit
        self._index = 0
        self._last: dict[str, Any] = {"step": 0, "tokens": 0, "flops": 0.0}
        self._metrics: dict[str, Any] = {}

    def __call__(self, step: int | None = None, tokens: int | None = None, flops: float | None = None,
                 **metrics: Any) -> None:
        if step is not None:
            self._last["step"] = int(step)
        else:
            self._last["step"] = self._index + 1
        if tokens is not None:
            self._last["tokens"] = int(tokens)
        if flops is not None:
            self._last["flops"] = float(flops)
        result = self._base()
        result["report_index"] = self._index
        result.update(_metric_columns(metrics, "report"))
        self._metrics.update({k: v for k, v in result.items() if k.startswith("m.")})
        self._index += 1
        tune.report(result)

    def finish(self, final: dict[str, Any]) -> None:
        result = self._base()
        result.update(self._metrics)
        result.update(_metric_columns(final, "the returned metrics"))
        result[FINAL_KEY] = True
        tune.report(result)

    def _base(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._t0
        cost = self._last["flops"] if self._cost_unit == "flops" else wall
        return {**self._last, "wall_s": wall, "cost": cost, "node": self._node}


def _node_name() -> str:
    """The Ray node this trial runs on: its IP and the start of its node id (several nodes can share a host)."""
    import ray

    try:
        context = ray.get_runtime_context()
        return f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"
    except Exception:  # noqa: BLE001 - outside Ray (a workload run directly) there is no node
        return "local"


class MetricTypeError(TypeError):
    """A workload reported a metric that is not a number."""


def _metric_columns(metrics: dict[str, Any], where: str) -> dict[str, float | int]:
    """``m.<name>`` columns of reported metrics: numbers (Python, numpy or torch scalars; booleans as
    0/1) are kept, None means not measured this time and is left out, anything else fails the trial."""
    out: dict[str, float | int] = {}
    for name, value in metrics.items():
        number = _number(value)
        if number is not None:
            out[f"m.{name}"] = number
        elif value is not None:
            raise MetricTypeError(f"{where}: metric {name!r} must be a number or None, got "
                                  f"{type(value).__name__} {str(value)[:60]!r}")
    return out


def _number(value: Any) -> float | int | None:
    """The plain Python number a metric value stands for, or None when it is not one."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)
    if callable(item):  # numpy and torch scalars (an array of several values raises)
        try:
            plain = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if isinstance(plain, bool):
            return float(plain)
        return plain if isinstance(plain, (int, float)) else None
    return None
