"""Workloads that misbehave the way real ones do, for the hardening tests (run by real Ray trials)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def text_metric(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Reports a number, then (when ``config['bad']``) the text 'high' for its objective."""
    report(step=1, loss=1.0, acc=np.float32(0.5), note_free=None)
    if config.get("bad"):
        report(step=2, loss="high")
    return {"loss": 0.9}


def text_side_metric(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """A numeric objective and a text value in another metric."""
    report(step=1, loss=1.0, phase="warmup")
    return {"loss": 0.9}


def missing_values(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Reports None for a metric it did not measure at that step."""
    report(step=1, loss=1.0, valid=None)
    report(step=2, loss=0.8, valid=0.7)
    return {"loss": 0.8}


def exits(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Calls sys.exit(0) half way."""
    report(step=1, loss=1.0)
    sys.exit(0)


def other_metric(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Never reports the study's metric (``loss``), only ``val_loss``."""
    report(step=1, val_loss=1.0)
    return {"val_loss": 1.0}


def slow(config: dict[str, Any], report: Callable[..., None]) -> dict[str, Any]:
    """Reports every 0.1 s for ``steps`` steps."""
    for step in range(1, int(config.get("steps", 100)) + 1):
        time.sleep(0.1)
        report(step=step, loss=1.0 / step)
    return {"loss": 1.0 / step}
