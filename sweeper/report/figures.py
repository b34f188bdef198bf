"""The report's charts, each a Plotly figure built from plain DataFrames and dicts (no folder access here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

GREY = "rgba(120,120,120,0.35)"
BEST = "#d62728"
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 50}, "height": 420}
X_AXES = {"step": "step", "tokens": "tokens", "flops": "FLOPs"}


def _label(column: str) -> str:
    return column[2:] if column.startswith("m.") else column


def _config_text(row: Mapping[str, Any]) -> str:
    parts = [f"{k[4:]}={v:.4g}" if isinstance(v, float) else f"{k[4:]}={v}"
             for k, v in row.items() if k.startswith(("cfg.", "mix.")) and v is not None]
    return "<br>".join(parts[:12])


def curves(reports: pl.DataFrame, trials: pl.DataFrame, metric: str, best_id: str | None) -> go.Figure:
    """The objective against step, tokens or FLOPs (buttons switch the axis) for every trial; the best one
    drawn in colour and on top, each line's hover naming its trial and config."""
    axes = [x for x in X_AXES if x in reports.columns and reports[x].drop_nulls().len()]
    configs = {r["trial_id"]: _config_text(r) for r in trials.iter_rows(named=True)}
    order = sorted(reports["trial_id"].unique().to_list(), key=lambda t: t == best_id)
    fig = go.Figure()
    columns = {x: [] for x in axes}
    for trial_id in order:
        part = reports.filter(pl.col("trial_id") == trial_id).sort("report_index")
        best = trial_id == best_id
        for x in axes:
            columns[x].append(part[x].to_list())
        fig.add_trace(go.Scatter(
            x=part[axes[0]].to_list(), y=part[metric].to_list(), mode="lines+markers" if best else "lines",
            name=f"{trial_id} (best)" if best else trial_id, showlegend=best,
            line={"color": BEST if best else GREY, "width": 3 if best else 1},
            hovertemplate=f"trial {trial_id}<br>%{{x:.4g}}: %{{y:.4g}}<br>{configs.get(trial_id, '')}<extra></extra>"))
    buttons = [{"label": X_AXES[x], "method": "update", "args": [{"x": columns[x]}, {"xaxis.title.text": X_AXES[x]}]}
               for x in axes]
    fig.update_layout(**LAYOUT, title=f"{_label(metric)} of every trial", xaxis_title=X_AXES[axes[0]],
                      yaxis_title=_label(metric),
                      updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons, "x": 1.0,
                                    "xanchor": "right", "y": 1.15, "yanchor": "top"}] if len(buttons) > 1 else [])
    return fig


def parameters(trials: pl.DataFrame, params: Sequence[str], metric: str, mode: str) -> go.Figure:
    """Parallel coordinates: each finished trial a line through its parameters to the objective (coloured by it)."""
    values = trials[metric].to_numpy()
    dims = [{"label": p.split(".", 1)[1], "values": trials[p].cast(pl.Float64).to_list()} for p in params]
    dims.append({"label": _label(metric), "values": values.tolist()})
    fig = go.Figure(go.Parcoords(
        line={"color": values, "colorscale": "Viridis", "reversescale": mode == "min", "showscale": True,
              "colorbar": {"title": {"text": _label(metric)}}}, dimensions=dims))
    fig.update_layout(**{**LAYOUT, "margin": {"l": 60, "r": 40, "t": 100, "b": 40}},
                      title=f"parameters against {_label(metric)} (drag along an axis to filter)")
    return fig


def importances(names: Sequence[str], values: Sequence[float], metric: str) -> go.Figure:
    """Horizontal bars, the most important parameter on top."""
    order = np.argsort(values)
    fig = go.Figure(go.Bar(x=[values[i] for i in order], y=[names[i] for i in order], orientation="h",
                           marker_color="#1f77b4", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(**{**LAYOUT, "height": 120 + 30 * len(names)},
                      title=f"parameter importance for {_label(metric)} (random-forest permutation, share)",
                      xaxis_title="share of the explained variation")
    return fig


def pareto(trials: pl.DataFrame, front: np.ndarray, cost: str, metric: str) -> go.Figure:
    """Every finished trial's cost against its metric, the Pareto front as a line."""
    texts = [f"trial {r['trial_id']}<br>{_config_text(r)}" for r in trials.iter_rows(named=True)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=trials[cost].to_list(), y=trials[metric].to_list(), mode="markers", name="trials",
                             marker={"color": GREY.replace("0.35", "0.8")}, text=texts,
                             hovertemplate="%{text}<br>cost %{x:.4g}, %{y:.4g}<extra></extra>"))
    on = trials[front.tolist()] if len(front) else trials.head(0)
    fig.add_trace(go.Scatter(x=on[cost].to_list(), y=on[metric].to_list(), mode="lines+markers", name="front",
                             line={"color": BEST, "shape": "hv"}, hoverinfo="skip"))
    fig.update_layout(**LAYOUT, title=f"{_label(metric)} against {cost}: the Pareto front", xaxis_type="log",
                      xaxis_title=cost, yaxis_title=_label(metric))
    return fig


def predicted_vs_measured(frame: pl.DataFrame, target: str) -> go.Figure:
    """The RegMix regression's cross-validated prediction of each proxy against its measured target."""
    lo = min(frame[target].min(), frame["predicted_cv"].min())
    hi = max(frame[target].max(), frame["predicted_cv"].max())
    text = [_config_text(r) for r in frame.iter_rows(named=True)]
    fig = go.Figure([
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"color": GREY, "dash": "dot"}, name="y = x",
                   hoverinfo="skip"),
        go.Scatter(x=frame[target].to_list(), y=frame["predicted_cv"].to_list(), mode="markers", name="proxies",
                   text=text, hovertemplate="measured %{x:.4g}<br>predicted %{y:.4g}<br>%{text}<extra></extra>")])
    fig.update_layout(**LAYOUT, title="RegMix: cross-validated prediction against the measured target",
                      xaxis_title=f"measured {_label(target)}", yaxis_title="predicted (out of fold)")
    return fig


