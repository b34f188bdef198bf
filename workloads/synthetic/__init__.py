"""Analytic proxy workload with a known optimum and a known scaling law.

The final loss of a run with ``n_params`` N, ``tokens`` D and learning rate ``lr`` is

    L(N, D, lr) = E + A / N**alpha + B / D**beta + c * (ln lr - ln lr*(N))**2

with lr*(N) = lr_ref * (N / n_ref) ** -lr_exponent, times multiplicative log-normal noise of sigma
``noise`` (seeded by ``seed`` and the config, so runs differ but a config and seed repeat exactly).
During a run the curve is reported at d = D * s / steps tokens, so every intermediate point follows
L(N, d, lr) too, and ``flops`` = 6 N d. With a ``mix`` (weights over any
domain names) the loss gains ``mix_weight * sum_i (w_i - w*_i)**2``, where the best mixture w* is
proportional to 1, 2, 3, ... over the domains sorted by name (``optimal_mixture``). The true parameters are in
``TRUE_PARAMS``; tests and benchmarks use them to check searchers and extrapolators. Every report also
carries ``error``, a downstream top-1 error that follows the loss by the link of Gadre et al. 2024,
``epsilon - k exp(-gamma L)`` (``DOWNSTREAM``), to check two-step predictions.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from sweeper.errors import UserError

TRUE_PARAMS: dict[str, float] = {
    "E": 1.69,
    "A": 406.4,
    "B": 410.7,
    "alpha": 0.34,
    "beta": 0.28,
    "c": 0.05,
    "lr_ref": 3e-3,
    "n_ref": 1e8,
    "lr_exponent": 0.25,
    "mix_weight": 0.5,
}

DOWNSTREAM: dict[str, float] = {"epsilon": 0.9, "k": 4.0, "gamma": 1.0}
"""The link from the loss to the reported ``error``: ``epsilon - k exp(-gamma L)``."""

DEFAULTS: dict[str, Any] = {
    "mix": None,
    "n_params": 1e7,
    "tokens": 2e8,
    "lr": 3e-3,
    "steps": 100,
    "noise": 0.01,
    "seed": 0,
    "sleep_s": 0.0,
    "fail_above_lr": None,
    "nan_above_lr": None,
    "hang_above_lr": None,
}


def optimal_lr(n_params: float) -> float:
    """The learning rate that minimises the loss at model size ``n_params``."""
    p = TRUE_PARAMS
    return p["lr_ref"] * (n_params / p["n_ref"]) ** -p["lr_exponent"]


def optimal_mixture(domains: list[str]) -> dict[str, float]:
    """The mixture that minimises the loss: weights proportional to 1, 2, 3, ... over sorted domain names."""
    ranks = {name: i + 1 for i, name in enumerate(sorted(domains))}
    total = sum(ranks.values())
    return {name: ranks[name] / total for name in domains}


def expected_loss(n_params: float, tokens: float, lr: float, mix: dict[str, float] | None = None) -> float:
    """The noise-free loss L(N, D, lr), plus the mixture penalty when ``mix`` is given."""
    p = TRUE_PARAMS
    lr_penalty = p["c"] * (math.log(lr) - math.log(optimal_lr(n_params))) ** 2
    loss = p["E"] + p["A"] / n_params ** p["alpha"] + p["B"] / tokens ** p["beta"] + lr_penalty
    if mix:
        best = optimal_mixture(list(mix))
        loss += p["mix_weight"] * sum((float(w) - best[k]) ** 2 for k, w in mix.items())
    return loss


def expected_error(loss: float) -> float:
    """The downstream error at ``loss`` (``DOWNSTREAM``'s link)."""
    p = DOWNSTREAM
    return p["epsilon"] - p["k"] * math.exp(-p["gamma"] * loss)


def train(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Report the loss curve of one synthetic run (the workload contract: ``train(config, report)``).

    Extra keys: ``sleep_s`` waits that long per step (to imitate real work); for learning rates above
    ``fail_above_lr`` it raises, above ``nan_above_lr`` its loss is NaN, above ``hang_above_lr`` it hangs
    after its first report (to exercise failure handling).
    """
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise UserError(f"workloads.synthetic: unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    n, d_total, lr = float(cfg["n_params"]), float(cfg["tokens"]), float(cfg["lr"])
    steps = int(cfg["steps"])
    if n <= 0 or d_total <= 0 or lr <= 0 or steps < 1:
        raise UserError("workloads.synthetic: n_params, tokens, lr and steps must be positive")
    if cfg["fail_above_lr"] is not None and lr > float(cfg["fail_above_lr"]):
        raise RuntimeError(f"diverged: lr {lr:.3g} is above {float(cfg['fail_above_lr']):.3g}")

    # Independent noise per config, reproducible for a config and seed.
    config_key = zlib.crc32(repr((n, d_total, lr, sorted((cfg.get("mix") or {}).items()))).encode())
    rng = np.random.default_rng([int(cfg["seed"]), config_key])
    noise = float(cfg["noise"])
    loss = math.nan
    for step in range(1, steps + 1):
        tokens = d_total * step / steps
        loss = expected_loss(n, tokens, lr, cfg.get("mix")) * math.exp(noise * rng.standard_normal())
        if cfg["nan_above_lr"] is not None and lr > float(cfg["nan_above_lr"]):
            loss = math.nan
        if cfg["sleep_s"]:
            time.sleep(float(cfg["sleep_s"]))
        report(step=step, tokens=int(tokens), flops=6.0 * n * tokens, loss=loss, error=expected_error(loss))
        if cfg["hang_above_lr"] is not None and lr > float(cfg["hang_above_lr"]):
            while True:
                time.sleep(0.1)
    return {"loss": loss, "error": expected_error(loss)}
