"""Driver-side bookkeeping of a running study: trials, their status, best so far, cost and ETA.

Plain Python, no Ray: the recorder callback updates it, the live view and the budget stopper read it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sweeper.spec import BUILTIN_METRICS, is_finite_number, result_key

STATUSES = ("running", "done", "error", "pruned")


@dataclass
class TrialRecord:
    """What the driver knows about one trial."""

    trial_id: str
    config: dict[str, Any]
    status: str = "running"
    attempt: int = 0
    reports: int = 0
    step: int | None = None
    tokens: int | None = None
    flops: float = 0.0
    wall_s: float = 0.0
    cost: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    node: str | None = None
    finished: bool = False
    started: float = field(default_factory=time.time)

    def value(self, key: str) -> Any:
        """A result column's latest value: a built-in column (``cost``, ``flops``, ``wall_s``, ``tokens``)
        or a workload metric (``m.<name>``); None when the trial has not reported it."""
        if key in BUILTIN_METRICS:
            return getattr(self, key)
        return self.metrics.get(key)


@dataclass
class StudyProgress:
    """The state of a study, as seen from the driver."""

    name: str
    metric: str
    mode: str
    total_trials: int
    max_cost: float | None = None
    cost_unit: str = "flops"
    trials: dict[str, TrialRecord] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished_before: int = 0  # trials finished by earlier runs of a resumed study
    warning: str | None = None  # a condition the user should see now (e.g. no node can fit a trial)

    def add_finished(self, summaries: Any) -> None:
        """Seed the progress with trials finished by earlier runs (a Polars frame of summary rows)."""
        for row in summaries.iter_rows(named=True):
            config = {k[4:]: v for k, v in row.items() if k.startswith("cfg.") and v is not None}
            mix = {k[4:]: v for k, v in row.items() if k.startswith("mix.") and v is not None}
            if mix:
                config["mix"] = mix
            self.trials[row["trial_id"]] = TrialRecord(
                trial_id=row["trial_id"], config=config, status=row["status"], attempt=row["attempt"] or 0,
                reports=row["report_index"] or 0, step=row["step"], tokens=row["tokens"],
                flops=row["flops"] or 0.0, wall_s=row["wall_s"] or 0.0, cost=row["cost"] or 0.0,
                metrics={k: v for k, v in row.items() if k.startswith("m.") and v is not None},
                error=row["error"], finished=row["status"] == "done",
            )
        self.finished_before = self.finished

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for t in self.trials.values():
            out[t.status] = out.get(t.status, 0) + 1
        return out

    @property
    def finished(self) -> int:
        return sum(t.status not in ("running", "interrupted") for t in self.trials.values())

    @property
    def cost_spent(self) -> float:
        return sum(t.cost for t in self.trials.values())

    @property
    def flops_spent(self) -> float:
        return sum(t.flops for t in self.trials.values())

    @property
    def wall_spent(self) -> float:
        return sum(t.wall_s for t in self.trials.values())

    @property
    def elapsed(self) -> float:
        return time.time() - self.started

    def best(self) -> TrialRecord | None:
        """The finished trial with the best value of the study's (first) metric."""
        sign = 1.0 if self.mode == "min" else -1.0
        key = result_key(self.metric)
        scored = [
            (sign * float(t.value(key)), t)
            for t in self.trials.values()
            if t.status in ("done", "pruned") and is_finite_number(t.value(key))
        ]
        return min(scored, key=lambda s: s[0])[1] if scored else None

    def best_value(self) -> float | None:
        best = self.best()
        if best is None:
            return None
        return float(best.value(result_key(self.metric)))

    def eta_s(self) -> float | None:
        """Seconds left: by finished trials per second, or by cost spent when a cost cap ends it sooner."""
        done = self.finished
        done_now = done - self.finished_before
        estimates = []
        if self.total_trials <= done:
            estimates.append(0.0)
        elif done_now > 0:
            estimates.append(self.elapsed / done_now * (self.total_trials - done))
        if self.max_cost and self.cost_spent > 0:
            estimates.append(max(0.0, self.elapsed / self.cost_spent * (self.max_cost - self.cost_spent)))
        return min(estimates) if estimates else None

