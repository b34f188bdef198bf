"""Two-step downstream prediction: compute -> loss -> downstream metric (the sigmoid link of the OLMo 2 ladder
and the exponential link of Gadre et al. 2024), with paired bootstrap intervals; step 2 alone, chained
through a loss prediction's interval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweeper.errors import UserError
from sweeper.laws.data import LawData
from sweeper.laws.power import Prediction
from sweeper.laws.twostep import (
    LinkFit,
    exponential,
    fit_exponential,
    fit_link,
    fit_sigmoid,
    fit_two_step,
    sigmoid,
)

SIG = np.array([0.6, 0.25, -6.0, 2.6])  # a, b, k, L0: accuracy rises from 0.25 as the task loss falls
EXP = np.array([0.85, 3.0, 0.9])  # epsilon, k, gamma: top-1 error falls from 0.85 (chance) as the loss falls


def task_loss(c):
    return 1.5 + 3000.0 * np.asarray(c) ** -0.18


def ladder(seed: int = 0) -> LawData:
    rng = np.random.default_rng(seed)
    c = np.repeat(np.geomspace(1e17, 1e20, 12), 2)
    loss = task_loss(c) * np.exp(0.01 * rng.standard_normal(c.size))
    acc = sigmoid(SIG, loss) + 0.01 * rng.standard_normal(c.size)
    err = exponential(EXP, loss) + 0.005 * rng.standard_normal(c.size)
    return LawData(loss=loss, c=c, extra={"m.acc": acc, "m.err": err})


def test_sigmoid_fit_recovers_its_parameters():
    loss = np.linspace(2.0, 4.0, 40)
    assert fit_sigmoid(loss, sigmoid(SIG, loss)) == pytest.approx(SIG, rel=1e-4)


def test_exponential_fit_recovers_its_parameters_for_an_error_and_an_accuracy():
    loss = np.linspace(2.0, 4.0, 40)
    assert fit_exponential(loss, exponential(EXP, loss)) == pytest.approx(EXP, rel=1e-5)
    # an accuracy (1 - error) is the same form with the signs of epsilon - 1 and k turned
    acc = fit_exponential(loss, 1 - exponential(EXP, loss))
    assert acc == pytest.approx([1 - EXP[0], -EXP[1], EXP[2]], rel=1e-5)


def test_two_step_predicts_accuracy_beyond_the_ladder():
    fit = fit_two_step(ladder(), "m.acc", law="power", x="flops", bootstrap=80)
    for c in (1e21, 1e22):
        out = fit.predict(c=c)
        true_acc = sigmoid(SIG, task_loss(c))
        assert out["downstream"].lo <= true_acc <= out["downstream"].hi
        assert float(out["downstream"].value) == pytest.approx(true_acc, abs=0.03)
        assert out["loss"].lo <= task_loss(c) <= out["loss"].hi
    raw = fit.to_dict()
    assert set(raw["step2"]["params"]) == {"a", "b", "k", "L0"} and raw["step1"]["law"] == "power"


def test_two_step_with_the_exponential_link_predicts_the_error_beyond_the_ladder():
    fit = fit_two_step(ladder(), "m.err", law="power", x="flops", form="exponential", bootstrap=80)
    for c in (1e21, 1e22):
        out = fit.predict(c=c)
        true_err = exponential(EXP, task_loss(c))
        assert out["downstream"].lo <= true_err <= out["downstream"].hi
        # both steps extrapolate (the ladder's lowest loss is 2.25; at 1e22 it is 1.83): 4 points of error at most
        assert float(out["downstream"].value) == pytest.approx(true_err, abs=0.04)
    raw = fit.to_dict()
    assert raw["step2"]["form"] == "exponential" and set(raw["step2"]["params"]) == {"epsilon", "k", "gamma"}


def test_a_link_chains_a_loss_prediction_with_its_interval():
    rng = np.random.default_rng(1)
    loss = np.repeat(np.linspace(2.2, 3.5, 10), 3)
    run = np.repeat(np.arange(10), 3)
    err = exponential(EXP, loss) + 0.004 * rng.standard_normal(loss.size)
    link = fit_link(loss, err, run, form="exponential", bootstrap=60, level=0.9)
    assert link.scatter == pytest.approx(0.004, rel=0.4)
    sure = link.chain(Prediction(np.array(2.0), np.array(2.0), np.array(2.0), 0.9))
    unsure = link.chain(Prediction(np.array(2.0), np.array(1.9), np.array(2.1), 0.9))
    assert float(sure.lo) <= exponential(EXP, 2.0) <= float(sure.hi)
    assert float(unsure.value) == pytest.approx(float(sure.value))
    # the loss's own interval widens the metric's, on both sides: in quadrature with what the metric had at a
    # certain loss (the link's bootstrap and the runs' scatter)
    assert unsure.lo < sure.lo and unsure.hi > sure.hi
    mapped_up = exponential(link.vector, 2.1) - float(sure.value)
    mapped_down = float(sure.value) - exponential(link.vector, 1.9)
    assert float(unsure.hi - unsure.value) == pytest.approx(np.hypot(mapped_up, float(sure.hi - sure.value)))
    assert float(unsure.value - unsure.lo) == pytest.approx(np.hypot(mapped_down, float(sure.value - sure.lo)))
    # an accuracy (k < 0) chains the same way: higher loss, lower accuracy, the interval still around the value
    acc = fit_link(loss, 1 - err, run, form="exponential", bootstrap=60, level=0.9)
    chained = acc.chain(Prediction(np.array(2.0), np.array(1.9), np.array(2.1), 0.9))
    assert acc.params["k"] < 0 and float(chained.lo) < float(chained.value) < float(chained.hi)
    assert float(chained.value) == pytest.approx(1 - float(unsure.value), abs=1e-3)
    raw = link.to_dict()
    assert raw["form"] == "exponential" and raw["points"] == 30 and set(raw["intervals"]) == {"epsilon", "k", "gamma"}


def test_two_step_needs_the_metric_column_and_a_known_link():
    with pytest.raises(UserError, match="m.mmlu: not loaded"):
        fit_two_step(ladder(), "m.mmlu", bootstrap=0)
    with pytest.raises(UserError, match="form 'logistic': expected one of sigmoid, exponential"):
        fit_two_step(ladder(), "m.err", form="logistic", bootstrap=0)


def test_step_two_needs_more_points_than_parameters_and_a_spread_of_loss():
    with pytest.raises(UserError, match=r"3 points; it has 3 parameters and needs at least 4"):
        fit_link([2.0, 2.5, 3.0], [0.5, 0.6, 0.7], form="exponential", bootstrap=0)
    with pytest.raises(UserError, match="every point has the same loss"):
        fit_link([2.0] * 6, [0.5] * 6, form="exponential", bootstrap=0)


def test_a_saved_link_reads_back_and_a_hand_edited_one_is_refused_by_field(tmp_path):
    loss = np.repeat(np.linspace(2.2, 3.5, 8), 2)
    link = fit_link(loss, exponential(EXP, loss), np.repeat(np.arange(8), 2), bootstrap=20)
    path = tmp_path / "downstream.json"
    path.write_text(json.dumps({**link.to_dict(), "metric": "m.err"}))
    again = LinkFit.load(path)
    at = Prediction(np.array(2.0), np.array(1.95), np.array(2.05), 0.9)
    assert again.metric == "m.err" and again.form == "exponential"
    mine, theirs = link.chain(at), again.chain(at)
    assert (float(theirs.value), float(theirs.lo), float(theirs.hi)) == pytest.approx(
        (float(mine.value), float(mine.lo), float(mine.hi)))
    for edit, field in (({"format": "sweeper.law/1"}, "format"), ({"form": "logistic"}, "form"),
                        ({"samples": [[0.9, float("inf"), 1.0]]}, "samples"),
                        ({"params": {"epsilon": 0.9, "k": 3.0}}, "params"),
                        ({"params": {"epsilon": 0.9, "k": 3.0, "gamma": -1.0}}, "params.gamma"),
                        ({"samples": [[1.0, 2.0]]}, "samples"), ({"scatter": -0.1}, "scatter"),
                        ({"level": 1.5}, "level"), ({"points": 0}, "points")):
        path.write_text(json.dumps({**link.to_dict(), **edit}))
        with pytest.raises(UserError, match=rf"{path}: {field}: expected"):
            LinkFit.load(path)
    with pytest.raises(UserError, match="no such file"):
        LinkFit.load(tmp_path / "missing.json")


def ladder_checkpoints(truth, seed: int = 0):
    """Seven sizes x 4 checkpoints: losses falling with size and steps, the metric following ``truth``."""
    rng = np.random.default_rng(seed)
    size = np.repeat(np.geomspace(1e4, 1.5e5, 7), 4)
    step = np.tile(np.arange(1, 5), 7)
    loss = 1.3 + 40.0 * size ** -0.4 + 0.4 / step
    metric = truth(loss) + 0.002 * rng.standard_normal(loss.size)
    return loss, metric, np.repeat(np.arange(7), 4), size, step == 4


def test_auto_keeps_the_link_whose_backtests_predicted_the_largest_sizes_best():
    # an accuracy that saturates near its top as the loss falls: the sigmoid; the exponential cannot bend back
    truth = np.array([0.7, 0.2, -4.0, 2.3])
    loss, metric, run, size, final = ladder_checkpoints(lambda x: sigmoid(truth, x))
    link = fit_link(loss, metric, run, form="auto", bootstrap=0, size=size, final=final)
    test = link.backtest
    assert test["chosen"] == link.form == "sigmoid"
    assert test["holdouts"] == [1, 2] and test["points"] == {"sigmoid": 3, "exponential": 3}
    assert test["mean_abs_error"]["sigmoid"] < test["mean_abs_error"]["exponential"]
    assert link.spread >= link.scatter and link.spread == max(link.scatter, test["rms_error"]["sigmoid"])


def test_a_named_link_is_backtested_too_and_its_spread_widens_the_chain():
    loss, metric, run, size, final = ladder_checkpoints(lambda x: exponential(EXP, x))
    plain = fit_link(loss, metric, run, form="exponential", bootstrap=30)
    tested = fit_link(loss, metric, run, form="exponential", bootstrap=30, size=size, final=final)
    assert plain.backtest is None and plain.spread is None
    assert set(tested.backtest["rms_error"]) == {"exponential"} and "chosen" not in tested.backtest
    at = Prediction(np.array(1.4), np.array(1.4), np.array(1.4), 0.9)
    wide, narrow = tested.chain(at), plain.chain(at)
    assert float(wide.hi - wide.lo) >= float(narrow.hi - narrow.lo)


def test_auto_needs_sizes_and_final_points():
    loss, metric, run, _, _ = ladder_checkpoints(lambda x: exponential(EXP, x))
    with pytest.raises(UserError, match="auto.*needs each point's model size"):
        fit_link(loss, metric, run, form="auto", bootstrap=0)


def test_without_the_loss_interval_or_the_link_bootstrap_the_interval_is_missing_not_narrow():
    loss = np.repeat(np.linspace(2.2, 3.5, 10), 3)
    run = np.repeat(np.arange(10), 3)
    err = exponential(EXP, loss)
    booted = fit_link(loss, err, run, bootstrap=20)
    unbooted = fit_link(loss, err, run, bootstrap=0)
    no_interval = Prediction(np.array(2.0), np.array(np.nan), np.array(np.nan), 0.9)
    with_interval = Prediction(np.array(2.0), np.array(1.9), np.array(2.1), 0.9)
    for out in (booted.chain(no_interval), unbooted.chain(with_interval)):
        assert np.isnan(out.lo) and np.isnan(out.hi) and np.isfinite(out.value)
    with pytest.raises(UserError, match="at 95% and the link's at 90%"):
        booted.chain(Prediction(np.array(2.0), np.array(1.9), np.array(2.1), 0.95))


def test_a_bootstrap_of_too_few_runs_keeps_no_samples():
    loss = np.linspace(2.2, 3.5, 12)
    err = exponential(EXP, loss)
    for runs in (np.zeros(12), np.repeat([0, 1], 6)):
        link = fit_link(loss, err, runs, bootstrap=30)
        assert link.samples is None and link.bootstrap == {"replicates": 30, "kept": 0}
    three = fit_link(loss, err, np.repeat([0, 1, 2], 4), bootstrap=30)
    # resamples that draw one run only are skipped: (1/3)^2 of them on average
    assert three.samples is not None and 15 <= three.bootstrap["kept"] < 30


def test_a_flat_metric_with_an_outlier_keeps_the_exponential_finite():
    rng = np.random.default_rng(3)
    loss = np.linspace(2.8, 3.2, 24)
    err = 0.6 + 0.001 * rng.standard_normal(loss.size)
    err[0] = 0.5
    link = fit_link(loss, err, np.repeat(np.arange(8), 3), bootstrap=20)
    assert np.all(np.isfinite(link.vector)) and np.all(np.isfinite(link.samples))
    out = link.chain(Prediction(np.array(2.7), np.array(2.6), np.array(2.8), 0.9))
    assert np.isfinite(out.lo) and np.isfinite(out.hi)
