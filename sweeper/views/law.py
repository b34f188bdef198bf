"""What ``sweeper fit law`` prints: parameters, intervals, compute-optimal allocation, backtest."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_law_fit(fit: Any, output: str | None, plots: list[Path]) -> None:
    """The fitted law's parameters with their intervals, its compute-optimal allocation (Chinchilla form)
    and its holdout backtest, as ``sweeper fit law`` prints them."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from sweeper.laws.select import window_note

    console = Console()
    print(f"{fit.law} law: {fit.form}")
    table = Table()
    table.add_column("param")
    table.add_column("value", justify="right")
    table.add_column(f"{fit.level:.0%} interval", justify="right")
    intervals = fit.intervals
    for name, value in fit.params.items():
        lo_hi = intervals.get(name)
        table.add_row(name, f"{value:.5g}", f"[{lo_hi[0]:.5g}, {lo_hi[1]:.5g}]" if lo_hi else "-")
    console.print(table)
    info = fit.info
    print(f"{fit.n_points} points from {fit.n_runs} runs ({fit.data.get('source')}); Huber objective "
                  f"{fit.objective:.6g}; fit {info.get('fit_s', 0):.2f} s ({info.get('starts_at_optimum')}/"
                  f"{info.get('starts')} starts at the optimum), bootstrap {fit.bootstrap.get('replicates')} x "
                  f"{fit.bootstrap.get('by')} {info.get('bootstrap_s', 0):.2f} s")
    auto = fit.info.get("auto")
    if auto:
        scores = "  ".join(f"{name} {v['mean_abs_rel_error']:.2%}" if v["mean_abs_rel_error"] is not None
                           else f"{name} -" for name, v in auto["scores"].items())
        print(f"law chosen by backtest (mean |rel err| predicting the {' and '.join(map(str, auto['holdouts']))} "
              f"largest {auto['holdout_by']} levels from the rest): {scores} -> {auto['chosen']}")
        choice = auto.get("choice") or {}
        if choice.get("points") and choice.get("nested", True):
            print(f"the choice itself backtested (each training part choosing its own form): "
                  f"{choice['mean_abs_rel_error']:.2%} mean |rel err| on {choice['points']} points")
        elif choice.get("points"):
            print("too few levels to backtest the choice itself: its misfit is from the chosen form's own "
                  "backtests, which it won on")
        window = info.get("window")
        if window:
            print(f"fit window: {window_note(window)} left out (the smallest {window['share']:.0%} of the levels; "
                  f"the bootstrap draws from every run)")
        if fit.misfit:
            print(_misfit_line(fit.misfit, "its"))
    if fit.law in ("chinchilla", "overtrain"):
        _, _, _, alpha, beta = fit.nd_vector()
        s = alpha + beta
        budgets = np.array([1e21, 1e23, 1e25])
        opt = fit.compute_optimal(budgets)
        print(f"compute-optimal (C = {fit.flops_per_token_param:g} N D): N* ~ C^{beta / s:.3f}, "
                      f"D* ~ C^{alpha / s:.3f}")
        tpp = opt["tokens_per_param"]
        for i, c in enumerate(budgets):
            band = f" [{tpp.lo[i]:.3g}, {tpp.hi[i]:.3g}]" if np.isfinite(tpp.lo[i]) else ""
            print(f"  C = {c:.0e}: N* {opt['n'].value[i]:.3g}, D* {opt['d'].value[i]:.3g}, "
                  f"D/N {tpp.value[i]:.3g}{band}, L* {opt['loss'].value[i]:.4g}")
    if fit.holdout:
        h = fit.holdout
        held = h["held_out"]
        cov = h["predictive_coverage"]
        print(f"holdout: without the {held['count']} largest {held['by']} level(s) "
                      f"({held['from']:.3g}..{held['to']:.3g}, {held['extrapolation']:.3g}x beyond the fit's "
                      f"largest): {h['n_test']} points, mean |rel err| {h['mean_abs_rel_error']:.2%}, "
                      f"max {h['max_abs_rel_error']:.2%}, bias {h['mean_rel_error']:+.2%}"
                      + (f"; {cov:.0%} inside the predicted range of a run" if cov is not None else ""))
    for path in [*([output] if output else []), *plots]:
        print(f"wrote {path}")


def print_component_fit(fit: Any, output: str | None) -> None:
    """A fit of one law per component (``sweeper fit law --components``): the sum, each component's law and
    parameters, and the backtests of the sum against the loss fitted alone."""
    print(f"one law per component: {fit.form}")
    for name, part in fit.fits.items():
        params = ", ".join(f"{k} {v:.4g}" for k, v in part.params.items())
        print(f"  {name} (weight {fit.weights[name]:g}): {part.law} law, {params}")
    print(fit.backtest_summary())
    if fit.misfit:
        print(_misfit_line(fit.misfit, "the sum's"))
    print(f"{fit.n_points} points from {fit.n_runs} runs; {fit.level:.0%} intervals: `sweeper predict law "
          f"{output or 'FIT.json'} --n N --d D`" + ("" if output else " (write it with -o)"))


def _misfit_line(misfit: dict[str, Any], whose: str) -> str:
    """How a fit's backtest extrapolation error widens its intervals, in words."""
    return (f"  {whose} extrapolation error, {misfit.get('floor', 0.0):.3f} in log loss just beyond {misfit['by']} "
            f"{misfit['fitted_max']:.3g} and growing by {misfit['rate']:.3f} per unit of log {misfit['by']}, "
            "widens every interval beyond the data")
