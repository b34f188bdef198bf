"""Follow-up phases of a study (RegMix's replicates and validation, a ladder's validation): a grid over named
candidates x seeds, and the size of a run before it trains."""

from __future__ import annotations

from typing import Any

from sweeper.space import ChoiceParam
from sweeper.spec import SchedulerSpec, SearchSpec, Study


def follow_up_study(study: Study, presets: dict[str, dict[str, Any]], seeds: list[int],
                    params: dict[str, Any]) -> Study:
    """A grid over ``candidate`` (each name's params from ``presets``) x ``seed`` with ``params`` fixed; the
    study's own follow-ups (RegMix, laws) are off in it."""
    space = {
        "candidate": ChoiceParam(type="choice", values=list(presets), presets=presets),
        "seed": ChoiceParam(type="choice", values=seeds),
    }
    return study.model_copy(update={
        "params": params,
        "space": space,
        "search": SearchSpec(algo="grid", metric=study.search.metric, mode=study.search.mode),
        "scheduler": SchedulerSpec(type="fifo"),
        "budget": study.budget.model_copy(update={"trials": len(presets) * len(seeds), "max_cost": None}),
        "regmix": None,
        "laws": None,
    })


def run_size(study: Study, config: dict[str, Any], k: float = 6.0) -> dict[str, float]:
    """``n_params``, ``tokens`` and ``flops`` of the run ``config`` describes, before it trains, and ``epochs``
    (how many times it reads its training data) where given: from the workload's ``describe(config)`` when it
    has one, else from the config itself (flops = k N D)."""
    describe = getattr(study.workload_module(), "describe", None)
    source = describe(dict(config)) if callable(describe) else dict(config)
    out = {key: float(source[key]) for key in ("n_params", "tokens", "flops", "epochs")
           if isinstance(source.get(key), (int, float)) and not isinstance(source.get(key), bool)}
    if "flops" not in out and {"n_params", "tokens"} <= set(out):
        out["flops"] = k * out["n_params"] * out["tokens"]
    return out
