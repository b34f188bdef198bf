"""The over-training law, choosing a law by backtest (``law="auto"``), and intervals that include misfit."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.errors import ParameterError, UserError
from sweeper.laws.data import LawData, drop_smallest
from sweeper.laws.power import LawFit, backtest, chinchilla_vector, evaluate_law, fit_law
from sweeper.laws.select import (
    WINDOW_SHARES,
    candidates,
    chosen_errors,
    holdout_counts,
    misfit_model,
    select_law,
)

K = 6.0


def ladder(loss_of, sizes=(1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7), multipliers=(5, 10, 20, 40),
           noise=0.002, seed=0) -> LawData:
    rng = np.random.default_rng(seed)
    n = np.repeat(np.asarray(sizes, dtype=float), len(multipliers))
    d = n * np.tile(np.asarray(multipliers, dtype=float), len(sizes))
    loss = loss_of(n, d) * np.exp(rng.normal(0.0, noise, n.size))
    return LawData(loss=loss, n=n, d=d, c=K * n * d, run=np.arange(n.size).astype(str), source="ladder")


def overtrain_law(n, d, e=1.8, a=300.0, b=500.0, eta=0.15):
    c, m = K * n * d, d / n
    return e + (a * m ** eta + b * m ** -eta) * c ** -eta


def chinchilla_law(n, d):
    return 1.7 + 400.0 / n ** 0.2 + 4000.0 / d ** 0.5  # very different exponents for N and D


def test_the_overtrain_law_recovers_its_parameters_and_is_chinchilla_with_tied_exponents():
    data = ladder(overtrain_law, noise=0.0005)
    fit = fit_law(data, "overtrain", bootstrap=0)
    assert fit.params["eta"] == pytest.approx(0.15, rel=0.05) and fit.params["E"] == pytest.approx(1.8, rel=0.02)
    n, d = np.array([1e9, 3e9]), np.array([2e10, 1e11])
    assert fit.predict(n=n, d=d) == pytest.approx(overtrain_law(n, d), rel=0.01)
    nd = chinchilla_vector("overtrain", fit.vector, K)
    assert nd[3] == nd[4] == pytest.approx(2 * fit.params["eta"])
    assert evaluate_law("chinchilla", nd, [n, d]) == pytest.approx(evaluate_law("overtrain", fit.vector, [n, d], K))
    assert fit.compute_optimal(np.array([1e21]))["tokens_per_param"].value.shape == (1,)
    assert "M = D/N" in fit.form


def test_auto_keeps_the_form_that_extrapolated_best():
    tied = select_law(ladder(overtrain_law), bootstrap=0)
    assert tied.law == "overtrain"
    scores = tied.info["auto"]["scores"]
    assert set(scores) == {"chinchilla", "overtrain", "power(flops)"}
    assert scores["overtrain"]["mean_abs_rel_error"] < scores["power(flops)"]["mean_abs_rel_error"]
    free = select_law(ladder(chinchilla_law), bootstrap=0)
    assert free.law == "chinchilla"  # tied exponents cannot follow alpha 0.2 against beta 0.5
    only_c = LawData(loss=np.array([3.0, 2.7, 2.5, 2.35, 2.25]), c=np.geomspace(1e15, 1e19, 5), source="t")
    assert candidates(only_c) == [("power", "flops")] and select_law(only_c, bootstrap=0).law == "power"


def test_backtests_hold_out_a_share_of_the_levels_not_a_fixed_count():
    five = ladder(chinchilla_law, sizes=(1e6, 2e6, 4e6, 8e6, 1.6e7))
    assert holdout_counts(five, "n") == [1, 2]  # a 5-size ladder: its largest, then its 2 largest
    many = ladder(chinchilla_law, sizes=tuple(np.geomspace(1e6, 1e9, 40)), multipliers=(10, 20))
    assert holdout_counts(many, "n") == [4, 10]  # 10% and 25% of 40 sizes
    fit = select_law(many, bootstrap=0)
    assert fit.info["auto"]["holdouts"] == [4, 10]
    assert fit.info["auto"]["scores"]["chinchilla"]["points"] == 2 * (4 + 10)  # 2 budgets per size


def test_the_misfit_widens_intervals_with_the_extrapolation_and_survives_json(tmp_path):
    data = ladder(chinchilla_law, noise=0.004, seed=1)
    fit = fit_law(data, "auto", bootstrap=50)
    assert fit.misfit is not None and set(fit.misfit) == {"floor", "rate", "by", "fitted_max"}
    assert fit.misfit["by"] == "n" and fit.misfit["fitted_max"] == data.n.max()
    inside = fit.prediction(n=4e7, d=4e8)
    near, far = fit.prediction(n=1.3e8, d=2.6e9), fit.prediction(n=1e10, d=2e11)
    width = lambda p: float(np.log(p.hi / p.lo))  # noqa: E731
    bare = LawFit.from_dict({**fit.to_dict(), "misfit": None})
    assert width(inside) == pytest.approx(width(bare.prediction(n=4e7, d=4e8)))  # no extrapolation, no misfit
    assert width(near) > width(bare.prediction(n=1.3e8, d=2.6e9)) and width(far) > 2 * width(near)
    fit.save(tmp_path / "fit.json")
    again = LawFit.load(tmp_path / "fit.json")
    assert again.misfit == fit.misfit and again.info["auto"]["chosen"] == "chinchilla"
    with pytest.raises(UserError, match="misfit: expected"):
        LawFit.from_dict({**fit.to_dict(), "misfit": {"rate": -1, "by": "n", "fitted_max": 1.0}})
    with pytest.raises(UserError, match="misfit: expected"):
        LawFit.from_dict({**fit.to_dict(), "misfit": {**fit.misfit, "floor": -0.01}})
    older = {k: v for k, v in fit.misfit.items() if k != "floor"}  # a FIT.json written before the floor
    assert LawFit.from_dict({**fit.to_dict(), "misfit": older}).misfit == {**older, "floor": 0.0}


def test_the_misfit_model_separates_the_error_at_the_edge_from_its_growth():
    rng = np.random.default_rng(3)
    distances = rng.uniform(0.01, 1.5, 400)
    errors = rng.normal(0.0, np.hypot(0.01, 0.03 * distances))
    floor, rate = misfit_model(errors, distances)
    assert floor == pytest.approx(0.01, rel=0.3) and rate == pytest.approx(0.03, rel=0.3)
    # Errors that do not grow with the distance: noise at the near points is not read as a steep growth that
    # would make every far interval wide (one rate, error over distance, reads 1% at 0.01 as 1.0 per unit of log).
    flat = rng.normal(0.0, 0.01, 400)
    floor, rate = misfit_model(flat, distances)
    assert floor == pytest.approx(0.01, rel=0.2) and rate * 1.5 < floor
    one_rate = np.sqrt(np.mean((flat / distances) ** 2))
    assert one_rate * 1.5 > 5 * np.hypot(floor, rate * 1.5)  # what a single rate would add at the far end
    # One distance cannot tell a floor from a growth: all of it is taken as growth (the cautious reading).
    assert misfit_model(np.array([0.02, -0.01, np.nan]), np.full(3, 0.5)) == pytest.approx((0.0, np.sqrt(0.001)))


def test_the_misfit_backtests_the_choice_itself_not_the_winners_own_backtests():
    data = ladder(overtrain_law, noise=0.003, seed=4)
    fit = select_law(data, bootstrap=0, windows=WINDOW_SHARES)
    choice, holdouts = fit.info["auto"]["choice"], fit.info["auto"]["holdouts"]
    assert choice["points"] == 4 * sum(holdouts)  # every held-out point of every holdout, 4 budgets per size
    assert fit.misfit["floor"] == choice["misfit_floor"]
    assert fit.misfit["rate"] == choice["misfit_per_log_extrapolation"]
    errors, distances = chosen_errors(data, candidates(data), "n", holdouts, WINDOW_SHARES)
    assert errors.size == choice["points"] and np.all(distances > 0) and choice["nested"]
    assert misfit_model(errors, distances) == pytest.approx((fit.misfit["floor"], fit.misfit["rate"]))
    # Each training part chooses again: its choice is scored on its own sizes, not the whole ladder's winner.
    own = fit.info["auto"]["scores"][fit.info["auto"]["chosen"]]
    assert own["points"] == choice["points"] and own["mean_abs_rel_error"] != choice["mean_abs_rel_error"]
    assert select_law(data, bootstrap=0, windows=WINDOW_SHARES, misfit=False).misfit is None
    with pytest.raises(UserError, match="no fit window"):  # a window every part is too small for
        select_law(ladder(overtrain_law, sizes=(1e6, 2e6, 4e6, 8e6)), bootstrap=0, windows=(0.75,))


def test_a_backtest_of_auto_chooses_on_the_training_part_and_reports_coverage():
    data = ladder(overtrain_law, noise=0.003, seed=2)
    out = backtest(data, "auto", count=1, bootstrap=30, level=0.9)
    assert out["law"] in ("overtrain", "chinchilla") and out["misfit"] is not None
    assert out["held_out"]["by"] == "n" and 0.0 <= out["interval_coverage"] <= 1.0


def bent_at_small_sizes(n, d):
    """The overtrain law plus a term that only the smallest models feel (as tiny models fall off a trend)."""
    return overtrain_law(n, d) + 0.5 * (n / 2e6) ** -2.0


def test_a_fit_window_drops_the_smallest_levels_and_keeps_at_least_three():
    data = ladder(chinchilla_law, sizes=(1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7, 6.4e7, 1.28e8), multipliers=(10, 20))
    assert drop_smallest(data, "n", 0.0) is data
    half = drop_smallest(data, "n", 0.5)
    assert sorted(set(half.n)) == [1.6e7, 3.2e7, 6.4e7, 1.28e8] and len(half) == 8
    assert len(drop_smallest(data, "n", 0.3)) == 12  # floor(0.3 x 8) = 2 sizes of 2 runs dropped
    with pytest.raises(ParameterError, match=r"ladder: window: dropping 6 of 8 N \(parameters\) values leaves fewer"):
        drop_smallest(data, "n", 0.75)


def test_auto_with_windows_fits_near_the_sizes_it_predicts_when_the_small_ones_bend():
    data = ladder(bent_at_small_sizes, sizes=tuple(np.geomspace(1e6, 1.28e8, 8)), multipliers=(10, 40))
    fit = select_law(data, bootstrap=20, windows=WINDOW_SHARES)
    scores, chosen = fit.info["auto"]["scores"], fit.info["auto"]["chosen"]
    assert "overtrain w/o smallest 25%" in scores and "w/o smallest" in chosen
    assert scores[chosen]["mean_abs_rel_error"] < scores["overtrain"]["mean_abs_rel_error"]
    window = fit.info["window"]
    assert window["by"] == "n" and window["points_dropped"] > 0 and fit.n_points == len(data) - window["points_dropped"]
    assert fit.samples.shape[0] == 20 and np.isfinite(fit.samples).all()
    # the outer check: predicting the largest size from the rest, auto with windows errs less than without
    with_windows = backtest(data, "auto", count=1, bootstrap=0, windows=WINDOW_SHARES)
    without = backtest(data, "auto", count=1, bootstrap=0)
    assert with_windows["mean_abs_rel_error"] < without["mean_abs_rel_error"]
    assert select_law(data, bootstrap=0).info["auto"]["chosen"] in ("chinchilla", "overtrain", "power(flops)")


def test_a_windowed_bootstrap_draws_the_replicates_of_the_unwindowed_one():
    data = ladder(overtrain_law, sizes=(1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7), multipliers=(10, 20, 40), noise=0.003)
    plain = fit_law(data, "overtrain", bootstrap=30, seed=3)
    everything = fit_law(data, "overtrain", bootstrap=30, seed=3, window={"by": "n", "from": 1e6})
    np.testing.assert_allclose(everything.samples, plain.samples)  # same runs drawn, replicate by replicate
    top = fit_law(data, "overtrain", bootstrap=30, seed=3, window={"by": "n", "from": 4e6})
    assert top.n_points == 12 and top.info["window"]["from"] == 4e6 and np.isfinite(top.samples).all()


def test_windows_are_only_for_auto_and_only_shares_below_one():
    data = ladder(chinchilla_law)
    with pytest.raises(ParameterError, match="windows: .*only with law auto"):
        fit_law(data, "chinchilla", bootstrap=0, windows=WINDOW_SHARES)
    with pytest.raises(ParameterError, match=r"windows: \[0.0, 1.0\]: expected shares"):
        select_law(data, bootstrap=0, windows=(0.0, 1.0))
