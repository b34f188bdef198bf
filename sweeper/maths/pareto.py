"""Pareto fronts and hypervolume of (cost, metric) points: cheaper is better, the metric per `mode`."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Mode = Literal["min", "max"]


def _oriented(metric: ArrayLike, mode: Mode) -> np.ndarray:
    """The metric turned so that smaller is better."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    values = np.asarray(metric, dtype=float)
    return values if mode == "min" else -values


def pareto_front(
    cost: ArrayLike, metric: ArrayLike, *, mode: Mode = "min", min_cost_quantile: float = 0.0
) -> np.ndarray:
    """Indices of the non-dominated points, sorted by increasing cost (and improving metric).

    A point is on the front when no other point is at most as costly and strictly better. Ties in cost
    keep the better point; exact duplicates keep the first. Non-finite points are ignored.

    `min_cost_quantile` > 0 collapses the cheap end as CARBS does: every point cheaper than that quantile
    of all costs is treated as costing the quantile, so only the best of them joins the front. This keeps
    a search from spending itself on the cheapest, least informative corner.
    """
    c = np.asarray(cost, dtype=float)
    m = _oriented(metric, mode)
    if c.shape != m.shape or c.ndim != 1:
        raise ValueError(f"cost and metric: expected two 1-D arrays of one length, got {c.shape} and {m.shape}")
    finite = np.flatnonzero(np.isfinite(c) & np.isfinite(m))
    if finite.size == 0:
        return finite
    c, m = c[finite], m[finite]
    if min_cost_quantile > 0.0:
        c = np.maximum(c, np.quantile(c, min_cost_quantile))
    order = np.lexsort((np.arange(c.size), m, c))  # by cost, then metric, then first seen
    m_sorted = m[order]
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(m_sorted)[:-1]))
    return finite[order[m_sorted < best_before]]


def hypervolume(
    cost: ArrayLike,
    metric: ArrayLike,
    reference: tuple[float, float],
    *,
    mode: Mode = "min",
    log_cost: bool = True,
) -> float:
    """Area dominated by the points and bounded by `reference` = (cost, metric), in the (cost, metric) plane.

    With `log_cost` (the default) the cost axis is log10(cost), so each decade of cost weighs the same;
    costs and the reference cost must then be positive. Points at or beyond the reference add nothing.
    Larger is better: a front that is cheaper or better anywhere covers more area.
    """
    ref_c, ref_m = float(reference[0]), float(_oriented([reference[1]], mode)[0])
    c = np.asarray(cost, dtype=float)
    m = _oriented(metric, mode)
    keep = np.isfinite(c) & np.isfinite(m) & (c < ref_c) & (m < ref_m)
    if log_cost:
        if ref_c <= 0 or np.any(c[keep] <= 0):
            raise ValueError("hypervolume with log_cost needs positive costs and a positive reference cost")
        c, ref_c = np.log10(np.where(keep, c, 1.0)), float(np.log10(ref_c))
    c, m = c[keep], m[keep]
    if c.size == 0:
        return 0.0
    front = pareto_front(c, m, mode="min")
    c, m = c[front], m[front]
    widths = np.diff(np.append(c, ref_c))
    return float(np.sum(widths * (ref_m - m)))
