"""RegMix mixture sampling: the pure sampler (sweeper.maths.simplex) and the Ray Tune searcher
(sweeper.search.dirichlet)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ray.tune.search import Searcher

from sweeper.errors import UserError
from sweeper.maths.simplex import (
    DirichletOptions,
    make_options,
    normalize_prior,
    sample_mixtures,
    strength_scales,
)
from sweeper.search.base import Proposer
from sweeper.search.dirichlet import DirichletProposer
from sweeper.search.tune import TuneSearcher

PRIOR = {"web": 0.4, "code": 0.3, "books": 0.2, "math": 0.1}
P = np.array(list(PRIOR.values()))


def test_same_seed_same_mixtures_and_rows_on_the_simplex():
    a = sample_mixtures(PRIOR, 500, seed=7)
    b = sample_mixtures(PRIOR, 500, seed=7)
    c = sample_mixtures(PRIOR, 500, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (500, 4)
    assert (a >= 0).all()
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)


def test_draws_are_centred_on_the_prior():
    w = sample_mixtures(PRIOR, 40_000, seed=1)
    np.testing.assert_allclose(w.mean(axis=0), P, atol=0.01)


def test_spread_of_strengths_gives_sparse_and_near_prior_draws():
    w, s = sample_mixtures(PRIOR, 20_000, seed=2, return_strength=True)
    scales = strength_scales()
    assert set(np.unique(s)) == set(scales)
    sparse = w.max(axis=1) > 0.95
    near = np.abs(w - P).sum(axis=1) < 0.2
    # The weakest concentration puts nearly everything on one domain, the strongest stays by the prior.
    assert sparse[s == scales[0]].mean() > 0.8
    assert near[s == scales[-1]].mean() > 0.8
    assert near[s == scales[0]].mean() < 0.05
    # Over all draws both kinds are common.
    assert sparse.mean() > 0.15
    assert near.mean() > 0.15


def test_tiny_concentrations_over_many_domains_never_give_nan():
    prior = np.full(50, 1 / 50)
    w = sample_mixtures(prior, 2000, seed=3, min_strength=1e-3, max_strength=1e-2, n_scales=3)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert (w.max(axis=1) > 0.99).mean() > 0.9


def test_zero_prior_domain_is_never_drawn():
    w = sample_mixtures([0.5, 0.0, 0.5], 1000, seed=4)
    assert (w[:, 1] == 0).all()


def test_temperature_flattens_the_centre():
    w = sample_mixtures(PRIOR, 40_000, seed=5, temperature=0.5)
    flat = np.sqrt(P) / np.sqrt(P).sum()
    np.testing.assert_allclose(w.mean(axis=0), flat, atol=0.01)


def test_max_usage_bounds_each_domain_and_minimum_zeroes_small_weights():
    w = sample_mixtures(PRIOR, 3000, seed=6, max_usage=2.0, minimum=0.01)
    assert (w <= np.minimum(P * 2.0, 1.0) + 1e-9).all()
    assert ((w == 0) | (w >= 0.01 - 1e-12)).all()
    assert (w == 0).any()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


def test_impossible_max_usage_is_a_user_error():
    # 0.9 times each domain's share adds up to 0.9 of a mixture: no draw can satisfy it.
    with pytest.raises(UserError, match="max_usage"):
        sample_mixtures(PRIOR, 10, seed=0, max_usage=0.9)


@pytest.mark.parametrize("kwargs", [{"min_strength": 0}, {"min_strength": 5, "max_strength": 1}, {"n_scales": 0},
                                    {"temperature": 0}, {"max_usage": -1}, {"minimum": 1.0}])
def test_bad_options_are_user_errors(kwargs):
    with pytest.raises(UserError):
        DirichletOptions(**kwargs)


def test_unknown_option_is_a_user_error_naming_it():
    with pytest.raises(UserError, match="strenght"):
        DirichletProposer(PRIOR, strenght=3)
    assert make_options({"max_usage": 15}).max_usage == 15


@pytest.mark.parametrize("prior", [{"a": 1.0}, {"a": -1.0, "b": 2.0}, [0.0, 0.0], [1.0, float("nan")]])
def test_bad_priors_are_user_errors(prior):
    with pytest.raises(UserError, match="prior"):
        normalize_prior(prior)


def test_prior_in_any_unit_is_normalised():
    np.testing.assert_allclose(normalize_prior({"a": 30, "b": 10}), [0.75, 0.25])
    np.testing.assert_allclose(normalize_prior({"a": 1}, domains=["b", "a"]), [0.0, 1.0])


# --------------------------------------------------------------------------------------------------------------
# DirichletProposer, alone and behind the Tune adapter


def dirichlet(prior=PRIOR, *args, max_trials=None, **kw) -> TuneSearcher:
    """The Dirichlet proposer as the engine hands it to Tune."""
    return TuneSearcher(DirichletProposer(prior, *args, **kw), max_trials=max_trials)


def _suggest(searcher, n: int, start: int = 0) -> list:
    return [searcher.suggest(f"t{i}") for i in range(start, start + n)]


def test_proposer_suggests_the_named_mixture_and_tune_sees_a_searcher():
    s = DirichletProposer(PRIOR, "mix", seed=0)
    assert isinstance(s, Proposer) and isinstance(dirichlet(), Searcher)
    config = s.suggest("t0")
    assert list(config) == ["mix"]
    assert list(config["mix"]) == list(PRIOR)
    assert sum(config["mix"].values()) == pytest.approx(1.0)


def test_searcher_is_reproducible_for_a_seed():
    a = _suggest(DirichletProposer(PRIOR, seed=3), 6)
    b = _suggest(DirichletProposer(PRIOR, seed=3), 6)
    c = _suggest(DirichletProposer(PRIOR, seed=4), 6)
    assert a == b
    assert a != c
    assert len({tuple(x["mix"].values()) for x in a}) == 6


def test_fixed_points_come_first_and_do_not_shift_the_random_draws():
    plain = _suggest(DirichletProposer(PRIOR, seed=1), 3)
    s = DirichletProposer(PRIOR, seed=1, points_to_evaluate=[{"web": 1.0}, {"mix": {"code": 1, "math": 1}}])
    got = _suggest(s, 5)
    assert got[0]["mix"] == {"web": 1.0, "code": 0.0, "books": 0.0, "math": 0.0}
    assert got[1]["mix"] == {"web": 0.0, "code": 0.5, "books": 0.0, "math": 0.5}
    assert got[2:] == plain
    s.add_points([{"books": 2.0}])
    assert s.suggest("t9")["mix"]["books"] == 1.0


def test_unknown_domain_in_a_fixed_point_is_a_user_error():
    with pytest.raises(UserError, match="poetry"):
        DirichletProposer(PRIOR, points_to_evaluate=[{"poetry": 1.0}])


def test_max_trials_counts_fixed_points_then_finishes():
    s = dirichlet(max_trials=3, points_to_evaluate=[PRIOR])
    got = _suggest(s, 5)
    assert all(isinstance(g, dict) for g in got[:3])
    assert got[3:] == [Searcher.FINISHED, Searcher.FINISHED]


def test_save_and_restore_continue_the_same_sequence(tmp_path):
    reference = _suggest(dirichlet(seed=11, max_trials=6, points_to_evaluate=[{"web": 1}]), 7)
    first = dirichlet(seed=11, max_trials=6, points_to_evaluate=[{"web": 1}], metric="loss")
    head = _suggest(first, 3)
    first.on_trial_complete("t0", {"loss": 2.5})
    path = tmp_path / "searcher-state.json"
    first.save(str(path))

    second = dirichlet({"x": 1.0, "y": 1.0}, seed=999, max_trials=6)  # everything comes from the checkpoint
    second.restore(str(path))
    tail = _suggest(second, 4, start=3)
    assert head + tail == reference
    assert tail[-1] == Searcher.FINISHED
    assert second.proposer.results == {"t0": 2.5}
    second.on_trial_complete("t1", {"loss": 1.0})
    assert second.proposer.results["t1"] == 1.0


def test_resume_suggests_the_unfinished_mixtures_again_and_counts_this_run_afresh(tmp_path):
    path = tmp_path / "searcher-state.json"
    first = TuneSearcher(DirichletProposer(PRIOR, seed=5, metric="loss"), max_trials=4, state_path=path)
    got = _suggest(first, 3)
    first.on_trial_complete("t0", {"loss": 2.0})
    first.sync()  # t1 and t2 are running when the process dies
    second = TuneSearcher(DirichletProposer({"x": 1.0, "y": 1.0}), max_trials=2, state_path=path)
    assert second.resume() == 2
    assert _suggest(second, 3, start=10) == [got[1], got[2], Searcher.FINISHED]
    assert second.proposer.results == {"t0": 2.0}


def test_a_version_1_state_file_still_loads(tmp_path):
    """State written before the Tune adapter: the proposer's state at top level, with max_trials in it."""
    old = DirichletProposer(PRIOR, seed=2, metric="loss")
    _suggest(old, 2)
    state = {**old.state_dict(), "version": 1, "max_trials": 10}
    path = tmp_path / "searcher-state.json"
    path.write_text(json.dumps(state))
    resumed = TuneSearcher(DirichletProposer(PRIOR), max_trials=3, state_path=path)
    assert resumed.resume() == 2
    assert resumed.proposer.n_random == 2


def test_completed_trials_are_recorded_with_the_study_metric():
    s = dirichlet(metric="m.loss")
    s.suggest("a")
    s.suggest("b")
    s.on_trial_complete("a", {"m.loss": 3.0})
    s.on_trial_complete("b", None, error=True)
    s.on_trial_complete("never-suggested", {"m.loss": 1.0})
    assert s.proposer.results == {"a": 3.0, "b": None}
