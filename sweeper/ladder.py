"""A model ladder's end (``laws:`` in a study), the way large runs are planned: fit a scaling law to the
sweep's runs, predict the larger validation runs *before* they train (``laws/predictions.json``), train
them, and compare (``laws/validation.csv``: ``n_params``, ``tokens``, ``flops``, ``predicted``, ``lower``,
``upper``, ``measured``, ``seeds``, ``epochs`` (where the workload's ``describe`` gives them), ``rel_error``;
with ``laws.components`` also ``laws/validation_components.csv``, each component's law against the
component's measured loss). A validation run that reads its data more often than any rung is named before it
trains: the law knows nothing of repetition.

With ``laws.downstream`` it also predicts a downstream metric in two steps (:mod:`sweeper.laws.twostep`): the
law's loss, then a link from loss to the metric fitted on the ladder's checkpoints (the exponential of Gadre
et al. 2024 or the sigmoid of the OLMo 2 ladder; by default whichever backtests better); the loss's interval
is carried through the link (``laws/downstream.json``, and ``laws/validation_downstream.csv`` against the
measured metric).

The law is any of `sweeper.laws.power`'s forms, ``auto`` by default (chosen by backtest, its intervals
widened by its extrapolation error); N is the parameter count the workload reports (``m.n_params``) or a
config column, D the tokens seen, C the FLOPs counted.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import polars as pl

from sweeper.errors import ParameterError, UserError
from sweeper.phases import follow_up_study, run_size
from sweeper.plan import RunPlan
from sweeper.spec import Study, result_key

VALIDATE_PHASE = "validate"
MIN_SIZES = 3
OUT_DIR = "laws"


def ladder_runs(study: Study) -> list[dict[str, float]]:
    """The size of every run of the sweep's grid (none when the sweep is not a grid)."""
    from sweeper import space as space_mod

    if study.search.algo != "grid":
        return []
    plan = RunPlan.from_study(study)
    grid = space_mod.grid(study.space)
    names = list(grid)
    return [run_size(study, plan.workload_config(dict(zip(names, values, strict=True))))
            for values in itertools.product(*grid.values())]


def check_ladder(study: Study, source: str) -> None:
    """Before anything trains: at least 3 model sizes, and every validation run larger than the ladder."""
    spec = study.laws
    if spec is None:
        return
    runs = ladder_runs(study)
    sizes = sorted({r["n_params"] for r in runs if "n_params" in r})
    if runs and len(sizes) < MIN_SIZES:
        raise UserError(f"{source}: laws: the ladder has {len(sizes)} model size(s); a law needs at least "
                        f"{MIN_SIZES} (add sizes to the space)")
    if spec.validate_ is None or not runs:
        return
    largest = max(r.get("flops", 0.0) for r in runs)
    for name, params in spec.validate_.runs.items():
        size = run_size(study, {**study.params, **params})
        if size.get("flops", 0.0) <= largest:
            raise UserError(f"{source}: laws.validate.runs.{name}: {size.get('flops', 0.0):.3g} FLOPs is no larger "
                            f"than the ladder's largest run ({largest:.3g}); expected a larger run")


def _n_column(study: Study, columns: list[str]) -> str:
    name = study.laws.n
    for candidate in (name, f"m.{name}", f"cfg.{name}"):
        if candidate in columns:
            return candidate
    raise UserError(f"laws.n: {name}: no such metric or config column (the workload reports "
                    f"{', '.join(c for c in columns if c.startswith('m.')) or 'no metric'})")


def _loss_key(study: Study) -> str:
    """The result column of the loss the law is fitted to (``laws.loss``, else the search metric)."""
    return result_key(study.laws.loss or study.search.metrics[0])


