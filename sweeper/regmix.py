"""RegMix end to end, after the proxies of a study ran (Liu et al. 2024, steps 3-5).

3-4. Fit the regression from mixture weights to the target and search the simplex: the same code path
     as ``sweeper fit mixture DIR`` (outputs in ``DIR/mixture/``).
5.   Validate at a larger scale: train the study's workload with ``regmix.validate.params`` on the
     predicted best mixture and on baselines (uniform weights, the token-share prior, the best proxy
     mixture seen, and any mixtures the study names), over ``regmix.validate.seeds``; rows land in the
     study's Parquet with ``phase = "validate"``. Report where the RegMix pick ranks and by how much.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from sweeper.errors import UserError
from sweeper.space import ChoiceParam
from sweeper.spec import SchedulerSpec, SearchSpec, Study

PICK = "regmix"
BASELINE_KEYS = {"uniform": "uniform", "prior": "prior", "best_proxy": "best fitted mixture"}


def fit_and_pick(study: Study, results: Path) -> dict[str, Any]:
    """Steps 3-4 with the study's settings; returns ``DIR/mixture/mixture_fit.json`` as a dict."""
    from sweeper.commands import fit_mixture

    spec = study.regmix
    target = spec.target or study.search.metrics[0]
    parser = argparse.ArgumentParser()
    fit_mixture.configure(parser)
    args = parser.parse_args([
        str(results), "--target", f"m.{target}", "--mode", study.search.modes[0], "--samples", str(spec.samples),
        "--top-k", str(spec.top_k), "--models", ",".join(spec.models), "--seed", str(study.seed),
    ])
    fit_mixture.run(args)
    return json.loads((results / "mixture" / "mixture_fit.json").read_text())


def candidates(study: Study, fitted: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The mixtures to validate: the RegMix pick, the chosen baselines and the study's named mixtures."""
    spec = study.regmix.validate_
    baselines = fitted["baselines"]
    out = {PICK: fitted["pick"]["mixture"]}
    for key in spec.baselines:
        name = BASELINE_KEYS[key]
        if key == "prior" and name not in baselines:
            name = "mean of fitted mixtures"
        out[key] = baselines[name]["mixture"]
    out.update({name: dict(weights) for name, weights in spec.mixtures.items()})
    domains = study.space[study.mixture_key].domains
    for name, weights in out.items():
        missing = set(domains) - set(weights)
        if missing or set(weights) - set(domains):
            raise UserError(f"regmix.validate.mixtures.{name}: expected weights for exactly {domains}")
        total = sum(weights.values())
        out[name] = {d: float(weights[d]) / total for d in domains}
    return out


def validation_study(study: Study, mixtures: dict[str, dict[str, float]]) -> Study:
    """The follow-up study: a grid over candidate mixture x seed at the larger scale."""
    spec = study.regmix.validate_
    space = {
        "candidate": ChoiceParam(type="choice", values=list(mixtures),
                                 presets={name: {study.mixture_key: w} for name, w in mixtures.items()}),
        "seed": ChoiceParam(type="choice", values=list(spec.seeds)),
    }
    return study.model_copy(update={
        "params": {**study.params, **spec.params},
        "space": space,
        "search": SearchSpec(algo="grid", metric=study.search.metric, mode=study.search.mode),
        "scheduler": SchedulerSpec(type="fifo"),
        "budget": study.budget.model_copy(update={"trials": len(mixtures) * len(spec.seeds), "max_cost": None}),
        "regmix": None,
    })


def rank_candidates(results: Path, metric: str, mode: str) -> pl.DataFrame:
    """Mean target over seeds per candidate, best first, with each one's gap to the RegMix pick."""
    from sweeper.store import read_trials

    column = f"m.{metric}"
    trials = read_trials(results, phase="validate").filter(pl.col("status") == "done")
    table = (
        trials.group_by("cfg.candidate")
        .agg(pl.col(column).mean().alias("mean"), pl.col(column).std().alias("std"), pl.len().alias("seeds"))
        .rename({"cfg.candidate": "candidate"})
        .sort("mean", descending=mode == "max")
        .with_row_index("rank", offset=1)
    )
    pick = table.filter(pl.col("candidate") == PICK)["mean"]
    if pick.len():
        table = table.with_columns((pl.col("mean") - pick[0]).alias("minus_regmix"))
    return table


def run_regmix(study: Study, results: Path, out: TextIO,
               run_validation: Callable[[Study], Any]) -> dict[str, Any]:
    """Steps 3-5 after the proxies ran; writes ``mixture/validation.csv`` and ``mixture/regmix.json``."""
    fitted = fit_and_pick(study, results)
    summary: dict[str, Any] = {"fit": {k: fitted[k] for k in ("model", "cv_spearman", "rows", "target")},
                               "pick": fitted["pick"]}
    if study.regmix.validate_ is None:
        return summary
    mixtures = candidates(study, fitted)
    run_validation(validation_study(study, mixtures))
    metric = study.regmix.target or study.search.metrics[0]
    table = rank_candidates(results, metric, study.search.modes[0])
    table.write_csv(results / "mixture" / "validation.csv")
    rows = table.to_dicts()
    pick = next((r for r in rows if r["candidate"] == PICK), None)
    summary.update(validation=rows, mixtures=mixtures,
                   pick_rank=pick["rank"] if pick else None, candidates=len(rows))
    (results / "mixture" / "regmix.json").write_text(json.dumps(summary, indent=2, default=float))
    _print_validation(out, table, metric, study.search.modes[0], pick, len(rows))
    return summary


def _print_validation(out: TextIO, table: pl.DataFrame, metric: str, mode: str, pick: dict | None, n: int) -> None:
    print(f"RegMix validation at the larger scale ({metric}, mean over seeds):", file=out)
    for row in table.iter_rows(named=True):
        std = f" ± {row['std']:.4f}" if row["std"] is not None else ""
        print(f"  {row['rank']}. {row['candidate']:<14} {row['mean']:.4f}{std}  ({row['seeds']} seeds)", file=out)
    if pick is not None:
        others = table.filter(pl.col("candidate") != PICK)
        gap = ""
        if others.height:
            other = others.row(0, named=True)
            delta = other["mean"] - pick["mean"]
            verdict = "worse" if (delta > 0 if mode == "min" else delta < 0) else "better"
            gap = f"; the best other candidate, {other['candidate']}, is {abs(delta):.4f} {verdict}"
        print(f"  the RegMix pick ranks {pick['rank']} of {n}{gap}", file=out)
