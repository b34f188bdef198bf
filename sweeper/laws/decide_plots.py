"""The compute-versus-decision-accuracy figure of a DataDecide analysis: one panel per proxy metric."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

STYLE = {  # predictor -> (marker, colour)
    "single-scale": ("o", "#5969cb"),
    "power law": ("s", "#c3364a"),
    "two-step": ("^", "#e0a030"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(decisions: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Scatter of compute (log) against decision accuracy for every predictor variant, one panel per proxy
    metric: marker by predictor, size by seeds, faded for earlier checkpoints; the single-scale baseline
    (all seeds, final checkpoint, one point per proxy size) as a line, always; the frontier as a step line;
    chance (0.5) dotted. ``decisions`` is a :class:`sweeper.laws.decide.Decisions`. Returns the PNG path."""
    import polars as pl

    from sweeper.laws.decide import baseline_rows

    plt = _pyplot()
    table = decisions.table
    metrics = [m for m in decisions.info["metrics"] if table.filter(pl.col("metric") == m).height]
    n = max(1, len(metrics))
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.6 * rows), squeeze=False, layout="constrained")
    max_seeds = max(1, int(table["seeds"].max())) if table.height else 1
    judged = decisions.info["metric"]
    for ax, metric in zip(axes.flat, metrics, strict=False):
        rows_m = table.filter(pl.col("metric") == metric)
        for predictor, (marker, colour) in STYLE.items():
            part = rows_m.filter(pl.col("predictor") == predictor)
            if part.is_empty():
                continue
            final = part["checkpoint"].to_numpy() >= 1.0
            sizes = 18 + 42 * part["seeds"].to_numpy() / max_seeds
            for mask, alpha, label in ((final, 0.85, predictor), (~final, 0.35, f"{predictor}, earlier checkpoint")):
                if mask.any():
                    ax.scatter(part["compute"].to_numpy()[mask], part["decision_accuracy"].to_numpy()[mask],
                               s=sizes[mask], marker=marker, color=colour, alpha=alpha, edgecolors="none",
                               label=label)
        base = baseline_rows(rows_m)
        if base.height:
            ax.plot(base["compute"], base["decision_accuracy"], color=STYLE["single-scale"][1], lw=1.6,
                    label="single-scale baseline (all seeds, final)")
            for r in base.iter_rows(named=True):
                ax.annotate(r["size"], (r["compute"], r["decision_accuracy"]), textcoords="offset points",
                            xytext=(4, -11), fontsize=7, color=STYLE["single-scale"][1])
        front = rows_m.filter(pl.col("on_frontier")).sort("compute")
        if front.height:
            ax.step(front["compute"], front["decision_accuracy"], where="post", color="0.15", lw=1.0, ls="--",
                    label="frontier")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"compute of the predictor ({decisions.info.get('compute_unit', 'FLOPs')}, all recipes)")
        ax.set_ylabel("decision accuracy")
        what = "judged metric" if metric == judged else f"proxy for {judged}"
        ax.set_title(f"{metric} ({what})", fontsize=10)
        ax.grid(True, ls=":", alpha=0.6)
        ax.legend(loc="best", fontsize=7, frameon=True, framealpha=0.8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(title or f"Decision accuracy at target size {decisions.info['target_size']!r} "
                 f"({len(decisions.info['recipes'])} recipes, {decisions.info['pairs']} pairs)", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
