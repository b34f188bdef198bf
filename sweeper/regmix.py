"""RegMix end to end, after the proxies of a study ran (Liu et al. 2024, steps 3-5).

2b.  Replicate (``regmix.replicates``): train some proxy mixtures again with other seeds (rows of phase
     ``replicate``), to measure the seed noise against the spread across mixtures (the SNR).
3-4. Fit the regression from mixture weights to the target and search the simplex
     (`sweeper.regmix_fit`, the same pipeline as ``sweeper fit mixture DIR``; outputs in ``DIR/mixture/``).
5.   Validate at a larger scale: train the study's workload with ``regmix.validate.params`` on the
     predicted best mixture and on baselines (uniform weights, the token-share prior, the best proxy
     mixture seen, and any mixtures the study names), over ``regmix.validate.seeds``; rows land in the
     study's Parquet with ``phase = "validate"``. Each candidate gets its mean, standard error and its
     difference to the pick paired by seed, significant when larger than 2 standard errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import polars as pl

from sweeper.errors import UserError
from sweeper.laws.noise import compare_paired
from sweeper.phases import follow_up_study, run_size
from sweeper.regmix_fit import REPLICATE_PHASE, Baseline, RegMixFit, fit_and_search, load_study_proxies
from sweeper.spec import Study

PICK = Baseline.PICK.value
RunPhase = Callable[[Study, str], Any]


def target_metric(study: Study) -> str:
    return study.regmix.target or study.search.metrics[0]


def check_scale(study: Study, source: str) -> None:
    """Refuse a validation scale smaller than the proxies (in parameters or tokens), before anything runs.
    Sizes come from the workload's ``describe(config)`` when it has one, else from ``n_params``/``tokens``."""
    spec = study.regmix.validate_ if study.regmix is not None else None
    if spec is None or not spec.params:
        return
    proxy, large = _scale(study, study.params), _scale(study, {**study.params, **spec.params})
    for key in ("n_params", "tokens"):
        if key in proxy and key in large and large[key] < proxy[key]:
            raise UserError(f"{source}: regmix.validate.params: the validation scale is smaller than the proxies' "
                            f"({key} {large[key]:.4g} < {proxy[key]:.4g}); expected a larger model or more tokens")


def _scale(study: Study, params: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in run_size(study, params).items() if k in ("n_params", "tokens")}


