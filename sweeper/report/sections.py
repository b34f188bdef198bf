"""The report's sections, each read from what the results folder holds; a section without data says so."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sweeper.fmt import fmt_duration, fmt_num
from sweeper.report import figures
from sweeper.results import StudyResults


@dataclass
class Section:
    """A titled part of the page: paragraphs, tables (HTML) and charts (Plotly figures)."""

    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    charts: list[Any] = field(default_factory=list)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt_num(v) if not isinstance(v, str) else v)}</td>"
                                     for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numeric_finite(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.with_columns(pl.col(column).cast(pl.Float64, strict=False)).filter(
        pl.col(column).is_not_null() & pl.col(column).is_finite())


def best_trial(trials: pl.DataFrame, metric: str, mode: str) -> dict[str, Any] | None:
    """The finished or pruned trial with the best finite ``metric`` (its summary row), None when none has one."""
    if metric not in trials.columns:
        return None
    ranked = _numeric_finite(trials.filter(pl.col("status").is_in(["done", "pruned"])), metric)
    return ranked.sort(metric, descending=mode == "max").row(0, named=True) if ranked.height else None


def overview(results: StudyResults, trials: pl.DataFrame, metric: str, mode: str,
             best: dict[str, Any] | None) -> Section:
    """Status counts, the best trial and its config, the cost and time spent, the failures."""
    section = Section("study", "The study")
    study = results.study
    spent = results.attempts()  # every phase and attempt: what the study cost
    everything = results.trials()
    phases = dict(everything.group_by("phase").len().sort("phase").iter_rows()) if everything.height else {}
    counts = dict(trials.group_by("status").len().sort("status").iter_rows()) if trials.height else {}
    section.paragraphs.append(
        f"{html.escape(study.name if study else results.folder.name)}: {trials.height} trial"
        f"{'s' if trials.height != 1 else ''} "
        f"({', '.join(f'{v} {html.escape(k)}' for k, v in counts.items()) or 'none finished yet'}); objective "
        f"{html.escape(metric)} ({'lower' if mode == 'min' else 'higher'} is better)."
        + (" Other phases: " + ", ".join(f"{html.escape(str(k))} {v} trials" for k, v in phases.items()
                                         if k not in (None, "search")) + "." if len(phases) > 1 else ""))
    if study is not None and study.description:
        section.paragraphs.append(html.escape(study.description))
    section.tables.append(_table(["spent (all phases)", "value"], [
        ["cost", float(spent["cost"].sum() or 0.0) if spent.height else 0.0],
        ["FLOPs", float(spent["flops"].sum() or 0.0) if spent.height else 0.0],
        ["trial wall time", fmt_duration(float(spent["wall_s"].sum() or 0.0) if spent.height else 0.0)],
        ["attempts", spent.height]]))
    if best is not None:
        config = [[k, v] for k, v in best.items() if k.startswith(("cfg.", "mix.")) and v is not None]
        section.paragraphs.append(f"Best trial {html.escape(best['trial_id'])}: {html.escape(metric)} = "
                                  f"{best[metric]:.6g}.")
        section.tables.append(_table(["parameter", "value"], config))
    failed = trials.filter(pl.col("status") == "error")
    if failed.height:
        section.tables.append(_table(["failed trial", "error"], [[r["trial_id"], (r["error"] or "")[:300]]
                                                                 for r in failed.iter_rows(named=True)]))
    return section


def curves(results: StudyResults, trials: pl.DataFrame, metric: str, best_id: str | None) -> Section:
    section = Section("curves", "Curves of every trial")
    reports = results.reports("search")
    if metric not in reports.columns or not reports.height:
        section.paragraphs.append(f"No reports of {html.escape(metric)} yet.")
        return section
    section.charts.append(figures.curves(_numeric_finite(reports, metric), trials, metric, best_id))
    return section


def parameters(trials: pl.DataFrame, metric: str, mode: str) -> Section:
    """Parallel coordinates and random-forest permutation importances of the numeric parameters."""
    section = Section("parameters", "Parameters against the objective")
    done = _numeric_finite(trials.filter(pl.col("status") == "done"), metric) if metric in trials.columns \
        else trials.head(0)
    params = [c for c in done.columns if c.startswith(("cfg.", "mix.")) and done[c].dtype.is_numeric()
              and done[c].n_unique() > 1]
    if done.height < 3 or not params:
        section.paragraphs.append("Needs at least 3 finished trials and a parameter that varies.")
        return section
    section.charts.append(figures.parameters(done, params, metric, mode))
    if done.height >= 8:
        names, values = _importances(done, params, metric)
        section.charts.append(figures.importances(names, values, metric))
    return section


def _importances(frame: pl.DataFrame, params: list[str], metric: str) -> tuple[list[str], list[float]]:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    x = frame.select(params).cast(pl.Float64).fill_null(0.0).to_numpy()
    y = frame[metric].to_numpy()
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=0, n_jobs=1).fit(x, y)
    scores = permutation_importance(forest, x, y, n_repeats=10, random_state=0, n_jobs=1).importances_mean
    scores = np.clip(scores, 0.0, None)
    total = scores.sum() or 1.0
    return [p.split(".", 1)[1] for p in params], (scores / total).tolist()


def pareto(results: StudyResults, trials: pl.DataFrame, metric: str, mode: str) -> Section | None:
    """The (cost, metric) front, when the study spends a cost."""
    from sweeper.maths.pareto import pareto_front

    study = results.study
    if study is None or study.search.algo != "cost_aware" and len(study.search.metrics) < 2:
        return None
    section = Section("pareto", "Cost against the objective")
    done = _numeric_finite(_numeric_finite(trials.filter(pl.col("status") == "done"), metric), "cost") \
        if metric in trials.columns else trials.head(0)
    if done.height < 2:
        section.paragraphs.append("Needs at least 2 finished trials.")
        return section
    front = pareto_front(done["cost"].to_numpy(), done[metric].to_numpy(), mode=mode)
    section.charts.append(figures.pareto(done, front, "cost", metric))
    return section


def regmix(folder: Path) -> Section | None:
    """RegMix: predicted against measured, the pick and the baselines, the validation."""
    mixture = folder / "mixture"
    predictions = mixture / "mixture_predictions.csv"
    if not predictions.exists():
        return None
    section = Section("regmix", "RegMix")
    fit = _json(mixture / "mixture_fit.json")
    summary = _json(mixture / "regmix.json")
    frame = pl.read_csv(predictions)
    target = fit.get("target") or next((c for c in frame.columns if c.startswith("m.")), None)
    if fit:
        rho = fit.get("cv_spearman", {}).get(fit.get("model"), float("nan"))
        section.paragraphs.append(
            f"{fit.get('rows')} proxies; regression {html.escape(str(fit.get('model')))} (fitted on "
            f"{html.escape(str(fit.get('transform', 'none')))}), 5-fold cross-validated Spearman rho "
            f"{rho:.3f}." + (f" Signal to noise: {fit['noise']['snr']:.2f}." if fit.get("noise") else ""))
    if target in frame.columns and "predicted_cv" in frame.columns:
        section.charts.append(figures.predicted_vs_measured(frame, target))
    named = summary.get("mixtures") or {k: v["mixture"] for k, v in fit.get("baselines", {}).items()}
    if named:
        section.charts.append(figures.mixtures(named))
    if summary.get("validation"):
        section.charts.append(figures.validation(summary["validation"], target or "target"))
    return section


def laws(folder: Path) -> Section | None:
    """Every saved law fit under ``analysis/`` with its band, and its backtest."""
    from sweeper.errors import UserError
    from sweeper.laws.components import load_fit
    from sweeper.laws.select import window_note

    fits, notes = [], []
    for path in [*sorted((folder / "analysis").glob("*.json")), folder / "laws" / "fit.json"]:
        if not path.is_file():
            continue
        try:
            fit = load_fit(path)
        except (UserError, ValueError, KeyError, TypeError):
            continue
        if fit.law == "components":  # one law per component of the loss: the sum, then each law
            notes.append(_components_note(path.name, fit))
            fits += [(f"{path.name}, {name}", part) for name, part in fit.fits.items()]
        else:
            fits.append((path.name, fit))
    validation = folder / "laws" / "validation.csv"
    if not fits and not validation.exists():
        return None
    section = Section("laws", "Scaling laws")
    section.paragraphs += notes
    for label, fit in fits:
        window = fit.info.get("window") if isinstance(fit.info.get("window"), dict) else None
        left_out = f"; {html.escape(window_note(window))} left out by backtest" if window else ""
        section.paragraphs.append(f"{html.escape(label)}: {html.escape(fit.form)} ({fit.n_points} points, "
                                  f"{fit.n_runs} runs{left_out}).")
        if fit.holdout:
            h = fit.holdout
            section.paragraphs.append(f"Backtest without the {h['held_out']['count']} largest "
                                      f"{html.escape(str(h['held_out']['by']))} level(s): mean |relative error| "
                                      f"{h['mean_abs_rel_error']:.2%} on {h['n_test']} points.")
        chart = _law_chart(fit, _compute_range(folder), label)
        if chart is not None:
            section.charts.append(chart)
    if validation.exists():
        table = pl.read_csv(validation)
        section.paragraphs.append("The ladder's validation: each larger run's loss as the law predicted it before "
                                  "it trained, with its interval, against the loss it reached.")
        # epochs: how many times a run read its training data, where the workload says (older tables lack it)
        epochs = "epochs" in table.columns and table["epochs"].is_not_null().any()
        section.tables.append(_table(["run", "N", "D", "C", *(["epochs"] if epochs else []), "predicted", "interval",
                                      "measured", "error"], [
            [r["run"], r["n_params"], r["tokens"], r["flops"], *([f"{r['epochs']:.2f}"] if epochs else []),
             r["predicted"], f"[{r['lower']:.4g}, {r['upper']:.4g}]",
             r["measured"] if r["measured"] is not None else "-",
             f"{r['rel_error']:+.2%}" if r["rel_error"] is not None else "-"] for r in table.iter_rows(named=True)]))
        section.charts.append(figures.ladder_validation(table))
    parts = folder / "laws" / "validation_components.csv"
    if parts.exists():
        section.paragraphs.append("By component: each component's law against the component's measured loss.")
        section.tables.append(_table(["run", "component", "weight", "predicted", "interval", "measured", "error"], [
            [r["run"], r["component"], r["weight"], r["predicted"], f"[{r['lower']:.4g}, {r['upper']:.4g}]",
             r["measured"] if r["measured"] is not None else "-",
             f"{r['rel_error']:+.2%}" if r["rel_error"] is not None else "-"]
            for r in pl.read_csv(parts).iter_rows(named=True)]))
    downstream = folder / "laws" / "validation_downstream.csv"
    if downstream.exists():
        section.paragraphs.append("The downstream metric (laws.downstream): each larger run's value as predicted "
                                  "before it trained, through the link from the predicted loss, against the value "
                                  "it reached.")
        section.tables.append(_table(["run", "predicted", "interval", "measured", "error", "relative"], [
            [r["run"], f"{r['predicted']:.4g}", f"[{r['lower']:.4g}, {r['upper']:.4g}]",
             f"{r['measured']:.4g}" if r["measured"] is not None else "-",
             f"{r['error']:+.4f}" if r["error"] is not None else "-",
             f"{r['rel_error']:+.2%}" if r["rel_error"] is not None else "-"]
            for r in pl.read_csv(downstream).iter_rows(named=True)]))
    return section


def _components_note(name: str, fit: Any) -> str:
    """What a fit of one law per component predicts, and how its backtests compare with the loss fitted alone."""
    summary = fit.backtest_summary()
    return (f"{html.escape(name)}: the loss predicted as {html.escape(fit.form)}, one law per component. "
            f"{html.escape(summary[:1].upper() + summary[1:])}.")


def _compute_range(folder: Path) -> tuple[float, float]:
    """From half the smallest to 100x the largest compute the folder's finished runs spent (else 1e15-1e24)."""
    try:
        flops = StudyResults(folder).finished_trials()["flops"].cast(pl.Float64).drop_nulls().to_numpy()
    except Exception:  # noqa: BLE001 - a saved fit may sit in a folder without readable rows
        flops = np.empty(0)
    flops = flops[np.isfinite(flops) & (flops > 0)]
    return (float(flops.min()) / 2, float(flops.max()) * 100) if flops.size else (1e15, 1e24)


