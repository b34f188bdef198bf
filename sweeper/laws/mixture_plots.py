"""Figures for a RegMix fit: predicted against measured target, and the picked mixture against baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

COLORS = ("#c3364a", "#5969cb", "#e0a030", "#3a9a6a", "#8a5cc2", "#6b6b6b", "#2aa5c9", "#d9739e")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_predicted_vs_measured(path: str | Path, sets: Sequence[tuple[str, np.ndarray, np.ndarray]], *,
                               target: str, title: str | None = None) -> Path:
    """Scatter of predicted (x) against measured (y) target, one colour per ``(label, measured, predicted)``
    set (e.g. cross-validated proxies and held-out mixtures), with the identity line. Labels should carry
    the set's Spearman rho. Returns the PNG path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 5.5), layout="constrained")
    lo, hi = np.inf, -np.inf
    for i, (label, measured, predicted) in enumerate(sets):
        measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
        ax.scatter(predicted, measured, s=14, alpha=0.7, color=COLORS[i % len(COLORS)], label=label,
                   edgecolors="none")
        if measured.size:
            lo = min(lo, measured.min(), predicted.min())
            hi = max(hi, measured.max(), predicted.max())
    if np.isfinite(lo):
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--", label="predicted = measured")
    ax.set_xlabel(f"predicted {target}")
    ax.set_ylabel(f"measured {target}")
    ax.set_title(title or f"RegMix fit: {target}")
    ax.grid(True, ls=":", alpha=0.6)
    ax.legend(loc="upper left", fontsize=8, frameon=True)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_mixtures(path: str | Path, mixtures: Mapping[str, Mapping[str, float]], *,
                  title: str = "Mixture weights", notes: Mapping[str, str] | None = None) -> Path:
    """Grouped horizontal bars: the weight of each domain in each named mixture (e.g. the RegMix pick,
    uniform, the prior, the best proxy). ``notes`` adds text to a mixture's legend entry (e.g. its
    predicted target). Domains are ordered by the first mixture's weights. Returns the PNG path."""
    plt = _pyplot()
    names = list(mixtures)
    domains = list(next(iter(mixtures.values()))) if names else []
    first = mixtures[names[0]] if names else {}
    domains.sort(key=lambda d: -first.get(d, 0.0))
    notes = notes or {}
    height = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * len(domains) * max(1.0, len(names) / 3)),
                           layout="constrained")
    y = np.arange(len(domains))
    for i, name in enumerate(names):
        values = [mixtures[name].get(d, 0.0) for d in domains]
        label = f"{name} ({notes[name]})" if name in notes else name
        ax.barh(y + (i - (len(names) - 1) / 2) * height, values, height=height, color=COLORS[i % len(COLORS)],
                label=label)
    ax.set_yticks(y, domains)
    ax.invert_yaxis()
    ax.set_xlabel("weight")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.grid(True, axis="x", ls=":", alpha=0.6)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
