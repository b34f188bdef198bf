"""Loading law points from a study's Parquet rows (written by the real store) and from tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from sweeper.errors import UserError
from sweeper.law_inputs import law_points, table_points
from sweeper.laws.data import distinct_levels, drop_highest, split_largest
from sweeper.store import ResultStore


def _loss(n: float, d: float) -> float:
    return 1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28


def write_study(path, sizes=(1e6, 4e6, 1.6e7), budgets=(2e7, 8e7, 3.2e8), steps=5, nan_trials=(), status=None):
    """A study folder as the engine leaves it: report rows per step and one summary row per trial."""
    store = ResultStore(path, "ladder")
    now = dt.datetime.now(dt.timezone.utc)
    t = 0
    for n in sizes:
        for d_total in budgets:
            trial = f"t{t:03d}"
            last = {}
            for s in range(1, steps + 1):
                d = d_total * s / steps
                loss = float("nan") if t in nan_trials and s == steps else _loss(n, d)
                last = {"step": s, "tokens": int(d), "flops": 6.0 * n * d, "m.loss": loss}
                store.append({"trial_id": trial, "row_kind": "report", "status": "running", "attempt": 0,
                              "report_index": s - 1, "seed": 0, "time": now, "cfg.n_params": n, **last})
            store.append({"trial_id": trial, "row_kind": "summary", "status": (status or {}).get(t, "done"),
                          "attempt": 0, "report_index": steps, "seed": 0, "time": now, "cfg.n_params": n, **last})
            t += 1
    store.flush()
    return path


def test_final_losses_of_finished_trials(tmp_path):
    write_study(tmp_path, status={0: "error", 1: "pruned"})
    data = law_points(tmp_path, "m.loss")
    assert len(data) == 7 and data.n_runs == 7
    assert np.allclose(data.c, 6 * data.n * data.d, rtol=1e-6)
    assert np.allclose(data.loss, [_loss(n, d) for n, d in zip(data.n, data.d, strict=True)], rtol=1e-6)
    assert data.columns["n"] == "cfg.n_params"


def test_intermediate_checkpoints_keep_their_run(tmp_path):
    write_study(tmp_path, status={0: "error", 1: "pruned"})
    data = law_points(tmp_path, "m.loss", intermediate=True, min_fraction=0.3)
    # 8 trials (done or pruned) x the 4 checkpoints at >= 30% of their tokens.
    assert len(data) == 32 and data.n_runs == 8
    assert set(np.unique(data.run, return_counts=True)[1]) == {4}


def test_a_size_reported_once_per_run_is_spread_over_its_checkpoints(tmp_path):
    store = ResultStore(tmp_path, "tiny")
    now = dt.datetime.now(dt.timezone.utc)
    for t, n in enumerate((1e5, 2e5, 4e5)):
        for s in range(1, 4):
            store.append({"trial_id": f"t{t}", "row_kind": "report", "status": "running", "attempt": 0,
                          "report_index": s - 1, "step": s, "tokens": s * 1000, "flops": 6.0 * n * s * 1000,
                          "time": now, "m.loss": 3.0 - 0.1 * s, **({"m.n_params": n} if s == 1 else {})})
        store.append({"trial_id": f"t{t}", "row_kind": "summary", "status": "done", "attempt": 0, "report_index": 3,
                      "step": 3, "tokens": 3000, "flops": 1.8e4 * n, "time": now, "m.loss": 2.7})
    store.flush()
    inter = law_points(tmp_path, "m.loss", n="m.n_params", intermediate=True)
    assert len(inter) == 9 and sorted(set(inter.n)) == [1e5, 2e5, 4e5]
    final = law_points(tmp_path, "m.loss", n="m.n_params")
    assert final.n.tolist() == [1e5, 2e5, 4e5]


def test_nan_losses_are_dropped_with_a_warning_that_counts_them(tmp_path):
    write_study(tmp_path, nan_trials=(2, 5))
    with pytest.warns(UserWarning, match="dropped 2 of 9 points"):
        data = law_points(tmp_path, "m.loss")
    assert len(data) == 7


def test_bad_columns_and_values_are_user_errors(tmp_path):
    write_study(tmp_path)
    with pytest.raises(UserError, match="m.acc: no such column; metrics: m.loss"):
        law_points(tmp_path, "m.acc")
    with pytest.raises(UserError, match="not a study results folder"):
        law_points(tmp_path / "missing", "m.loss")
    data = law_points(tmp_path, "m.loss", n="cfg.width")
    with pytest.raises(UserError, match="cfg.width: no such column, so no values for N.*--n COL"):
        data.get("n")
    table = tmp_path / "t.csv"
    pl.DataFrame({"N": [1e6, -1.0, 3e6], "C": [1e15, 2e15, 3e15], "loss": [3.0, 2.9, 2.8]}).write_csv(table)
    with pytest.raises(UserError, match="N: N \\(parameters\\) must be positive"):
        table_points(table, "loss", n="N", c="C")
    pl.DataFrame({"N": [1e6, 2e6], "D": [1e8, 2e8], "loss": [3.0, 0.0]}).write_csv(table)
    with pytest.raises(UserError, match="losses must be positive"):
        table_points(table, "loss", n="N", d="D")


def test_tables_derive_tokens_from_compute(tmp_path):
    frame = pl.DataFrame({"N": [1e6, 2e6, 4e6], "C": [6e14, 2.4e15, 9.6e15], "loss": [3.0, None, 2.5]})
    frame.write_parquet(tmp_path / "t.parquet")
    with pytest.warns(UserWarning, match="dropped 1 of 3"):
        data = table_points(tmp_path / "t.parquet", "loss", n="N", c="C")
    assert data.d == pytest.approx([1e8, 4e8])
    with pytest.raises(UserError, match="name at least one of --n, --d, --c"):
        table_points(tmp_path / "t.parquet", "loss")


def test_levels_holdout_and_outliers():
    sizes = np.array([1e6, 1.0000001e6, 2e6, 4e6, 4.0000002e6, 8e6])
    assert distinct_levels(sizes).tolist() == [0, 0, 1, 2, 2, 3]
    from sweeper.laws.data import LawData

    data = LawData(loss=np.array([5.0, 4.0, 3.5, 3.0, 3.1, 2.8]), n=sizes, d=sizes * 20)
    train, test = split_largest(data, "n", 2)
    assert len(test) == 3 and test.n.min() == 4e6 and len(train) == 3
    with pytest.raises(UserError, match="4 distinct values"):
        split_largest(data, "n", 4)
    assert drop_highest(data, 1).loss.max() == 4.0
