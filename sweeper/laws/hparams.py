"""Hyperparameter scaling laws: along the Pareto front of (cost, metric), each hyperparameter as a power law.

CARBS ("Tune As You Scale", Fetterman et al. 2023) reads scaling laws off a cost-aware search: the
configurations on the front are the best found at each cost, so how a hyperparameter moves along the
front is how it should scale with compute. Each numeric hyperparameter h is fitted as

    h(C) = coefficient * C ** exponent      (ordinary least squares of log h on log C)

with a 95% interval on the exponent from the t distribution of the slope. With the front of a search over
model size N and tokens D under C = 6 N D, the exponents of N and D are Chinchilla's a and b.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sweeper.errors import ParameterError, UserError
from sweeper.maths.pareto import Mode, pareto_front

CFG = "cfg."
SKIPPED_PARAMS = ("seed",)


@dataclass(frozen=True)
class HparamLaw:
    """h(C) = coefficient * C ** exponent for one hyperparameter along the front."""

    name: str
    coefficient: float
    exponent: float
    exponent_ci: tuple[float, float]
    r2: float
    n_points: int
    cost_range: tuple[float, float]

    def predict(self, cost: Any) -> np.ndarray:
        """The hyperparameter the law gives at `cost` (scalar or array)."""
        return self.coefficient * np.asarray(cost, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_column(trials: pl.DataFrame, name: str, what: str, prefix: str = "m.") -> str:
    """`name` if it is a column, else `prefix + name` (so `--metric loss` finds `m.loss`)."""
    for candidate in (name, prefix + name):
        if candidate in trials.columns:
            return candidate
    numeric = [c for c, t in trials.schema.items() if t.is_numeric()]
    raise UserError(f"--{what}: {name}: no such column; numeric columns are {numeric}")


def front_trials(
    trials: pl.DataFrame,
    *,
    metric: str = "m.loss",
    cost: str = "cost",
    mode: Mode = "min",
    statuses: Sequence[str] | None = ("done",),
) -> pl.DataFrame:
    """The trials on the (cost, metric) Pareto front, by increasing cost.

    Only trials whose `status` is in `statuses` count (by default finished ones: a trial a scheduler
    stopped early did not run its configuration to the end, so its cost and settings do not match).
    """
    metric = resolve_column(trials, metric, "metric")
    cost = resolve_column(trials, cost, "cost", prefix="")
    rows = trials
    if statuses is not None and "status" in trials.columns:
        rows = rows.filter(pl.col("status").is_in(list(statuses)))
    rows = rows.filter(pl.col(metric).is_finite() & pl.col(cost).is_finite() & (pl.col(cost) > 0))
    front = pareto_front(rows[cost].to_numpy(), rows[metric].to_numpy(), mode=mode)
    return rows[front.tolist()]


def fittable_params(front: pl.DataFrame) -> dict[str, str]:
    """Every `cfg.*` column of the front with the reason it cannot be fitted, or "" when it can."""
    reasons: dict[str, str] = {}
    for column, dtype in front.schema.items():
        if not column.startswith(CFG):
            continue
        name = column[len(CFG) :]
        values = front[column].drop_nulls()
        if name in SKIPPED_PARAMS:
            reasons[name] = "not a hyperparameter"
        elif not dtype.is_numeric() or dtype == pl.Boolean:
            reasons[name] = "not numeric"
        elif values.len() < len(front):
            reasons[name] = "missing on part of the front"
        elif (values <= 0).any():
            reasons[name] = "not positive (a power law needs h > 0)"
        elif values.n_unique() < 2:
            reasons[name] = "constant along the front"
        else:
            reasons[name] = ""
    return reasons


def fit_power_law(name: str, cost: np.ndarray, values: np.ndarray) -> HparamLaw:
    """Least squares of log(values) on log(cost)."""
    from scipy import stats

    x, y = np.log(np.asarray(cost, dtype=float)), np.log(np.asarray(values, dtype=float))
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        raise UserError(f"{name}: expected at least 3 front points at different costs, got {n}")
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, n - 2) * fit.stderr
    return HparamLaw(
        name=name,
        coefficient=float(math.exp(fit.intercept)),
        exponent=float(fit.slope),
        exponent_ci=(float(fit.slope - half), float(fit.slope + half)),
        r2=float(fit.rvalue**2),
        n_points=n,
        cost_range=(float(np.exp(x.min())), float(np.exp(x.max()))),
    )


def fit_hparam_laws(
    trials: pl.DataFrame,
    *,
    metric: str = "m.loss",
    cost: str = "cost",
    mode: Mode = "min",
    params: Sequence[str] | None = None,
    statuses: Sequence[str] | None = ("done",),
) -> list[HparamLaw]:
    """Fit every numeric, positive hyperparameter that varies along the front (or those named in `params`)
    as a power law in cost. `trials` holds one row per trial: the cost and metric columns and `cfg.<name>`."""
    front = front_trials(trials, metric=metric, cost=cost, mode=mode, statuses=statuses)
    cost_column = resolve_column(trials, cost, "cost", prefix="")
    reasons = fittable_params(front)
    if params is None:
        names = [name for name, reason in reasons.items() if not reason]
    else:
        for name in params:
            if name not in reasons:
                raise ParameterError("params", f"{name}: no column cfg.{name}; the trials have {sorted(reasons)}")
            if reasons[name]:
                raise ParameterError("params", f"{name}: cannot be fitted: {reasons[name]}")
        names = list(params)
    costs = front[cost_column].to_numpy()
    return [fit_power_law(name, costs, front[CFG + name].to_numpy()) for name in names]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_front(trials: pl.DataFrame, front: pl.DataFrame, metric: str, cost: str, path: str | Path) -> Path:
    """Cost (log axis) against the metric: every trial faded behind, the front as a staircase on top."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = trials.filter(pl.col(metric).is_finite() & (pl.col(cost) > 0))
    ax.scatter(rows[cost], rows[metric], s=14, color="0.55", alpha=0.35, linewidths=0, label="all trials")
    ax.step(front[cost], front[metric], where="post", color="C3", linewidth=1.5)
    ax.scatter(front[cost], front[metric], s=28, color="C3", zorder=3, label=f"Pareto front ({len(front)})")
    ax.set_xscale("log")
    ax.set_xlabel(cost)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_laws(front: pl.DataFrame, laws: Sequence[HparamLaw], cost: str, path: str | Path) -> Path:
    """One panel per hyperparameter: its value on the front against cost (log-log) with the fitted law."""
    plt = _pyplot()
    n = max(len(laws), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    c = front[cost].to_numpy()
    grid = np.geomspace(c.min(), c.max(), 50)
    for ax, law in zip(axes[0], laws, strict=False):
        ax.scatter(c, front[CFG + law.name], s=20, color="C0")
        ax.plot(grid, law.predict(grid), color="C3", label=f"∝ C^{law.exponent:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(cost)
        ax.set_title(law.name)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
