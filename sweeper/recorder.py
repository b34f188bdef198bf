"""The driver-side ``tune.Callback`` that records every report: progress for the live view, rows for Parquet."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Any

from ray import cloudpickle, tune

from sweeper.plan import FINAL_KEY, RunPlan
from sweeper.progress import StudyProgress, TrialRecord
from sweeper.spec import is_finite_number
from sweeper.store import ResultStore

_COPIED = ("step", "tokens", "flops", "wall_s", "cost", "report_index")


class Recorder(tune.Callback):
    """Turns Tune events into ``StudyProgress`` updates and Parquet rows (flushed every ``flush_s``)."""

    def __init__(self, progress: StudyProgress, store: ResultStore, plan: RunPlan, flush_s: float = 2.0,
                 syncs: list[Callable[[], None]] | None = None):
        self.progress = progress
        self.plan = plan
        self._last: dict[str, dict[str, Any]] = {}
        self.objectives = plan.objective_keys  # result keys that must be finite for a trial to count as done
        self.syncs = list(syncs or [])
        self.store = store
        self.flush_s = flush_s
        self._last_flush = time.monotonic()
        self._flat: dict[str, dict[str, Any]] = {}
        self._reported: set[str] = set()  # every result key some trial has reported
        self.fatal: str | None = None  # set when the study cannot succeed; the run guard stops it

    # -- Tune events -------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self.progress.trials.get(trial.trial_id)
        if record is None:
            self.progress.trials[trial.trial_id] = TrialRecord(trial.trial_id, dict(trial.config))
            self._flat[trial.trial_id] = self.plan.columns(trial.config)
        else:  # restarted after a failure
            record.status, record.finished = "running", False

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        record = self._record(trial)
        record.attempt = trial.num_failures
        for key in ("flops", "wall_s", "cost"):
            setattr(record, key, float(result.get(key) or 0.0))
        record.step, record.tokens, record.node = result.get("step"), result.get("tokens"), result.get("node")
        record.metrics.update({k: v for k, v in result.items() if k.startswith("m.")})
        self._reported.update(k for k in result if k.startswith("m."))
        self._last[trial.trial_id] = result
        if result.get(FINAL_KEY):
            record.finished = True
            return
        record.reports += 1
        row = self._row(trial, result, "report", "running", trial.num_failures)
        self.store.append(row)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.error = _error_text(trial)
        record.metrics.clear()
        self.flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.finished = record.finished or self.plan.finished_run(self._last.pop(trial.trial_id, None))
        record.status = "done" if record.finished else "pruned"
        record.error = None  # an earlier attempt's failure; that attempt's rows keep their own number
        bad = [k for k in self.objectives if not is_finite_number(record.value(k))]
        if record.finished and bad:
            record.status = "error"
            record.error = "non-finite or missing objective: " + ", ".join(
                f"{k[2:] if k.startswith('m.') else k}={record.value(k)}" for k in bad)
            self._check_never_reported(bad)
        record.attempt = trial.num_failures
        self._summary(trial, record)

    def _check_never_reported(self, bad: list[str]) -> None:
        """A trial ran to the end and no trial ever reported an objective: the study cannot succeed."""
        never = [k for k in bad if k.startswith("m.") and k not in self._reported]
        if never and self.fatal is None:
            seen = sorted(k[2:] for k in self._reported) or ["nothing"]
            names = ", ".join(repr(k[2:]) for k in never)
            self.fatal = (f"search.metric: the workload never reported {names} (a finished trial reported: "
                          f"{', '.join(seen)}); fix the metric name in the study, or the workload's report() calls")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record(trial)
        record.status = "error"
        record.error = _error_text(trial)
        record.attempt = max(trial.num_failures - 1, 0)  # Tune counted this failure already
        self._summary(trial, record)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush(sync=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.flush(sync=True)

    # -- helpers -----------------------------------------------------------------------------------
    def flush(self, sync: bool = False) -> None:
        """Write pending rows; with ``sync``, also make them (and the searcher's state) durable."""
        self.store.flush()
        if sync:
            self.store.sync()
            for fn in self.syncs:
                fn()
            self._last_flush = time.monotonic()

    def _record(self, trial: Any) -> TrialRecord:
        if trial.trial_id not in self.progress.trials:
            self.on_trial_start(0, [], trial)
        return self.progress.trials[trial.trial_id]

    def _summary(self, trial: Any, record: TrialRecord) -> None:
        row = {
            "step": record.step, "tokens": record.tokens, "flops": record.flops, "wall_s": record.wall_s,
            "cost": record.cost, "report_index": record.reports, "node": record.node, **record.metrics,
        }
        self.store.append(self._row(trial, row, "summary", record.status, record.attempt, error=record.error))
        self.flush()

    def _row(self, trial: Any, result: dict, kind: str, status: str, attempt: int,
             error: str | None = None) -> dict:
        row = {k: result.get(k) for k in _COPIED}
        row.update({k: v for k, v in result.items() if k.startswith("m.")})
        row.update(
            trial_id=trial.trial_id,
            row_kind=kind,
            status=status,
            attempt=attempt,
            seed=self.plan.trial_seed(trial.config),
            node=result.get("node") or result.get("node_ip") or result.get("hostname"),
            time=dt.datetime.now(dt.timezone.utc),
            error=error,
        )
        row.update(self._flat.get(trial.trial_id, {}))
        return row


def _error_text(trial: Any) -> str:
    """A one-line reason for a trial's failure: the workload's own exception, not Ray's wrapping.

    Tune writes the error next to the trial on the driver before it calls the callbacks; read it there.
    """
    exc = None
    path = getattr(trial, "pickled_error_file", None)
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as fh:
                exc = cloudpickle.load(fh)
        except Exception:  # noqa: BLE001 - an unreadable error file must not stop the study
            exc = None
    if exc is not None:
        cause = getattr(exc, "cause", None) or exc
        return f"{type(cause).__name__}: {cause}".strip()[:2000]
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path) as fh:
            lines = [line for line in fh.read().strip().splitlines() if line.strip()]
        if lines:
            return lines[-1][:2000]
    return "error (no message)"

