"""Tokenizers: byte-level by default (nothing to fetch), pluggable by name or import path.

A tokenizer is any object with ``name`` (a string that keys the data cache), ``vocab_size``, ``eos_id``
(the id that separates documents in a token stream) and ``encode(text) -> np.ndarray``. The config key
``tokenizer`` names one: a registered name (``"bytes"``) or ``"package.module:factory"``, a zero-argument
callable returning such an object (for example a wrapper around a Hugging Face tokenizer).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from sweeper.errors import UserError


@runtime_checkable
class Tokenizer(Protocol):
    """What the data pipeline and the model need from a tokenizer."""

    name: str
    vocab_size: int
    eos_id: int

    def encode(self, text: str) -> np.ndarray: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, documents separated by byte 0 (NUL never occurs in text)."""

    name = "bytes"
    vocab_size = 256
    eos_id = 0

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", errors="replace"), dtype=np.uint8)

    def decode(self, ids: np.ndarray) -> str:
        return np.asarray(ids, dtype=np.uint8).tobytes().decode("utf-8", errors="replace")


_REGISTRY: dict[str, Callable[[], Tokenizer]] = {"bytes": ByteTokenizer}


def register_tokenizer(name: str, factory: Callable[[], Tokenizer]) -> None:
    """Make ``factory`` available as ``config["tokenizer"] = name``."""
    _REGISTRY[name] = factory


def get_tokenizer(spec: str | Tokenizer = "bytes") -> Tokenizer:
    """Resolve a registered name, a ``module:factory`` path or a ready tokenizer object."""
    if isinstance(spec, Tokenizer):
        return spec
    if not isinstance(spec, str):
        raise UserError(f"tinylm config: tokenizer: expected a name or 'module:factory', got {spec!r}")
    if spec in _REGISTRY:
        return _REGISTRY[spec]()
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"tinylm config: tokenizer: cannot import {spec!r} ({exc})") from exc
        tok = factory()
        if not isinstance(tok, Tokenizer):
            raise UserError(f"tinylm config: tokenizer: {spec!r} did not return a tokenizer "
                            "(needs name, vocab_size, eos_id and encode)")
        return tok
    raise UserError(f"tinylm config: tokenizer: unknown {spec!r}; expected one of {sorted(_REGISTRY)} "
                    "or 'module:factory'")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise UserError(f"tinylm config: tokenizer: vocab_size {vocab_size} is too large")
