"""Two-step downstream prediction: compute -> task loss -> accuracy, with paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.errors import UserError
from sweeper.laws.data import LawData
from sweeper.laws.twostep import fit_sigmoid, fit_two_step, sigmoid

SIG = np.array([0.6, 0.25, -6.0, 2.6])  # a, b, k, L0: accuracy rises from 0.25 as the task loss falls


def task_loss(c):
    return 1.5 + 3000.0 * np.asarray(c) ** -0.18


def ladder(seed: int = 0) -> LawData:
    rng = np.random.default_rng(seed)
    c = np.repeat(np.geomspace(1e17, 1e20, 12), 2)
    loss = task_loss(c) * np.exp(0.01 * rng.standard_normal(c.size))
    acc = sigmoid(SIG, loss) + 0.01 * rng.standard_normal(c.size)
    return LawData(loss=loss, c=c, extra={"m.acc": acc})


def test_sigmoid_fit_recovers_its_parameters():
    loss = np.linspace(2.0, 4.0, 40)
    assert fit_sigmoid(loss, sigmoid(SIG, loss)) == pytest.approx(SIG, rel=1e-4)


def test_two_step_predicts_accuracy_beyond_the_ladder():
    fit = fit_two_step(ladder(), "m.acc", law="power", x="flops", bootstrap=80)
    for c in (1e21, 1e22):
        out = fit.predict(c=c)
        true_acc = sigmoid(SIG, task_loss(c))
        assert out["accuracy"].lo <= true_acc <= out["accuracy"].hi
        assert float(out["accuracy"].value) == pytest.approx(true_acc, abs=0.03)
        assert out["loss"].lo <= task_loss(c) <= out["loss"].hi
    raw = fit.to_dict()
    assert set(raw["step2"]["params"]) == {"a", "b", "k", "L0"} and raw["step1"]["law"] == "power"


def test_two_step_needs_the_accuracy_column():
    with pytest.raises(UserError, match="m.mmlu: not loaded"):
        fit_two_step(ladder(), "m.mmlu", bootstrap=0)