def _presets(study: Study, mixtures: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    return {name: {study.mixture_key: w} for name, w in mixtures.items()}


def fit_and_pick(study: Study, results: Path, out: TextIO | None = None) -> RegMixFit:
    """Steps 3-4 with the study's settings; writes ``DIR/mixture/`` and returns the fit."""
    from sweeper.regmix_fit import report_lines, study_prior, write_outputs

    spec = study.regmix
    proxies, _ = load_study_proxies(results, f"m.{target_metric(study)}")
    result = fit_and_search(proxies, study_prior(results, proxies.domains), mode=study.search.modes[0],
                            models=spec.models, seed=study.seed, samples=spec.samples, top_k=spec.top_k,
                            transform=spec.transform)
    written = write_outputs(result, proxies, results / "mixture", source=str(results),
                            keep=[c for c in ("trial_id",) if c in proxies.frame.columns])
    if out is not None:
        print("\n".join(report_lines(result, str(results))), file=out)
        print("  wrote " + ", ".join(str(p) for p in written), file=out)
    return result


def replicate_mixtures(study: Study, results: Path) -> dict[str, dict[str, float]]:
    """The proxy mixtures to train again: evenly spaced through the proxies ordered by their weights
    (chosen without looking at the target, so the replicates measure noise, not luck)."""
    from sweeper.results import StudyResults

    spec = study.regmix.replicates
    trials = StudyResults(results).finished_trials("search")
    domains = study.space[study.mixture_key].domains
    columns = [f"mix.{d}" for d in domains]
    if trials.is_empty() or not all(c in trials.columns for c in columns):
        return {}
    trials = trials.sort([*columns, "trial_id"])
    n = min(spec.mixtures, trials.height)
    picks = sorted({int(round(i)) for i in np.linspace(0, trials.height - 1, n)})
    return {f"proxy{i}": {d: float(trials[f"mix.{d}"][i]) for d in domains} for i in picks}


def replicate_study(study: Study, mixtures: dict[str, dict[str, float]]) -> Study:
    """The replicate phase: the chosen proxy mixtures x the other seeds, at the proxies' own scale."""
    seeds = [study.seed + k for k in range(1, study.regmix.replicates.seeds)]
    return follow_up_study(study, _presets(study, mixtures), seeds, params=dict(study.params))


def candidates(study: Study, fitted: RegMixFit) -> dict[str, dict[str, float]]:
    """The mixtures to validate: the RegMix pick, the chosen baselines and the study's named mixtures."""
    spec = study.regmix.validate_
    out = {PICK: fitted.baselines[Baseline.PICK]}
    for key in spec.baselines:
        out[key] = fitted.baselines[Baseline(key)]
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
    return follow_up_study(study, _presets(study, mixtures), list(spec.seeds),
                           params={**study.params, **spec.params})


def rank_candidates(results: Path, metric: str, mode: str) -> pl.DataFrame:
    """Per candidate: mean over seeds, standard error, and the difference to the RegMix pick paired by
    seed with its standard error and whether it exceeds 2 of them; best first."""
    from sweeper.results import StudyResults

    column = f"m.{metric}"
    trials = StudyResults(results).finished_trials("validate")
    by_candidate: dict[str, dict[int, float]] = {}
    for row in trials.select("cfg.candidate", "seed", column).drop_nulls().iter_rows():
        by_candidate.setdefault(row[0], {})[int(row[1])] = float(row[2])
    reference = by_candidate.get(PICK, {})
    rows = []
    for name, values in by_candidate.items():
        c = compare_paired(values, reference)
        rows.append({"candidate": name, "mean": c.mean, "std": c.sem * math.sqrt(c.seeds) if c.seeds > 1 else None,
                     "sem": None if math.isnan(c.sem) else c.sem, "seeds": c.seeds,
                     "minus_regmix": c.diff, "diff_se": c.diff_se,
                     "significant": c.significant if name != PICK else None})
    table = pl.DataFrame(rows, schema={"candidate": pl.String, "mean": pl.Float64, "std": pl.Float64,
                                       "sem": pl.Float64, "seeds": pl.Int64, "minus_regmix": pl.Float64,
                                       "diff_se": pl.Float64, "significant": pl.Boolean})
    return table.sort("mean", descending=mode == "max").with_row_index("rank", offset=1)


def run_regmix(study: Study, results: Path, out: TextIO, run_phase: RunPhase) -> dict[str, Any]:
    """Steps 2b-5 after the proxies ran; writes ``mixture/validation.csv`` and ``mixture/regmix.json``.
    ``run_phase(study, phase)`` runs a follow-up phase of trials in the same results folder."""
    if study.regmix.replicates is not None:
        mixtures = replicate_mixtures(study, results)
        if mixtures:
            run_phase(replicate_study(study, mixtures), REPLICATE_PHASE)
    fitted = fit_and_pick(study, results, out)
    summary: dict[str, Any] = {"fit": {"model": fitted.fit.model, "cv_spearman": fitted.fit.cv_rho,
                                       "rows": fitted.fit.n_rows, "target": fitted.fit.target_name},
                               "pick": fitted.pick.summary()}
    if fitted.noise is not None:
        noise = fitted.noise.summary()
        summary["fit"].update(snr=noise["snr"], seed_sd=noise["seed_sd"], spread_sd=noise["spread_sd"],
                              paired_sd=noise["paired_sd"], noise=noise)
    if study.regmix.validate_ is not None:
        mixtures = candidates(study, fitted)
        run_phase(validation_study(study, mixtures), "validate")
        metric = target_metric(study)
        table = rank_candidates(results, metric, study.search.modes[0])
        table.write_csv(results / "mixture" / "validation.csv")
        rows = table.to_dicts()
        pick = next((r for r in rows if r["candidate"] == PICK), None)
        summary.update(validation=rows, mixtures=mixtures, pick_rank=pick["rank"] if pick else None,
                       candidates=len(rows))
        _print_validation(out, table, metric, study.search.modes[0], pick, len(rows))
    (results / "mixture" / "regmix.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _print_validation(out: TextIO, table: pl.DataFrame, metric: str, mode: str, pick: dict | None, n: int) -> None:
    print(f"RegMix validation at the larger scale ({metric}; mean ± standard error over seeds; difference to the "
          "pick paired by seed):", file=out)
    for row in table.iter_rows(named=True):
        sem = f" ± {row['sem']:.4f}" if row["sem"] is not None else ""
        diff = ""
        if row["candidate"] != PICK and row["minus_regmix"] is not None:
            se = f" ± {row['diff_se']:.4f}" if row["diff_se"] is not None else ""
            verdict = "significant" if row["significant"] else "not significant"
            diff = f"  {row['minus_regmix']:+.4f}{se} vs the pick ({verdict})"
        seeds = f"{row['seeds']} seed{'s' if row['seeds'] != 1 else ''}"
        print(f"  {row['rank']}. {row['candidate']:<14} {row['mean']:.4f}{sem}  ({seeds}){diff}", file=out)
    if pick is None:
        return
    others = table.filter(pl.col("candidate") != PICK)
    worse = (lambda d: d > 0) if mode == "min" else (lambda d: d < 0)
    beaten = [r["candidate"] for r in others.iter_rows(named=True)
              if r["significant"] and r["minus_regmix"] is not None and worse(r["minus_regmix"])]
    better = [r["candidate"] for r in others.iter_rows(named=True)
              if r["significant"] and r["minus_regmix"] is not None and not worse(r["minus_regmix"])]
    tied = [r["candidate"] for r in others.iter_rows(named=True) if not r["significant"]]
    print(f"  the RegMix pick ranks {pick['rank']} of {n}; it beats {', '.join(beaten) or 'none'} by more than 2 "
          f"standard errors; {', '.join(better) or 'none'} beat it so; within noise: {', '.join(tied) or 'none'}",
          file=out)
