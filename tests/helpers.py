"""Small helpers for tests: write study files, run them for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sweeper.engine import run_study
from sweeper.spec import parse_study

SYNTHETIC = "workloads.synthetic:train"


def study_data(**overrides: Any) -> dict[str, Any]:
    """A tiny synthetic study as raw data; keyword arguments replace top-level keys."""
    data: dict[str, Any] = {
        "name": "t",
        "workload": SYNTHETIC,
        "params": {"steps": 10, "noise": 0.01},
        "space": {
            "n_params": {"type": "float", "low": 1e6, "high": 1e8, "log": True},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        },
        "search": {"algo": "optuna", "sampler": "random", "metric": "loss", "mode": "min"},
        "budget": {"trials": 4, "concurrent": 2},
        "seed": 0,
    }
    data.update(overrides)
    return data


def write_study(tmp_path: Path, data: dict[str, Any], name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, **overrides: Any):
    """Run a tiny synthetic study in ``tmp_path/results`` and return its Outcome."""
    study = parse_study(study_data(**overrides))
    tmp_path.mkdir(parents=True, exist_ok=True)
    with open(tmp_path / "live.log", "w") as log:
        return run_study(study, tmp_path / "results", rich=False, stream=log)
