"""Pareto fronts and hypervolume of (cost, metric) points."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sweeper.maths.pareto import hypervolume, pareto_front


def test_front_of_a_small_set_by_hand():
    cost = [1, 2, 2, 3, 4, 5]
    loss = [5, 4, 3, 3, 1, 2]
    assert pareto_front(cost, loss).tolist() == [0, 2, 4]
    assert pareto_front(cost, [-v for v in loss], mode="max").tolist() == [0, 2, 4]
    assert pareto_front(cost + [float("nan")], loss + [0.0]).tolist() == [0, 2, 4]


def test_cheap_end_pooled_at_a_cost_quantile():
    cost = [1, 2, 3, 10, 20]
    loss = [5, 4, 3.5, 3, 1]
    # The 40% quantile of cost is 2.6: points 0 and 1 are pooled and only the better (1) is kept.
    assert pareto_front(cost, loss, min_cost_quantile=0.4).tolist() == [1, 2, 3, 4]
    assert pareto_front(cost, loss, min_cost_quantile=0.6).tolist() == [2, 3, 4]


def test_hypervolume_by_hand_in_linear_and_log_cost():
    # Staircase: [1, 3) at height 10 - 5, [3, 10) at height 10 - 2.
    assert hypervolume([1, 3, 5], [5, 2, 4], (10, 10), log_cost=False) == pytest.approx(2 * 5 + 7 * 8)
    assert hypervolume([1, 10], [5, 2], (100, 10)) == pytest.approx(1 * 5 + 1 * 8)
    assert hypervolume([200], [1], (100, 10)) == 0.0
    assert hypervolume([1, 10], [-5, -2], (100, -10), mode="max") == pytest.approx(13)


@given(
    st.lists(
        st.tuples(st.floats(0.1, 100, allow_nan=False), st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=40
    )
)
def test_front_points_are_undominated_and_every_other_point_is_dominated(points):
    cost, loss = np.array(points).T
    front = pareto_front(cost, loss)
    assert np.all(np.diff(cost[front]) > 0) and np.all(np.diff(loss[front]) < 0)
    for i in range(len(cost)):
        dominated = np.any((cost <= cost[i]) & (loss <= loss[i]) & ((cost < cost[i]) | (loss < loss[i])))
        duplicate = any(cost[j] == cost[i] and loss[j] == loss[i] for j in front if j != i)
        assert not dominated if i in front else (dominated or duplicate)
    # Adding a dominated point never changes the hypervolume; removing a front point never increases it.
    ref = (1000.0, 10.0)
    hv = hypervolume(cost, loss, ref)
    assert hypervolume(np.append(cost, cost.max() + 1), np.append(loss, loss.max() + 1), ref) == pytest.approx(hv)
    assert hypervolume(np.delete(cost, front[0]), np.delete(loss, front[0]), ref) <= hv + 1e-12
