"""The run plan (one place for a trial's config, columns, objectives and completion rule) and the
trainable's metric rule, without Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweeper.plan import FINAL_KEY, RunPlan
from sweeper.spec import parse_study
from sweeper.trial import MetricTypeError, _metric_columns
from tests.helpers import study_data


def _plan(**overrides) -> RunPlan:
    return RunPlan.from_study(parse_study(study_data(**overrides)))


def test_presets_expand_for_the_workload_and_stay_named_in_the_columns():
    plan = _plan(space={"size": {"type": "choice", "values": ["s", "m"],
                                 "presets": {"s": {"n_params": 1e6}, "m": {"n_params": 1e7}}},
                        "mix": {"type": "simplex", "domains": ["a", "b"]}})
    config = {"size": "m", "mix": {"a": 0.25, "b": 0.75}}
    assert plan.workload_config(config) == {"steps": 10, "noise": 0.01, "n_params": 1e7, "mix": config["mix"],
                                            "seed": 0}
    assert plan.columns(config) == {"cfg.steps": 10, "cfg.noise": 0.01, "cfg.size": "m", "cfg.n_params": 1e7,
                                    "mix.a": 0.25, "mix.b": 0.75}


def test_the_seed_is_the_study_s_unless_the_space_samples_one():
    plan = _plan(seed=7)
    assert plan.workload_config({"lr": 0.01})["seed"] == 7 and plan.trial_seed({"lr": 0.01}) == 7
    assert plan.workload_config({"seed": 3})["seed"] == 3 and plan.trial_seed({"seed": 3}) == 3
    assert "cfg.seed" not in plan.columns({"seed": 3})


def test_objectives_and_the_completion_rule():
    plan = _plan(search={"metric": ["loss", "cost"], "mode": ["min", "min"]},
                 scheduler={"type": "asha", "max_t": 9, "time_attr": "step"})
    assert plan.objective_keys == ["m.loss", "cost"] and plan.primary.mode == "min"
    assert plan.finished_run({FINAL_KEY: True}) and plan.finished_run({"step": 9})
    assert not plan.finished_run({"step": 8}) and not plan.finished_run(None)
    assert not _plan().finished_run({"step": 10**9})  # without a scheduler only the workload's return counts


def test_metrics_are_numbers_or_missing():
    cols = _metric_columns({"a": 1, "b": np.float32(0.5), "c": torch.tensor(2.0), "d": True, "e": None}, "report")
    assert cols == {"m.a": 1, "m.b": 0.5, "m.c": 2.0, "m.d": 1.0}
    for bad in ("high", [1.0], {"x": 1}, np.ones(3), torch.ones(2)):
        with pytest.raises(MetricTypeError, match="metric 'x' must be a number or None"):
            _metric_columns({"x": bad}, "report")
