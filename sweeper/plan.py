"""The run plan: what running and recording a study's trials needs, derived once from the validated
``Study`` and handed to the trainable (on the workers), the recorder and the searchers (on the driver).

It holds the rules that used to be rebuilt in several places: a trial's config (the study's params, the
sampled values, the presets they stand for, the seed), its Parquet columns, the objectives and their
result columns, and when a trial counts as a whole run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sweeper.space import expand_presets, flatten, presets_of
from sweeper.spec import Study, result_key

FINAL_KEY = "sweeper.final"  # set in the last result of a trial whose workload returned


@dataclass(frozen=True)
class Objective:
    """A metric the study optimises: its name in the study, its direction and its result column."""

    metric: str
    mode: str

    @property
    def key(self) -> str:
        return result_key(self.metric)


@dataclass(frozen=True)
class RunPlan:
    """Plain data (it travels to Ray workers inside the trainable)."""

    workload: str  # "package.module:function"
    params: dict[str, Any]
    seed: int
    mixture_key: str
    objectives: tuple[Objective, ...]
    cost_unit: str = "flops"
    timeout_s: float | None = None
    complete_at: tuple[str, float] | None = None  # (time_attr, max_t) of an early-stopping scheduler
    presets: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_study(cls, study: Study) -> RunPlan:
        scheduler = study.scheduler
        return cls(
            workload=study.workload, params=dict(study.params), seed=study.seed, mixture_key=study.mixture_key,
            objectives=tuple(Objective(m, d) for m, d in zip(study.search.metrics, study.search.modes, strict=True)),
            cost_unit=study.budget.cost, timeout_s=study.budget.trial_timeout_s,
            complete_at=None if scheduler.type == "fifo" else (scheduler.time_attr, float(scheduler.max_t)),
            presets=presets_of(study.space),
        )

    @property
    def primary(self) -> Objective:
        """The first objective: schedulers and single-metric searchers use it."""
        return self.objectives[0]

    @property
    def objective_keys(self) -> list[str]:
        return [o.key for o in self.objectives]

    # -- the workload ----------------------------------------------------------------------------------
    @property
    def workload_module(self) -> str:
        return self.workload.split(":")[0]

    def load_workload(self) -> Callable[..., Any]:
        module, function = self.workload.split(":")
        return getattr(importlib.import_module(module), function)

    # -- a trial's config --------------------------------------------------------------------------------
    def workload_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """What the workload gets: params, then the sampled values with each preset's keys in place of
        its name, and the seed (the study's unless the space samples one)."""
        full = expand_presets({**self.params, **config}, self.presets, keep_names=False)
        full.setdefault("seed", self.seed)
        return full

    def columns(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trial's config as Parquet columns (``cfg.<name>``, ``mix.<domain>``): params, sampled values,
        preset names and their keys; the seed has its own column."""
        full = expand_presets({**self.params, **config}, self.presets)
        full.pop("seed", None)
        return flatten(full, self.mixture_key)

    def trial_seed(self, config: dict[str, Any]) -> int:
        return int(config.get("seed", self.seed))

    # -- completion ------------------------------------------------------------------------------------
    def finished_run(self, result: dict[str, Any] | None) -> bool:
        """Whether a trial's last result ends a whole run: the workload returned, or the scheduler stopped
        it at its last milestone (a full run, not an early stop)."""
        if not result:
            return False
        if result.get(FINAL_KEY):
            return True
        if self.complete_at is not None:
            value = result.get(self.complete_at[0])
            return isinstance(value, (int, float)) and value >= self.complete_at[1]
        return False


def mixture_prior(study: Study) -> dict[str, float]:
    """The centre of Dirichlet sampling: the simplex parameter's ``prior``, else the workload's
    ``token_shares(domains)`` (each domain's share of the available tokens) when it has one, else uniform."""
    name = study.mixture_key
    param = study.space[name]
    if param.prior is not None:
        return dict(param.prior)
    shares = getattr(study.workload_module(), "token_shares", None)
    if callable(shares):
        return {d: float(w) for d, w in shares(list(param.domains)).items()}
    return {d: 1.0 / len(param.domains) for d in param.domains}
