"""The LR-annealing law: its areas, its fit, predictions from the early part of a run or under another
schedule, and the early-stopping decision built on them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sweeper.errors import UserError
from sweeper.laws.curves import (
    Curve,
    early_stop,
    fit_annealing,
    lr_areas,
    predict_final,
    schedule_from_log,
)

STEPS, WARMUP, PEAK = 4000, 100, 3e-3
TRUE = np.array([2.5, 0.6, 0.5, 0.1])  # L0, A, alpha, C


def schedule(kind: str, steps: int = STEPS) -> np.ndarray:
    s = np.arange(steps)
    warm = PEAK * (s + 1) / WARMUP
    if kind == "constant":
        body = np.full(steps, PEAK)
    elif kind == "cosine":
        body = 0.1 * PEAK + 0.9 * PEAK * 0.5 * (1 + np.cos(np.pi * (s - WARMUP) / (steps - WARMUP)))
    else:  # wsd: constant, then a linear decay over the last 20%
        start = int(0.8 * steps)
        body = np.where(s < start, PEAK, PEAK + (0.1 * PEAK - PEAK) * (s - start + 1) / (steps - start))
    return np.where(s < WARMUP, warm, body)


def true_loss(lr: np.ndarray) -> np.ndarray:
    s1, s2 = lr_areas(lr)
    return TRUE[0] + TRUE[1] * s1 ** -TRUE[2] - TRUE[3] * s2


def curve(kind: str, seed: int = 0, every: int = 40, noise: float = 0.003) -> Curve:
    lr = schedule(kind)
    steps = np.arange(every, STEPS + 1, every)
    rng = np.random.default_rng(seed)
    return Curve(steps, true_loss(lr)[steps - 1] * np.exp(noise * rng.standard_normal(steps.size)), lr, kind)


def test_areas_match_their_closed_forms():
    s1, s2 = lr_areas(np.full(50, 0.01))
    assert s1[-1] == pytest.approx(0.5) and not s2.any()
    # A step drop of 0.004 at step 11: m decays geometrically, S2 sums it.
    lr = np.r_[np.full(10, 0.01), np.full(40, 0.006)]
    lam = 0.9
    _, s2 = lr_areas(lr, decay=lam)
    k = np.arange(1, 41)
    assert s2[10:] == pytest.approx(0.004 * (1 - lam ** k) / (1 - lam))
    # Without momentum S2 is the plain LR drop so far; warmup rises are not annealing.
    lr = np.r_[np.linspace(0.001, 0.01, 10), np.linspace(0.01, 0.002, 30)]
    _, s2 = lr_areas(lr, decay=0.0)
    assert s2 == pytest.approx(np.maximum(0.0, 0.01 - lr) * (np.arange(40) >= 9))
    with pytest.raises(UserError):
        lr_areas([0.1, -0.1])


def test_fit_recovers_the_law_and_transfers_to_another_schedule():
    fit = fit_annealing(curve("cosine"), bootstrap=50)
    for name, truth in zip(("L0", "A", "alpha", "C"), TRUE, strict=True):
        assert fit.params[name] == pytest.approx(truth, rel=0.05)
    # Fitted on cosine only, it predicts the whole WSD curve (a schedule it never saw).
    wsd = schedule("wsd")
    assert np.abs(fit.predict(wsd) / true_loss(wsd) - 1)[WARMUP:].max() < 0.005
    pred = fit.prediction(wsd, [STEPS])
    assert pred.lo[0] <= true_loss(wsd)[-1] <= pred.hi[0]
    # A constant run and a WSD run together determine it too (as in the paper's two-curve fits).
    both = fit_annealing([curve("constant", 1), curve("wsd", 2)], bootstrap=50)
    for name, truth in zip(("L0", "A", "alpha", "C"), TRUE, strict=True):
        lo, hi = both.to_dict()["intervals"][name]
        assert lo <= truth <= hi, (name, truth, lo, hi)


def test_final_loss_from_the_early_part_of_a_run():
    full = curve("cosine", seed=4)
    truth = true_loss(full.lr)[-1]
    errors = []
    for fraction in (0.5, 0.7):
        pred, fit = predict_final(full.upto(int(fraction * STEPS)), bootstrap=60)
        errors.append(abs(float(pred.value[0]) / truth - 1))
        assert fit.n_points == int(fraction * STEPS) // 40
    assert max(errors) < 0.02 and errors[1] < 0.01


def test_early_stop_decisions():
    run = curve("cosine", seed=5).upto(2400)
    truth = true_loss(run.lr)[-1]  # about 2.518
    clear_loser = early_stop(run, best_final=truth * 0.95, bootstrap=40)
    assert clear_loser.stop and clear_loser.predicted is not None
    contender = early_stop(run, best_final=truth * 1.01, bootstrap=40)
    assert not contender.stop
    # A WSD run still in its stable phase has not annealed: its final drop cannot be predicted yet.
    stable = curve("wsd", seed=6).upto(2400)
    wait = early_stop(stable, best_final=1.0, bootstrap=40)
    assert not wait.stop and "cannot be predicted yet" in wait.reason
    assert not early_stop(run.upto(200), best_final=1.0).stop


def test_curves_from_a_study_rebuild_the_schedule(tmp_path):
    from sweeper.law_inputs import loss_curves
    from sweeper.store import ResultStore

    store = ResultStore(tmp_path, "curves")
    lr = schedule("cosine")
    loss = true_loss(lr)
    now = dt.datetime.now(dt.timezone.utc)
    for i, step in enumerate(range(100, STEPS + 1, 100)):
        store.append({"trial_id": "a", "row_kind": "report", "status": "running", "attempt": 0, "report_index": i,
                      "step": step, "tokens": step * 4096, "time": now, "m.loss": float(loss[step - 1]),
                      "m.lr": float(lr[step - 1])})
    store.flush()
    (cv,) = loss_curves(tmp_path, "m.loss")
    assert cv.lr.size == STEPS and cv.run == "a"
    assert np.abs(cv.lr[WARMUP:] - lr[WARMUP:]).max() < 1e-5
    fit = fit_annealing(cv, bootstrap=0)
    # The log starts at step 100, so the warmup is rebuilt as flat: S1 is slightly off early on.
    assert fit.params["C"] == pytest.approx(TRUE[3], rel=0.1)
    assert fit.predict(cv.lr, [STEPS])[0] == pytest.approx(loss[-1], rel=1e-3)
    assert schedule_from_log([1, 3], [1.0, 3.0], 4).tolist() == [1.0, 2.0, 3.0, 3.0]
    with pytest.raises(UserError, match="m.lr2: no such column"):
        loss_curves(tmp_path, "m.loss", lr="m.lr2")