def fit_ladder(study: Study, results: Path) -> Any:
    """The study's law fitted to the sweep's finished runs (final losses): one law to the loss, or with
    ``laws.components`` one law to each component, their weighted sum predicting the loss."""
    from sweeper.law_inputs import law_points
    from sweeper.laws.power import fit_law
    from sweeper.laws.select import WINDOW_SHARES
    from sweeper.results import StudyResults

    spec = study.laws
    folder = StudyResults(results)
    loss = _loss_key(study)
    n_column = _n_column(study, folder.columns())

    def points(column: str) -> Any:
        return law_points(folder, column, n=n_column, d="tokens", c="flops", phase="search")

    data = points(loss)
    windows = WINDOW_SHARES if spec.windows else (0.0,)
    if not spec.components:
        return fit_law(data, spec.law, "flops" if spec.law == "power" else None, bootstrap=spec.bootstrap,
                       level=spec.level, seed=study.seed, windows=windows)
    from sweeper.laws.components import fit_components

    columns = {name: result_key(name) for name in spec.components}
    missing = [name for name, column in columns.items() if column not in folder.columns()]
    if missing:
        raise UserError(f"laws.components: {', '.join(missing)}: no such metric (the workload reports "
                        f"{', '.join(c for c in folder.columns() if c.startswith('m.')) or 'no metric'})")
    # each component's source names its metric, so a warning about one of the fits says which
    parts = {name: replace(points(column), source=f"{results} {name}") for name, column in columns.items()}
    try:
        return fit_components(parts, spec.components, data, spec.law, bootstrap=spec.bootstrap, level=spec.level,
                              seed=study.seed, windows=windows)
    except ParameterError as exc:  # the weights are the study's laws.components
        raise UserError(exc.render("laws.components")) from None


def fit_downstream(study: Study, results: Path) -> Any:
    """Step 2 of ``laws.downstream``: the link from the law's loss to the metric, fitted on every checkpoint
    of the sweep's runs past ``min_fraction`` of their tokens, bootstrapped over runs."""
    from sweeper.law_inputs import law_points
    from sweeper.laws.twostep import fit_link
    from sweeper.results import StudyResults

    spec = study.laws
    folder = StudyResults(results)
    metric = result_key(spec.downstream.metric)
    if metric not in folder.columns():
        raise UserError(f"laws.downstream.metric: {spec.downstream.metric}: no such metric (the workload reports "
                        f"{', '.join(c for c in folder.columns() if c.startswith('m.')) or 'no metric'})")
    data = law_points(folder, _loss_key(study), n=_n_column(study, folder.columns()), d="tokens", c="flops",
                      intermediate=True, min_fraction=spec.downstream.min_fraction, extra=[metric],
                      phase="search")
    # each run's last checkpoint: what a backtest of the link predicts for the sizes it leaves out
    last = pl.DataFrame({"run": data.run, "d": data.d}).select(pl.col("d") == pl.col("d").max().over("run"))
    try:
        return fit_link(data.loss, data.extra[metric], data.run, form=spec.downstream.form,
                        bootstrap=spec.bootstrap, level=spec.level, seed=study.seed, name=spec.downstream.metric,
                        size=data.n, final=last.to_series().to_numpy(), loss_name=_loss_key(study))
    except UserError as exc:
        raise UserError(f"laws.downstream: {exc}") from None


def predict_runs(study: Study, fit: Any, link: Any = None) -> list[dict[str, Any]]:
    """Each validation run's size and the law's prediction for it, with the interval (and, with ``link``,
    the downstream metric's)."""
    out = []
    for name, params in study.laws.validate_.runs.items():
        size = run_size(study, {**study.params, **params})
        # C as the ladder's runs counted it (a law in compute was fitted to counted FLOPs, not 6 N D)
        pred = fit.prediction(n=size["n_params"], d=size["tokens"], c=size.get("flops"))
        out.append({"run": name, **size, **_point(pred)})
        if link is not None:
            out[-1]["downstream"] = _point(link.chain(pred))
        if fit.law == "components":  # what each component's law expects, to see later which one missed
            out[-1]["components"] = {part: _point(law.prediction(n=size["n_params"], d=size["tokens"],
                                                                 c=size.get("flops")))
                                     for part, law in fit.fits.items()}
    return out


