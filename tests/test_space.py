"""Parameter types: Optuna sampling, grids, simplex weights, flattening into Parquet columns."""

from __future__ import annotations

import optuna
import pytest

from sweeper.space import ChoiceParam, FloatParam, IntParam, SimplexParam, ask, flatten, grid


def test_ask_samples_every_type_within_bounds():
    space = {
        "lr": FloatParam(type="float", low=1e-4, high=1e-1, log=True),
        "width": IntParam(type="int", low=16, high=256, log=True),
        "act": ChoiceParam(type="choice", values=["relu", "gelu"]),
        "mix": SimplexParam(type="simplex", domains=["code", "prose", "math"]),
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(50):
        config = ask(study.ask(), space)
        assert 1e-4 <= config["lr"] <= 1e-1 and 16 <= config["width"] <= 256
        assert config["act"] in ("relu", "gelu")
        assert set(config["mix"]) == {"code", "prose", "math"}
        assert sum(config["mix"].values()) == pytest.approx(1.0)
        assert min(config["mix"].values()) >= 0


def test_simplex_draws_cover_the_simplex():
    param = SimplexParam(type="simplex", domains=["a", "b", "c"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    firsts = [ask(study.ask(), {"mix": param})["mix"]["a"] for _ in range(400)]
    # Dirichlet(1, 1, 1): the first weight has mean 1/3 and takes small and large values.
    assert sum(firsts) / len(firsts) == pytest.approx(1 / 3, abs=0.05)
    assert min(firsts) < 0.05 and max(firsts) > 0.8


def test_grid_values():
    assert FloatParam(type="log", low=1e-3, high=1e-1, points=3).grid() == pytest.approx([1e-3, 1e-2, 1e-1])
    assert IntParam(type="int", low=1, high=4).grid() == [1, 2, 3, 4]
    assert ChoiceParam(type="choice", values=["a", "b"]).grid() == ["a", "b"]
    with pytest.raises(ValueError, match="simplex"):
        grid({"mix": SimplexParam(type="simplex", domains=["a", "b"])})


def test_flatten_names_columns():
    flat = flatten({"lr": 0.1, "mix": {"code": 0.25, "prose": 0.75}, "opt": {"beta": 0.9}, "dims": [1, 2]})
    assert flat == {"cfg.lr": 0.1, "mix.code": 0.25, "mix.prose": 0.75, "cfg.opt.beta": 0.9, "cfg.dims": "[1, 2]"}
