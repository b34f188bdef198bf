"""Hyperparameter scaling laws along the (cost, metric) front, and `sweeper fit hparams`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import polars as pl
import pytest

from sweeper.commands import fit_hparams
from sweeper.errors import UserError
from sweeper.laws.hparams import fit_hparam_laws, fit_power_law, front_trials

ALPHA, BETA = 0.34, 0.28


def analytic_trials(n: int = 4000, seed: int = 0) -> pl.DataFrame:
    """Trials of Chinchilla's law plus a learning-rate penalty whose optimum is lr*(N) ~ N^-0.25.

    Along the compute-optimal front N ~ C^(beta/(alpha+beta)), D ~ C^(alpha/(alpha+beta)) and so
    lr* ~ C^(-0.25 beta/(alpha+beta)).
    """
    rng = np.random.default_rng(seed)
    n_params = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
    tokens = np.exp(rng.uniform(np.log(1e7), np.log(1e12), n))
    lr = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n))
    lr_star = 3e-3 * (n_params / 1e8) ** -0.25
    loss = 1.69 + 406.4 / n_params**ALPHA + 410.7 / tokens**BETA + 0.05 * np.log(lr / lr_star) ** 2
    return pl.DataFrame(
        {
            "trial_id": [f"t{i:05d}" for i in range(n)],
            "row_kind": "summary",
            "status": ["error" if i % 50 == 0 else "done" for i in range(n)],
            "attempt": 0,
            "cost": 6 * n_params * tokens,
            "m.loss": loss,
            "cfg.n_params": n_params,
            "cfg.tokens": tokens,
            "cfg.lr": lr,
            "cfg.seed": 0,
            "cfg.optimizer": "adamw",
        }
    )


def test_power_laws_along_the_front_recover_chinchilla_allocation_and_the_lr_law():
    trials = analytic_trials()
    laws = {law.name: law for law in fit_hparam_laws(trials, metric="loss")}
    assert set(laws) == {"n_params", "tokens", "lr"}  # seed is not a hyperparameter, optimizer not numeric
    a = BETA / (ALPHA + BETA)
    expected = {"n_params": a, "tokens": 1 - a, "lr": -0.25 * a}
    for name, exponent in expected.items():
        lo, hi = laws[name].exponent_ci
        assert lo < exponent < hi, (name, laws[name])
        assert abs(laws[name].exponent - exponent) < 0.02
    # The allocations multiply back to the cost: (6 N D) / C = 1 along the front.
    c = np.geomspace(1e16, 1e21, 5)
    assert np.allclose(6 * laws["n_params"].predict(c) * laws["tokens"].predict(c) / c, 1.0, rtol=0.25)


def test_front_ignores_unfinished_trials_and_respects_mode():
    trials = analytic_trials(400)
    front = front_trials(trials)
    assert (front["status"] == "done").all()
    assert np.all(np.diff(front["cost"].to_numpy()) > 0) and np.all(np.diff(front["m.loss"].to_numpy()) < 0)
    negated = trials.with_columns(-pl.col("m.loss"))
    assert front_trials(negated, mode="max")["trial_id"].to_list() == front["trial_id"].to_list()


def test_bad_requests_are_user_errors():
    trials = analytic_trials(200)
    with pytest.raises(UserError, match="--metric: m.acc"):
        fit_hparam_laws(trials, metric="m.acc")
    with pytest.raises(UserError, match="params: optimizer: cannot be fitted: not numeric"):
        fit_hparam_laws(trials, params=["optimizer"])
    with pytest.raises(UserError, match="params: width: no column"):
        fit_hparam_laws(trials, params=["width"])
    with pytest.raises(UserError, match="at least 3"):
        fit_power_law("lr", np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def write_study(tmp_path, trials: pl.DataFrame):
    study = tmp_path / "study"
    (study / "rows").mkdir(parents=True)
    trials.with_columns(pl.lit("search").alias("phase")).write_parquet(
        study / "rows" / "part-00000001-00000001.parquet"
    )
    return study


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    fit_hparams.configure(parser)
    return fit_hparams.run(parser.parse_args(list(argv)))


def test_cli_writes_front_csv_figures_and_laws_outside_the_rows(tmp_path, capsys):
    study = write_study(tmp_path, analytic_trials(1500))
    assert run_cli(str(study), "--metric", "m.loss", "--cost", "cost", "--params", "n_params", "lr") == 0
    out = capsys.readouterr().out
    assert "n_params" in out and "skipped tokens" not in out
    document = json.loads((study / "analysis" / "hparams.json").read_text())
    assert set(document["laws"]) == {"n_params", "lr"}
    assert 0.40 < document["laws"]["n_params"]["exponent"] < 0.50
    front = pl.read_csv(study / "analysis" / "pareto.csv")
    assert {"trial_id", "cost", "m.loss", "cfg.lr"} <= set(front.columns) and len(front) == document["front_size"]
    for png in ("pareto.png", "hparams.png"):
        assert (study / "analysis" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Only result rows are Parquet: a glob over the study still reads one schema of rows.
    assert pl.scan_parquet(str(study / "**" / "*.parquet")).collect().height == 1500

    out_json = tmp_path / "laws.json"
    assert run_cli(str(study), "--metric", "loss", "-o", str(out_json), "--json") == 0
    assert json.loads(capsys.readouterr().out)["laws"].keys() == {"n_params", "tokens", "lr"}
    assert out_json.exists()


def test_cli_errors_name_the_flag(tmp_path):
    with pytest.raises(UserError, match="no such study folder"):
        run_cli(str(tmp_path / "missing"))
    study = write_study(tmp_path, analytic_trials(50))
    with pytest.raises(UserError, match="--cost: tokens_seen"):
        run_cli(str(study), "--cost", "tokens_seen")