def mixtures(named: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Stacked bars: the weights of the pick and of every baseline."""
    domains = list(dict.fromkeys(d for m in named.values() for d in m))
    names = list(named)
    fig = go.Figure([go.Bar(name=d, x=names, y=[named[n].get(d, 0.0) for n in names],
                            hovertemplate=f"%{{x}}: {d} %{{y:.3f}}<extra></extra>") for d in domains])
    fig.update_layout(**LAYOUT, barmode="stack", title="the pick and the baselines: mixture weights",
                      yaxis_title="weight", yaxis_range=[0, 1])
    return fig


def validation(rows: Sequence[Mapping[str, Any]], metric: str) -> go.Figure:
    """Each validation candidate's mean with its standard error; the pick in colour."""
    names = [r["candidate"] for r in rows]
    fig = go.Figure(go.Bar(
        x=names, y=[r["mean"] for r in rows],
        error_y={"type": "data", "array": [r.get("sem") or 0.0 for r in rows], "visible": True},
        marker_color=[BEST if n == "regmix" else "#1f77b4" for n in names],
        customdata=[[r.get("seeds"), "" if r.get("significant") is None else
                     f"{r['minus_regmix']:+.4f} ± {r['diff_se']:.4f} vs the pick"
                     + (" (significant)" if r["significant"] else " (not significant)")] for r in rows],
        hovertemplate="%{x}: %{y:.4f} (%{customdata[0]} seeds)<br>%{customdata[1]}<extra></extra>"))
    means = [r["mean"] for r in rows]
    pad = (max(means) - min(means)) or abs(means[0]) * 0.01 or 1.0
    fig.update_layout(**LAYOUT, title=f"validation at the larger scale: {_label(metric)}, mean ± standard error",
                      yaxis_range=[min(means) - pad, max(means) + pad], yaxis_title=_label(metric))
    return fig


def law(x: np.ndarray, value: np.ndarray, lo: np.ndarray, hi: np.ndarray, points: pl.DataFrame | None,
        x_title: str, title: str, level: float) -> go.Figure:
    """A fitted law's prediction with its bootstrap band, and the measured points when there are any."""
    fig = go.Figure([
        go.Scatter(x=np.concatenate([x, x[::-1]]).tolist(), y=np.concatenate([hi, lo[::-1]]).tolist(),
                   fill="toself", fillcolor="rgba(214,39,40,0.15)", line={"width": 0}, hoverinfo="skip",
                   name=f"{level:.0%} interval"),
        go.Scatter(x=x.tolist(), y=value.tolist(), mode="lines", line={"color": BEST}, name="law")])
    if points is not None and points.height:
        fig.add_trace(go.Scatter(x=points["x"].to_list(), y=points["loss"].to_list(), mode="markers",
                                 name="measured", marker={"color": "#1f77b4"}))
    fig.update_layout(**LAYOUT, title=title, xaxis_type="log", yaxis_type="log", xaxis_title=x_title,
                      yaxis_title="loss")
    return fig


def decision_frontier(table: pl.DataFrame) -> go.Figure:
    """DataDecide: decision accuracy against compute for every predictor variant, per proxy metric."""
    fig = go.Figure()
    for (metric, predictor), part in table.group_by(["metric", "predictor"], maintain_order=True):
        part = part.sort("compute")
        fig.add_trace(go.Scatter(
            x=part["compute"].to_list(), y=part["decision_accuracy"].to_list(), mode="markers",
            name=f"{predictor} ({_label(metric)})", text=part["sizes"].to_list(),
            hovertemplate="sizes %{text}<br>compute %{x:.3g}<br>accuracy %{y:.1%}<extra></extra>"))
        front = part.filter(pl.col("on_frontier"))
        if front.height:
            fig.add_trace(go.Scatter(x=front["compute"].to_list(), y=front["decision_accuracy"].to_list(),
                                     mode="lines", line={"color": BEST, "width": 1}, showlegend=False,
                                     hoverinfo="skip"))
    fig.update_layout(**LAYOUT, title="DataDecide: decision accuracy against compute", xaxis_type="log",
                      xaxis_title="compute (FLOPs)", yaxis_title="decision accuracy", yaxis_tickformat=".0%")
    return fig


def ladder_validation(table: pl.DataFrame) -> go.Figure:
    """Each validation run: the law's prediction with its interval (made before it trained) and the loss
    it measured."""
    runs = table["run"].to_list()
    pred, lo, hi = table["predicted"].to_numpy(), table["lower"].to_numpy(), table["upper"].to_numpy()
    fig = go.Figure([
        go.Scatter(x=runs, y=pred.tolist(), mode="markers", name="predicted", marker={"size": 12, "color": BEST},
                   error_y={"type": "data", "symmetric": False, "array": (hi - pred).tolist(),
                            "arrayminus": (pred - lo).tolist()}),
        go.Scatter(x=runs, y=table["measured"].to_list(), mode="markers", name="measured",
                   marker={"size": 12, "symbol": "x", "color": "#1f77b4"})])
    fig.update_layout(**LAYOUT, title="the ladder's law against the runs it predicted", yaxis_title="loss")
    return fig
