"""Summaries of a finished or running study, read back from its Parquet rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from sweeper.results import StudyResults


def summarize(study_dir: str | Path) -> dict[str, Any]:
    """Trials by status, the best trial's config and metric, and the cost spent."""
    results = StudyResults(study_dir, check_files=True)
    path = results.folder
    metric, mode = results.objective()
    trials = results.trials()
    spent = results.attempts()  # every attempt's cost counts, a retried trial's earlier ones too
    counts = dict(trials.group_by("status").len().sort("status").iter_rows())
    out: dict[str, Any] = {
        "study": trials["study"][0] if trials.height else path.name,
        "trials": trials.height,
        "by_status": counts,
        "metric": metric,
        "mode": mode,
        "cost": float(spent["cost"].sum() or 0.0),
        "flops": float(spent["flops"].sum() or 0.0),
        "wall_s": float(spent["wall_s"].sum() or 0.0),
        "best": None,
    }
    if metric in trials.columns:
        # Rank numbers only: an old folder may hold a metric a workload once reported as text.
        value = pl.col(metric).cast(pl.Float64, strict=False)
        ranked = trials.with_columns(value.alias("_value")).filter(
            pl.col("status").is_in(["done", "pruned"]) & pl.col("_value").is_not_nan())
        ranked = ranked.drop_nulls("_value").sort("_value", descending=mode == "max")
        if ranked.height:
            best = ranked.row(0, named=True)
            out["best"] = {
                "trial_id": best["trial_id"],
                "value": best["_value"],
                "config": {k: v for k, v in best.items() if k.startswith(("cfg.", "mix.")) and v is not None},
            }
    return out
