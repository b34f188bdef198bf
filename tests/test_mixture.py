"""RegMix regression and simplex search (sweeper.laws.mixture) on synthetic mixtures with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from sweeper.errors import UserError
from sweeper.laws.mixture import MODELS, fit_mixture, mixture_yaml, round_mixture, search_simplex, spearman
from sweeper.maths.simplex import sample_mixtures

DOMAINS = ["web", "code", "books", "math"]
PRIOR = np.array([0.4, 0.3, 0.2, 0.1])
BEST = np.array([0.25, 0.45, 0.2, 0.1])  # the known best mixture of the synthetic target


def bowl(w: np.ndarray) -> np.ndarray:
    """A loss whose minimum over the simplex is exactly at BEST (anisotropic, so domains matter unequally)."""
    return 3.0 + (((w - BEST) ** 2) * np.array([4.0, 2.0, 3.0, 6.0])).sum(axis=1)


@pytest.fixture(scope="module")
def bowl_fit():
    w = sample_mixtures(PRIOR, 240, seed=0)
    noise = np.random.default_rng(0).normal(0.0, 0.002, len(w))
    return fit_mixture(w, bowl(w) + noise, DOMAINS, seed=0)


def test_cv_scores_every_model_and_uses_the_best(bowl_fit):
    assert set(bowl_fit.cv_rho) == set(MODELS)
    assert bowl_fit.rho == max(bowl_fit.cv_rho.values())
    assert bowl_fit.folds == 5
    for preds in bowl_fit.cv_predictions.values():
        assert preds.shape == (240,)
    # Out-of-fold predictions of the ensemble are the mean of its members'.
    np.testing.assert_allclose(bowl_fit.cv_predictions["ensemble"],
                               (bowl_fit.cv_predictions["lightgbm"] + bowl_fit.cv_predictions["logquad"]) / 2)
    # The fit ranks fresh mixtures it has not seen.
    fresh = sample_mixtures(PRIOR, 2000, seed=99)
    assert spearman(bowl_fit.predict(fresh), bowl(fresh)) > 0.9


def test_simplex_search_finds_the_known_best_mixture(bowl_fit):
    pick = search_simplex(bowl_fit, dict(zip(DOMAINS, PRIOR, strict=True)), n_samples=20_000, top_k=64, seed=1)
    found = np.array([pick.mixture[d] for d in DOMAINS])
    assert sum(pick.mixture.values()) == pytest.approx(1.0)
    assert np.abs(found - BEST).sum() < 0.1
    # Its true loss is within 2% of the spread of losses over the prior from the optimum.
    spread = np.ptp(bowl(sample_mixtures(PRIOR, 20_000, seed=2)))
    assert bowl(found[None])[0] - bowl(BEST[None])[0] < 0.02 * spread
    assert pick.predicted == pytest.approx(float(bowl_fit.predict(found[None])[0]))
    assert pick.top.shape == (64, 4)
    # mode max looks for the worst instead: far from BEST, with a higher predicted loss.
    worst = search_simplex(bowl_fit, n_samples=5000, top_k=16, mode="max", seed=1)
    assert worst.predicted > pick.predicted + 0.1 * spread


def test_a_linear_target_is_ranked_perfectly_by_the_linear_model():
    w = sample_mixtures(PRIOR, 60, seed=3)
    y = w @ np.array([1.0, -2.0, 0.5, 3.0])
    fit = fit_mixture(w, y, DOMAINS, models=["linear", "lightgbm"])
    assert fit.model == "linear"
    assert fit.cv_rho["linear"] > 0.999
    assert list(fit.cv_rho) == ["linear", "lightgbm"]


def test_fit_is_deterministic_and_rows_are_normalised():
    w = sample_mixtures(PRIOR, 40, seed=4)
    y = bowl(w)
    a = fit_mixture(w, y, DOMAINS, seed=5)
    b = fit_mixture(w * 100.0, y, DOMAINS, seed=5)  # token counts instead of shares
    assert a.model == b.model and a.cv_rho == b.cv_rho
    probe = sample_mixtures(PRIOR, 50, seed=6)
    np.testing.assert_allclose(a.predict(probe), b.predict(probe * 7.0))
    assert a.predict({"code": 1.0})[0] == pytest.approx(a.predict(np.array([[0, 1.0, 0, 0]]))[0])


@pytest.mark.parametrize(("weights", "target", "match"), [
    (np.full((5, 3), 1 / 3), np.arange(5.0), "at least 8"),
    (np.random.default_rng(0).dirichlet(np.ones(3), 20), np.ones(20), "same value"),
    (np.random.default_rng(0).dirichlet(np.ones(3), 20), np.r_[np.arange(19.0), np.nan], "finite"),
    (-np.random.default_rng(0).dirichlet(np.ones(3), 20), np.arange(20.0), "non-negative"),
    (np.random.default_rng(0).dirichlet(np.ones(3), 20), np.arange(19.0), "one value per mixture"),
])
def test_bad_inputs_are_user_errors(weights, target, match):
    with pytest.raises(UserError, match=match):
        fit_mixture(weights, target)


def test_unknown_model_is_a_user_error():
    w = sample_mixtures(PRIOR, 20, seed=0)
    with pytest.raises(UserError, match="--models: gp"):
        fit_mixture(w, bowl(w), models=["gp"])


def test_pick_as_yaml_is_a_fixed_mixture_with_its_prediction(bowl_fit):
    pick = search_simplex(bowl_fit, n_samples=2000, top_k=20, seed=0)
    text = mixture_yaml(pick, bowl_fit, source="synthetic")
    data = yaml.safe_load(text)
    assert list(data) == ["mix"]
    assert list(data["mix"]) == DOMAINS
    assert sum(data["mix"].values()) == pytest.approx(1.0, abs=1e-9)
    assert f"{pick.predicted:.6g}" in text and bowl_fit.model in text


def test_round_mixture_keeps_the_sum():
    mix = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    rounded = round_mixture(mix, 3)
    assert sum(rounded.values()) == pytest.approx(1.0, abs=1e-12)
    assert sorted(rounded.values()) == [0.333, 0.333, 0.334]
