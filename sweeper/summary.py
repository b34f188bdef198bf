"""Summaries of a finished or running study, read back from its Parquet rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import yaml

from sweeper.errors import UserError
from sweeper.spec import result_key
from sweeper.store import read_trials, rows_dir


def check_study_dir(study_dir: str | Path) -> Path:
    """A results folder that holds a study's rows, or a clear error."""
    path = Path(study_dir)
    if not rows_dir(path).is_dir() or not any(rows_dir(path).glob("part-*.parquet")):
        raise UserError(f"{study_dir}: not a study results folder (expected Parquet rows under {rows_dir(path)})")
    return path


def study_objective(study_dir: Path) -> tuple[str, str]:
    """The (first) metric column and mode of the study that wrote ``study_dir``."""
    copy = study_dir / "study.yaml"
    metric, mode = "loss", "min"
    if copy.exists():
        search = (yaml.safe_load(copy.read_text()) or {}).get("search", {})
        m = search.get("metric", metric)
        metric = m[0] if isinstance(m, list) else m
        md = search.get("mode", mode)
        mode = md[0] if isinstance(md, list) else md
    column = result_key(metric)
    return column, mode


def summarize(study_dir: str | Path) -> dict[str, Any]:
    """Trials by status, the best trial's config and metric, and the cost spent."""
    path = check_study_dir(study_dir)
    trials = read_trials(path)
    metric, mode = study_objective(path)
    counts = dict(trials.group_by("status").len().sort("status").iter_rows())
    out: dict[str, Any] = {
        "study": trials["study"][0] if trials.height else path.name,
        "trials": trials.height,
        "by_status": counts,
        "metric": metric,
        "mode": mode,
        "cost": float(trials["cost"].sum() or 0.0),
        "flops": float(trials["flops"].sum() or 0.0),
        "wall_s": float(trials["wall_s"].sum() or 0.0),
        "best": None,
    }
    if metric in trials.columns:
        ranked = trials.filter(pl.col("status").is_in(["done", "pruned"]) & pl.col(metric).is_not_nan())
        ranked = ranked.drop_nulls(metric).sort(metric, descending=mode == "max")
        if ranked.height:
            best = ranked.row(0, named=True)
            out["best"] = {
                "trial_id": best["trial_id"],
                "value": best[metric],
                "config": {k: v for k, v in best.items() if k.startswith(("cfg.", "mix.")) and v is not None},
            }
    return out
