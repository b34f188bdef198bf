"""Figures of a fitted law (matplotlib, Agg, PNG).

- :func:`plot_fit`: loss against compute, points coloured by model size, the law for every size, the
  compute-optimal frontier (Chinchilla) or the law (power) with its bootstrap band, extended to the
  prediction target if one is given.
- :func:`plot_isoflops`: isoFLOP slices of the Chinchilla law: loss against N at fixed compute, with the
  band, N*(C) marked, and the points measured near each budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sweeper.laws.data import LawData, distinct_levels
from sweeper.laws.power import ND_LAWS, LawFit, allocation, evaluate_law, percentile_interval


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(fit: LawFit, fn: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if fit.samples is None or len(fit.samples) == 0:
        return None
    return percentile_interval(np.stack([fn(s) for s in fit.samples]), fit.level)


def _compute(fit: LawFit, data: LawData) -> np.ndarray:
    if data.c is not None:
        return data.c
    return fit.flops_per_token_param * data.get("n") * data.get("d")


def plot_fit(fit: LawFit, data: LawData, path: str | Path, target: dict[str, float] | None = None,
             max_lines: int = 12) -> Path:
    """Loss against compute (or the power law's variable), coloured by model size, with the fit and band.

    ``target``: where a prediction is made (keys ``n``, ``d``, ``c``); it is marked with its interval and
    the curves are extended to it.
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    k = fit.flops_per_token_param
    fig, ax = plt.subplots(figsize=(7.5, 5))
    xvar = "c" if fit.law in ND_LAWS else {"flops": "c", "tokens": "d", "n": "n"}[fit.x or "flops"]
    xs = _compute(fit, data) if xvar == "c" else data.get(xvar)
    tx = None
    if target:
        tx = float(np.ravel(np.asarray(_target_x(fit, target, xvar), dtype=float))[0])
    x_hi = max(xs.max() * 30.0, (tx or 0) * 2.0)  # show how the band widens beyond the data
    grid = np.geomspace(xs.min() / 1.5, x_hi, 200)
    norm = LogNorm(data.n.min(), data.n.max()) if data.n is not None and np.ptp(data.n) > 0 else None
    cmap = plt.get_cmap("viridis")
    scatter = ax.scatter(xs, data.loss, c=data.n if norm else "tab:blue", cmap=cmap if norm else None,
                         norm=norm, s=18, edgecolors="none", alpha=0.85, zorder=3, label="runs")
    if norm is not None:
        fig.colorbar(scatter, ax=ax, label="N (parameters)")
    if fit.law in ND_LAWS:
        levels = distinct_levels(data.n)
        chosen = np.unique(np.linspace(0, levels.max(), min(max_lines, levels.max() + 1)).round().astype(int))
        for lv in chosen:
            n = float(np.exp(np.log(data.n[levels == lv]).mean()))
            cs = xs[levels == lv]
            cgrid = np.geomspace(cs.min() / 1.5, cs.max() * 1.5, 60)
            ax.plot(cgrid, fit.predict(n=n, d=cgrid / (k * n)), color=cmap(norm(n)), lw=1, alpha=0.7)
        frontier = allocation(fit.nd_vector(), grid, k)["loss"]
        ax.plot(grid, frontier, "k--", lw=1.5, label="compute-optimal L*(C)")
        band = _band(fit, lambda s: allocation(fit.nd_vector(s), grid, k)["loss"])
        ax.set_xlabel(f"compute C (FLOPs{'' if data.c is not None else f', {k:g}ND'})")
    else:
        ax.plot(grid, evaluate_law("power", fit.vector, [grid]), "k-", lw=1.5, label=fit.form)
        band = _band(fit, lambda s: evaluate_law("power", s, [grid]))
        ax.set_xlabel({"c": "compute C (FLOPs)", "d": "tokens D", "n": "parameters N"}[xvar])
    if band is not None:
        ax.fill_between(grid, band[0], band[1], color="0.5", alpha=0.25, lw=0,
                        label=f"{fit.level:.0%} bootstrap band")
    if target:
        pred = fit.prediction(**target)
        value, lo, hi = (float(np.ravel(v)[0]) for v in (pred.value, pred.lo, pred.hi))
        yerr = None if not np.isfinite(lo) else [[value - lo], [hi - value]]
        ax.errorbar([tx], [value], yerr=yerr, fmt="*", color="crimson", ms=12, capsize=4, zorder=4,
                    label=f"prediction {value:.4g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_ylabel(_loss_label(data))
    ax.set_title(f"{fit.law}: {fit.form}")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def _target_x(fit: LawFit, target: dict[str, float], xvar: str) -> float:
    n, d, c = (target.get(key) for key in ("n", "d", "c"))
    k = fit.flops_per_token_param
    if xvar == "c":
        if c is None and n is None and d is None:
            raise ValueError("empty target")
        return c if c is not None else k * n * d
    if fit.law in ND_LAWS:
        return k * n * d
    return fit.inputs(n, d, c)[0]


def plot_isoflops(fit: LawFit, data: LawData, path: str | Path, budgets: list[float] | None = None,
                  count: int = 6) -> Path:
    """IsoFLOP slices of a Chinchilla fit: loss against N at several fixed compute budgets."""
    if fit.law not in ND_LAWS:
        raise ValueError("isoFLOP slices need a law in N and D")
    plt = _pyplot()
    k = fit.flops_per_token_param
    cs = _compute(fit, data)
    if budgets is None:
        budgets = _budgets(cs, count)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    cmap = plt.get_cmap("plasma")
    for i, c in enumerate(budgets):
        color = cmap(i / max(1, len(budgets) - 1) * 0.85)
        opt = allocation(fit.nd_vector(), np.asarray(c), k)
        n_star = float(opt["n"])
        near = np.abs(np.log(cs / c)) < 0.1
        # Around N*, within a decade of the sizes measured, and over every run near this budget.
        lo_n = max(n_star / 30, data.n.min() / 10)
        hi_n = min(n_star * 30, data.n.max() * 10)
        if near.any():
            lo_n, hi_n = min(lo_n, data.n[near].min() / 1.5), max(hi_n, data.n[near].max() * 1.5)
        ns = np.geomspace(lo_n, hi_n, 120)
        ax.plot(ns, fit.predict(n=ns, d=c / (k * ns)), color=color, lw=1.5, label=f"C = {c:.2g}")
        band = _band(fit, lambda s, ns=ns, c=c: evaluate_law(fit.law, s, [ns, c / (k * ns)], k))
        if band is not None:
            ax.fill_between(ns, band[0], band[1], color=color, alpha=0.15, lw=0)
        ax.plot([n_star], [float(opt["loss"])], "o", color=color, ms=6, mec="k")
        if near.any():
            ax.scatter(data.n[near], data.loss[near], color=color, s=16, edgecolors="k", linewidths=0.3, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel(_loss_label(data))
    ax.set_title("isoFLOP slices (dots: N*(C); points: runs within 10% of C)")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _budgets(cs: np.ndarray, count: int) -> list[float]:
    """The most populated compute budgets (within 10%), or log-spaced budgets over the data's range."""
    levels = distinct_levels(cs, rtol=0.1)
    sizes = np.bincount(levels)
    busy = np.flatnonzero(sizes >= 3)
    if len(busy) >= 2:
        pick = busy[np.argsort(-sizes[busy], kind="stable")[:count]]
        return sorted(float(np.exp(np.log(cs[levels == lv]).mean())) for lv in pick)
    return list(np.geomspace(*np.quantile(cs, [0.1, 0.9]), count))


def _loss_label(data: LawData) -> str:
    name = data.columns.get("loss", "loss")
    return "loss" if name == "loss" else f"loss ({name})"


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
