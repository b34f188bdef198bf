"""The shipped DataDecide study: a recipe x size x seed grid of tinylm trials with honest sizes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

STUDY = Path(__file__).resolve().parents[1] / "studies" / "datadecide.yaml"


@pytest.fixture(scope="module")
def study() -> dict:
    return yaml.safe_load(STUDY.read_text())


def test_the_grid_is_recipes_by_sizes_by_seeds(study):
    space = study["space"]
    assert study["workload"] == "workloads.tinylm:train" and study["search"]["algo"] == "grid"
    assert len(space["recipe"]["values"]) >= 6
    assert len(space["seed"]["values"]) >= 3
    decide = study["decide"]
    sizes = space["size"]["values"]
    assert decide["target_size"] in sizes and sizes[-1] == decide["target_size"]
    assert len(sizes) - 1 >= 3  # proxy sizes
    assert study["search"]["metric"] == decide["metrics"][0]


def test_every_trial_config_is_valid_for_the_workload(study):
    from workloads.tinylm.config import resolve

    space = study["space"]
    for recipe, size in itertools.product(space["recipe"]["values"], space["size"]["values"]):
        config = {**study["params"], **space["recipe"]["presets"][recipe], **space["size"]["presets"][size], "seed": 0}
        cfg = resolve(config)
        assert abs(sum(cfg.mix.values()) - 1.0) < 1e-9


def test_tokens_are_a_fixed_ratio_of_parameters(study):
    from workloads.tinylm import describe

    ratio = study["decide"]["tokens_per_param"]
    sizes = study["space"]["size"]
    compute = []
    for size in sizes["values"]:
        info = describe({**study["params"], **sizes["presets"][size]})
        assert sizes["presets"][size]["tokens"] == pytest.approx(ratio * info["n_params"], rel=1e-3)
        # the run trains whole steps: what it sees is within one step of the budget
        assert info["tokens"] / info["n_params"] == pytest.approx(ratio, rel=0.02)
        # about four checkpoints per run (reports every eval_every steps and at the last step)
        assert 4 <= -(-info["steps"] // sizes["presets"][size]["eval_every"]) <= 5
        compute.append(info["flops"])
    assert compute == sorted(compute) and compute[-1] > 4 * compute[-2]


def test_the_study_file_validates_once_the_schema_knows_decide(study):
    from sweeper.spec import Study, parse_study

    if "decide" not in Study.model_fields:
        pytest.skip("the study schema has no decide: block yet")
    parsed = parse_study(study, str(STUDY))
    assert parsed.space["seed"].values == study["space"]["seed"]["values"]
