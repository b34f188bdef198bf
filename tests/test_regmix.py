"""RegMix end to end on the synthetic workload (its best mixture is known): Dirichlet proxies, the fit,
the simplex search and the validation runs, all through the engine."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from sweeper.engine import run_study
from sweeper.plan import mixture_prior
from sweeper.spec import parse_study
from sweeper.store import read_trials
from workloads.synthetic import optimal_mixture

pytestmark = pytest.mark.usefixtures("ray_session")

DOMAINS = ["a", "b", "c", "d"]


def _study(**extra):
    return parse_study({
        "name": "rm", "workload": "workloads.synthetic:train",
        "params": {"steps": 3, "noise": 0.0, "n_params": 1e6, "tokens": 1e8},
        "space": {"mix": {"type": "simplex", "domains": DOMAINS}},
        "search": {"algo": "dirichlet", "metric": "loss", "mode": "min"},
        "budget": {"trials": 32, "concurrent": 2},
        **extra,
    })


def test_regmix_pipeline_finds_the_known_best_mixture(tmp_path):
    study = _study(regmix={"samples": 20000, "top_k": 16, "validate": {
        "params": {"n_params": 1e7, "tokens": 1e9}, "seeds": [0],
        "mixtures": {"hand": {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}}}})
    out = io.StringIO()
    outcome = run_study(study, tmp_path / "rm", stream=out, rich=False)
    results = outcome.results_dir

    proxies = read_trials(results, phase="search")
    assert proxies.height == 32 and set(proxies["status"]) == {"done"}
    weights = proxies.select([f"mix.{d}" for d in DOMAINS]).to_numpy()
    assert weights.sum(axis=1) == pytest.approx(1.0)

    fitted = json.loads((results / "mixture" / "mixture_fit.json").read_text())
    best = optimal_mixture(DOMAINS)
    pick = fitted["pick"]["mixture"]
    assert sum(abs(pick[d] - best[d]) for d in DOMAINS) < 0.2  # noise-free target: the pick is near the optimum
    assert max(fitted["cv_spearman"].values()) > 0.9
    for name in ("best_mixture.yaml", "mixture_predicted_vs_measured.png", "mixture_weights.png", "validation.csv"):
        assert (results / "mixture" / name).exists()

    validation = read_trials(results, phase="validate")
    assert sorted(validation["cfg.candidate"]) == sorted(["regmix", "uniform", "prior", "best_proxy", "hand"])
    assert (validation["cfg.n_params"] == 1e7).all()  # the larger scale
    ranks = pl.read_csv(results / "mixture" / "validation.csv")
    assert ranks.filter(pl.col("candidate") == "regmix")["rank"][0] == 1
    assert outcome.regmix["pick_rank"] == 1
    assert "the RegMix pick ranks 1 of 5" in out.getvalue()


def test_dirichlet_prior_comes_from_the_study_or_is_uniform():
    assert mixture_prior(_study()) == {d: 0.25 for d in DOMAINS}
    prior = {"a": 4, "b": 3, "c": 2, "d": 1}
    study = _study(space={"mix": {"type": "simplex", "domains": DOMAINS, "prior": prior}})
    assert mixture_prior(study) == prior