def repetition_warnings(rungs: list[dict[str, float]], predictions: list[dict[str, Any]]) -> list[str]:
    """A warning for each validation run that reads its training data more often than once and more often
    than any run of the ladder did (when the workload says how often, as ``epochs``): the law was fitted to
    runs that repeated less, and repeated tokens are worth less than fresh ones (Muennighoff et al. 2023), so
    such a run's loss will likely come out above the prediction."""
    seen = [r["epochs"] for r in rungs if "epochs" in r]
    if not seen:
        return []
    most = max(seen)
    return [f"laws.validate.runs.{p['run']} reads its training data {p['epochs']:.2f} times, the ladder's runs at "
            f"most {most:.2f} times: the law knows nothing of repeated data, which is worth less than fresh "
            f"(Muennighoff et al. 2023), so expect the measured loss above the prediction"
            for p in predictions if p.get("epochs", 0.0) > max(1.0, most)]


def _point(pred: Any) -> dict[str, float]:
    """One prediction with its interval (the component law's own: bootstrap and, under auto, its misfit)."""
    return {"predicted": float(np.ravel(pred.value)[0]), "lower": float(np.ravel(pred.lo)[0]),
            "upper": float(np.ravel(pred.hi)[0])}


def run_ladder(study: Study, results: Path, out: TextIO,
               run_phase: Callable[[Study, str], Any]) -> dict[str, Any]:
    """Fit, predict, write the predictions, train the validation runs, compare; returns the summary."""
    spec = study.laws
    folder = results / OUT_DIR
    folder.mkdir(exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_ladder(study, results)
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"sweeper: warning: {message}", file=out)
    fit.save(folder / "fit.json")
    summary: dict[str, Any] = {"law": fit.law, "form": fit.form, "params": fit.params,
                               "auto": fit.info.get("auto"), "level": fit.level}
    if fit.law == "components":
        summary.update(components=fit.info["components"], backtest=fit.backtest, weights=fit.weights)
    print(f"law fitted to the ladder ({fit.n_points} runs): {fit.law}, {fit.form}", file=out)
    if fit.law == "components":
        _print_components(out, fit)
    link = None
    if spec.downstream is not None:
        link = fit_downstream(study, results)
        saved = link.to_dict()
        (folder / "downstream.json").write_text(json.dumps(saved, indent=2))
        summary["downstream"] = {k: v for k, v in saved.items() if k != "samples"}
        _print_link(out, spec.downstream.metric, link)
    if spec.validate_ is None:
        (folder / "ladder.json").write_text(json.dumps(summary, indent=2, default=float))
        return summary
    predictions = predict_runs(study, fit, link)
    (folder / "predictions.json").write_text(json.dumps(predictions, indent=2))  # on disk before they train
    for message in repetition_warnings(ladder_runs(study), predictions):
        print(f"sweeper: warning: {message}", file=out)
    presets = {name: dict(params) for name, params in spec.validate_.runs.items()}
    run_phase(follow_up_study(study, presets, list(spec.validate_.seeds), params=dict(study.params)),
              VALIDATE_PHASE)
    from sweeper.results import StudyResults

    trials = StudyResults(results).finished_trials(VALIDATE_PHASE)  # read once, for both comparisons
    table = compare(study, trials, predictions)
    table.write_csv(folder / "validation.csv")
    summary["validation"] = table.to_dicts()
    _print(out, table, fit.level)
    if fit.law == "components":
        parts = compare_components(trials, predictions, fit.weights)
        parts.write_csv(folder / "validation_components.csv")
        summary["validation_components"] = parts.to_dicts()
        _print_component_errors(out, parts)
    if link is not None:
        downstream = compare_downstream(trials, predictions, spec.downstream.metric)
        downstream.write_csv(folder / "validation_downstream.csv")
        summary["validation_downstream"] = downstream.to_dicts()
        _print_downstream(out, downstream, spec.downstream.metric, fit.level)
    (folder / "ladder.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def compare(study: Study, trials: pl.DataFrame, predictions: list[dict[str, Any]]) -> pl.DataFrame:
    """Predicted against measured (mean over the validation seeds) for every validation run; ``trials``: the
    finished trials of the validation phase."""
    return _against_measured(trials, predictions, _loss_key(study), lambda p: p)


def _against_measured(trials: pl.DataFrame, predictions: list[dict[str, Any]], column: str,
                      predicted_of: Callable[[dict[str, Any]], dict[str, float]]) -> pl.DataFrame:
    """One row per validation run: its size, ``predicted_of`` its prediction (predicted, lower, upper), the mean
    of ``column`` over its seeds and the relative error."""
    rows = []
    for p in predictions:
        mine = _validation_trials(trials, p["run"])
        measured = _measured(mine, column)
        pred = predicted_of(p)
        rows.append({"run": p["run"], "n_params": p["n_params"], "tokens": p["tokens"], "flops": p["flops"],
                     "predicted": pred["predicted"], "lower": pred["lower"], "upper": pred["upper"],
                     "measured": measured, "seeds": mine.height, "epochs": p.get("epochs"),
                     "rel_error": None if measured is None else (pred["predicted"] - measured) / measured})
    return pl.DataFrame(rows, schema={"run": pl.String, "n_params": pl.Float64, "tokens": pl.Float64,
                                      "flops": pl.Float64, "predicted": pl.Float64, "lower": pl.Float64,
                                      "upper": pl.Float64, "measured": pl.Float64, "seeds": pl.Int64,
                                      "epochs": pl.Float64, "rel_error": pl.Float64})


def compare_components(trials: pl.DataFrame, predictions: list[dict[str, Any]],
                       weights: dict[str, float]) -> pl.DataFrame:
    """Each validation run's components: predicted (before it trained) against measured (mean over seeds);
    ``trials``: the finished trials of the validation phase."""
    rows = []
    for p in predictions:
        mine = _validation_trials(trials, p["run"])
        for name, pred in p.get("components", {}).items():
            measured = _measured(mine, result_key(name))
            rows.append({"run": p["run"], "component": name, "weight": weights[name], **pred, "measured": measured,
                         "seeds": mine.height,
                         "rel_error": None if measured is None else (pred["predicted"] - measured) / measured})
    return pl.DataFrame(rows, schema={"run": pl.String, "component": pl.String, "weight": pl.Float64,
                                      "predicted": pl.Float64, "lower": pl.Float64, "upper": pl.Float64,
                                      "measured": pl.Float64, "seeds": pl.Int64, "rel_error": pl.Float64})


def compare_downstream(trials: pl.DataFrame, predictions: list[dict[str, Any]], metric: str) -> pl.DataFrame:
    """Each validation run's downstream metric: predicted (before it trained) against measured (mean over
    seeds), the error in the metric's units and relative to it."""
    table = _against_measured(trials, predictions, result_key(metric), lambda p: p["downstream"])
    return table.with_columns(error=pl.col("predicted") - pl.col("measured")).select(
        [*table.columns[:-1], "error", "rel_error"])


def _validation_trials(trials: pl.DataFrame, run: str) -> pl.DataFrame:
    """The finished trials (one per seed) of the validation run ``run``."""
    return trials.filter(pl.col("cfg.candidate") == run) if trials.height else trials


def _measured(trials: pl.DataFrame, column: str) -> float | None:
    """The mean of ``column`` over the trials (its seeds); None when there are none or it was not reported."""
    return float(trials[column].cast(pl.Float64).mean()) if trials.height and column in trials.columns else None


def _print_component_errors(out: TextIO, parts: pl.DataFrame) -> None:
    print("  by component (predicted against measured; inside or outside each component law's interval):",
          file=out)
    def word(r: dict[str, Any]) -> str:
        if r["rel_error"] is None:
            return f"{r['component']} -"
        where = "in" if _inside(r["measured"], r["lower"], r["upper"]) else "out"
        return f"{r['component']} {r['rel_error']:+.1%} ({where})"

    for (run,), group in parts.group_by("run", maintain_order=True):
        print(f"    {run}: {', '.join(word(r) for r in group.iter_rows(named=True))}", file=out)


def _print(out: TextIO, table: pl.DataFrame, level: float) -> None:
    print(f"ladder validation (predicted before training, {level:.0%} interval, against the measured loss):",
          file=out)
    for r in table.iter_rows(named=True):
        measured = "not measured" if r["measured"] is None else (
            f"measured {r['measured']:.4f} ({r['rel_error']:+.2%}; "
            f"{'inside' if _inside(r['measured'], r['lower'], r['upper']) else 'outside'} the interval)")
        epochs = "" if r["epochs"] is None else f", {r['epochs']:.2f} epochs"
        print(f"  {r['run']}: N {r['n_params']:.3g}, D {r['tokens']:.3g}, C {r['flops']:.3g}{epochs}: predicted "
              f"{r['predicted']:.4f} [{r['lower']:.4f}, {r['upper']:.4f}], {measured}", file=out)


def _print_link(out: TextIO, metric: str, link: Any) -> None:
    params = ", ".join(f"{k} {v:.4g}" for k, v in link.params.items())
    lo, hi = link.loss_range
    print(f"  downstream {metric}: {link.form} link ({params}), fitted on {link.points} checkpoints with the loss "
          f"in [{lo:.4f}, {hi:.4f}]; runs scatter {link.scatter:.4f} about it", file=out)
    test = link.backtest or {}
    if test.get("mean_abs_error"):
        held = ", ".join(str(k) for k in test["holdouts"])
        scores = ", ".join(f"{form} {err:.4f}" for form, err in test["mean_abs_error"].items())
        chose = f"; chose {test['chosen']}" if "chosen" in test else ""
        print(f"  link backtests (fit without the {held} largest sizes, predict their final points from their "
              f"loss): mean |error| {scores}{chose}; a new run's spread about the link {link.spread:.4f}", file=out)


def _print_downstream(out: TextIO, table: pl.DataFrame, metric: str, level: float) -> None:
    print(f"  downstream {metric} (predicted from the predicted loss, {level:.0%} interval):", file=out)
    for r in table.iter_rows(named=True):
        has_interval = not (np.isnan(r["lower"]) or np.isnan(r["upper"]))
        where = ("inside" if _inside(r["measured"], r["lower"], r["upper"]) else "outside") + " the interval"
        measured = "not measured" if r["measured"] is None else (
            f"measured {r['measured']:.4f} ({r['error']:+.4f}, {r['rel_error']:+.2%}"
            f"{'; ' + where if has_interval else ''})")
        band = (f" [{r['lower']:.4f}, {r['upper']:.4f}]" if has_interval
                else " (no interval: the law or the link has no bootstrap)")
        print(f"    {r['run']}: predicted {r['predicted']:.4f}{band}, {measured}", file=out)


def _print_components(out: TextIO, fit: Any) -> None:
    """Which form each component took, and the sum's backtests beside those of the loss fitted alone."""
    chosen = ", ".join(f"{name} {law}" for name, law in fit.info["components"].items())
    print(f"  one law per component: {chosen}", file=out)
    print(f"  {fit.backtest_summary()}", file=out)


def _inside(value: float, lower: float, upper: float, rtol: float = 1e-9) -> bool:
    """``value`` within [lower, upper], up to rounding (a noise-free ladder gives a zero-width interval)."""
    return lower * (1 - rtol) <= value <= upper * (1 + rtol)