def _law_chart(fit: Any, span: tuple[float, float], label: str) -> Any:
    """A law against compute over ``span``, titled by ``label`` (its file, and component): a law in N and D at
    its compute-optimal allocation, a power law in compute as it stands (a power law in tokens or N has no
    compute axis: no chart)."""
    c = np.geomspace(*span, 60)
    if fit.law in ("chinchilla", "overtrain"):
        loss = fit.compute_optimal(c)["loss"]
        title = f"{label}: the compute-optimal loss L*(C) with its bootstrap band"
    elif fit.law == "power" and fit.x in (None, "flops"):
        loss = fit.prediction(c=c)
        title = f"{label}: {fit.form} with its bootstrap band"
    else:
        return None
    return figures.law(c, np.ravel(loss.value), np.ravel(loss.lo), np.ravel(loss.hi), None, "compute (FLOPs)",
                       title, fit.level)


def decide(folder: Path) -> Section | None:
    """DataDecide's decision-accuracy frontier, when ``sweeper decide`` wrote its table here."""
    path = folder / "decide" / "decisions.csv"
    if not path.exists():
        return None
    section = Section("decide", "DataDecide")
    table = pl.read_csv(path)
    if not table.height:
        section.paragraphs.append("No predictor could be scored.")
        return section
    data = _json(folder / "decide" / "decide.json")
    if data.get("best_proxy_metric"):
        section.paragraphs.append(f"Best proxy metric: {html.escape(str(data['best_proxy_metric']))}; target size "
                                  f"{html.escape(str(data.get('target_size')))}.")
    section.charts.append(figures.decision_frontier(table))
    return section


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
