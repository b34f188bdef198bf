"""RegMix regression and simplex search (sweeper.laws.mixture) on synthetic mixtures with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from sweeper.errors import UserError
from sweeper.laws.mixture import (
    MODELS,
    TRANSFORMS,
    fit_mixture,
    make_transform,
    mixture_yaml,
    round_mixture,
    search_simplex,
    spearman,
)
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
    # Out-of-fold predictions of the ensemble are the mean of its members' (on the scale the models learn).
    np.testing.assert_allclose(bowl_fit.cv_scores["ensemble"],
                               (bowl_fit.cv_scores["lightgbm"] + bowl_fit.cv_scores["logquad"]) / 2)
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
    fit = fit_mixture(w, y, DOMAINS, models=["linear", "lightgbm"], transform="none")
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
    with pytest.raises(UserError, match="^models: gp"):
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


def test_target_transforms_keep_the_order_and_map_back_to_target_units():
    w = sample_mixtures(PRIOR, 120, seed=3)
    y = bowl(w)
    for name in TRANSFORMS:
        tf = make_transform(name, y)
        z = tf.forward(y)
        assert spearman(z, y) == pytest.approx(1.0)
        if name != "rank":
            np.testing.assert_allclose(tf.inverse(z), y, rtol=1e-9)
    rank = make_transform("rank", y)
    assert rank.forward(y).min() > 0 and rank.forward(y).max() < 1
    # A rank is mapped back by interpolating between the measured values: never outside their range.
    assert rank.inverse(np.array([-5.0, 5.0])).tolist() == [y.min(), y.max()]
    with pytest.raises(UserError, match="log transform needs positive values"):
        make_transform("log", np.array([1.0, 0.0, 2.0]))
    with pytest.raises(UserError, match="expected one of none, rank, log, inverse"):
        make_transform("sqrt", y)


def test_a_few_very_bad_corners_do_not_steer_the_rank_fit():
    """A target that rises steeply in one corner (as the shipped study's mostly-arithmetic proxies, which
    score twice the loss of any sensible mixture): fitted on raw values the corner dominates; on ranks the
    regression orders fresh mixtures and finds the minimum."""
    def target(w: np.ndarray) -> np.ndarray:
        return bowl(w) + 30.0 * w[:, 3] ** 4

    w = sample_mixtures(PRIOR, 48, seed=1)
    y = target(w) + np.random.default_rng(1).normal(0, 0.01, len(w))
    fresh = sample_mixtures(PRIOR, 4000, seed=98)
    raw = fit_mixture(w, y, DOMAINS, transform="none", seed=0)
    ranks = fit_mixture(w, y, DOMAINS, transform="rank", seed=0)
    assert ranks.transform_name == "rank" and ranks.summary()["transform"] == "rank"
    assert ranks.rho > 0.9 and ranks.rho > raw.rho + 0.1
    assert spearman(ranks.score(fresh), target(fresh)) > 0.9 > spearman(raw.score(fresh), target(fresh)) + 0.1
    # Predictions are in target units, inside the measured range, and follow the score.
    predicted = ranks.predict(fresh)
    assert predicted.min() >= y.min() and predicted.max() <= y.max()
    assert spearman(predicted, ranks.score(fresh)) > 0.99
    regret = {}
    for name, fit in (("none", raw), ("rank", ranks)):
        pick = search_simplex(fit, dict(zip(DOMAINS, PRIOR, strict=True)), n_samples=20_000, top_k=64, seed=1)
        found = np.array([[pick.mixture[d] for d in DOMAINS]])
        regret[name] = float(target(found)[0] - target(BEST[None])[0])
    assert regret["rank"] < 0.05 < regret["none"]
    auto = fit_mixture(w, y, DOMAINS, seed=0)  # the default cross-validates every transform and keeps the best
    assert auto.transform_name != "none" and auto.rho >= ranks.rho
    assert auto.rho == max(max(r.values()) for r in auto.cv_rho_by_transform.values())
    assert set(auto.summary()["cv_spearman_by_transform"]) == set(TRANSFORMS)
