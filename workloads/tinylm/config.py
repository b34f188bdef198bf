"""The workload's config: defaults, validation (a UserError naming the key) and derived quantities."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from sweeper.errors import UserError

SCHEDULES = ("constant", "cosine", "wsd")
DEVICES = ("auto", "cpu", "cuda")
WHERE = "tinylm config"


@dataclass(frozen=True)
class TinyLMConfig:
    """Every key a study may set, with its default. ``tokens`` is the training budget; the run takes
    ``max(1, tokens // (batch_size * ctx))`` steps. ``warmup`` and ``decay`` are fractions of the steps
    (``decay``: the final linear decay of ``wsd``); ``min_lr_ratio`` is where cosine and wsd end.
    ``compile``: ``"auto"`` compiles on CUDA only, ``true``/``false`` force it."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ctx: int = 128
    batch_size: int = 32
    tokens: int = 1_000_000
    lr: float = 3e-3
    schedule: str = "cosine"
    warmup: float = 0.05
    decay: float = 0.2
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_tokens: int = 16_384
    domains: Any = None
    mix: Any = None
    target: Any = None
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    compile: Any = "auto"
    tokenizer: str = "bytes"

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.ctx

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.tokens_per_step)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


KEYS = tuple(f.name for f in fields(TinyLMConfig))
_POSITIVE_INTS = ("d_model", "n_layers", "n_heads", "ctx", "batch_size", "tokens", "eval_every",
                  "eval_tokens", "threads")
_FRACTIONS = ("warmup", "decay", "min_lr_ratio")


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value != int(value):
        raise UserError(f"{WHERE}: {key}: expected a whole number, got {value!r}")
    if value < 1:
        raise UserError(f"{WHERE}: {key}: expected a positive whole number, got {value!r}")
    return int(value)


def _as_float(key: str, value: Any, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise UserError(f"{WHERE}: {key}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def resolve(config: dict[str, Any]) -> TinyLMConfig:
    """Defaults merged with ``config``, checked; unknown keys and bad values raise a UserError."""
    if not isinstance(config, dict):
        raise UserError(f"{WHERE}: expected a mapping of keys to values, got {type(config).__name__}")
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise UserError(f"{WHERE}: {unknown[0]}: unknown key; known keys are {', '.join(KEYS)}")
    values = {k: v for k, v in config.items() if v is not None or k in ("domains", "mix", "target")}
    for key in _POSITIVE_INTS:
        if key in values:
            values[key] = _as_int(key, values[key])
    if "seed" in values:
        if isinstance(values["seed"], bool) or not isinstance(values["seed"], numbers.Real):
            raise UserError(f"{WHERE}: seed: expected a whole number, got {values['seed']!r}")
        values["seed"] = int(values["seed"])
    for key in _FRACTIONS:
        if key in values:
            values[key] = _as_float(key, values[key], 0.0, 1.0)
    if "lr" in values:
        values["lr"] = _as_float("lr", values["lr"], 0.0)
        if values["lr"] <= 0:
            raise UserError(f"{WHERE}: lr: expected a positive number, got {values['lr']!r}")
    for key, lo, hi in (("weight_decay", 0.0, math.inf), ("beta1", 0.0, 1.0), ("beta2", 0.0, 1.0),
                        ("grad_clip", 0.0, math.inf)):
        if key in values:
            values[key] = _as_float(key, values[key], lo, hi)
    if values.get("schedule", "cosine") not in SCHEDULES:
        raise UserError(f"{WHERE}: schedule: expected one of {', '.join(SCHEDULES)}, "
                        f"got {values['schedule']!r}")
    if values.get("device", "auto") not in DEVICES:
        raise UserError(f"{WHERE}: device: expected one of {', '.join(DEVICES)}, got {values['device']!r}")
    if values.get("compile", "auto") not in ("auto", True, False):
        raise UserError(f"{WHERE}: compile: expected auto, true or false, got {values['compile']!r}")
    cfg = TinyLMConfig(**values)
    if cfg.d_model % cfg.n_heads:
        raise UserError(f"{WHERE}: n_heads: d_model {cfg.d_model} must be a multiple of "
                        f"n_heads {cfg.n_heads}")
    if cfg.warmup + (cfg.decay if cfg.schedule == "wsd" else 0.0) > 1.0:
        raise UserError(f"{WHERE}: warmup: warmup {cfg.warmup} + decay {cfg.decay} exceed the whole run")
    return cfg
