"""Domains as cached, memory-mapped token arrays with a deterministic split, and mixture sampling.

A domain's documents are tokenized once per machine, joined with the tokenizer's end-of-document id and
cut into blocks; one block in ``VALID_EVERY`` (5%) is held out for validation. Both splits are stored as
``.npy`` files under the cache directory (``$SWEEPER_CACHE/tinylm``, default ``~/.cache/sweeper/tinylm``)
and opened with ``mmap_mode="r"``, so a trial starts in milliseconds and concurrent trials share pages.
Files are written under a temporary name and renamed, so trials that prepare the same domain at the same
time never see a partial file.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.errors import UserError

from . import sources
from .tokenizer import Tokenizer, token_dtype

DATA_VERSION = 1
VALID_EVERY = 20
MAX_BLOCK = 8192
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class DomainSpec:
    """A named text source: a built-in name, or user files (path or glob, and the text field/column)."""

    name: str
    files: tuple[Path, ...] = ()
    field: str = "text"

    @property
    def builtin(self) -> bool:
        return not self.files


@dataclass(frozen=True)
class Domain:
    """A prepared domain: memory-mapped train and validation token arrays."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    meta: dict[str, Any]


def cache_dir() -> Path:
    """``$SWEEPER_CACHE/tinylm``, or ``~/.cache/sweeper/tinylm``."""
    root = os.environ.get("SWEEPER_CACHE") or os.path.join("~", ".cache", "sweeper")
    return Path(os.path.expanduser(root)) / "tinylm"


def available_domains() -> list[str]:
    """Names of the built-in domains."""
    return list(sources.BUILTIN)


def parse_domains(entries: Any, where: str = "tinylm config: domains") -> list[DomainSpec]:
    """Validate ``domains`` (None for all built-ins; names or ``{name, path[, field]}`` entries)."""
    if entries is None:
        return [DomainSpec(n) for n in sources.BUILTIN]
    if isinstance(entries, (str, dict)):
        entries = [entries]
    if not isinstance(entries, (list, tuple)) or not entries:
        raise UserError(f"{where}: expected a non-empty list of domain names or {{name, path}} entries")
    specs: list[DomainSpec] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            if entry not in sources.BUILTIN:
                raise UserError(f"{where}[{i}]: unknown domain {entry!r}; built-in domains are "
                                f"{available_domains()}, or give {{name, path}} for your own files")
            specs.append(DomainSpec(entry))
            continue
        if not isinstance(entry, dict):
            raise UserError(f"{where}[{i}]: expected a domain name or a {{name, path}} mapping, "
                            f"got {entry!r}")
        unknown = set(entry) - {"name", "path", "field"}
        if unknown:
            raise UserError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}; expected name, path, field")
        name, field = entry.get("name"), entry.get("field", "text")
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserError(f"{where}[{i}]: name: expected a word of letters, digits, '_' or '-' "
                            f"(it becomes a column name), got {name!r}")
        if "path" not in entry:
            raise UserError(f"{where}[{i}] ({name}): path: missing; expected a file or glob")
        if not isinstance(field, str) or not field:
            raise UserError(f"{where}[{i}] ({name}): field: expected a column or key name, got {field!r}")
        files = sources.resolve_paths(f"{where}[{i}] ({name})", entry["path"])
        specs.append(DomainSpec(name, tuple(files), field))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{where}: domain names must be unique; repeated: {dupes}")
    return specs


def _cache_key(spec: DomainSpec, tok: Tokenizer) -> str:
    h = hashlib.sha1(f"v{DATA_VERSION}|{tok.name}|{tok.vocab_size}|{spec.name}".encode())
    if spec.builtin:
        h.update(f"|py{sys.version_info[0]}.{sys.version_info[1]}".encode())
    else:
        h.update(f"|{spec.field}".encode())
        for f in spec.files:
            st = f.stat()
            h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    safe_tok = re.sub(r"[^A-Za-z0-9_.-]", "_", tok.name)
    return f"{safe_tok}/{spec.name}-{h.hexdigest()[:12]}"


def _documents(spec: DomainSpec) -> Iterator[str]:
    if spec.builtin:
        return sources.BUILTIN[spec.name]()
    return sources.user_documents(f"tinylm domain {spec.name!r}", list(spec.files), spec.field)


def tokenize_stream(docs: Iterable[str], tok: Tokenizer) -> np.ndarray:
    """Every document's tokens followed by the end-of-document id, as one array."""
    dtype = token_dtype(tok.vocab_size)
    eos = np.array([tok.eos_id], dtype=dtype)
    parts: list[np.ndarray] = []
    for doc in docs:
        if doc:
            parts.extend((np.asarray(tok.encode(doc)).astype(dtype, copy=False), eos))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def split_stream(stream: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut into blocks (at most MAX_BLOCK tokens, about 200 or more where the domain allows); every
    VALID_EVERY-th block, counting from the 10th, is validation (spread through the domain)."""
    n = len(stream)
    block = int(min(MAX_BLOCK, max(64, n // (VALID_EVERY * 10))))
    starts = np.arange(0, n, block)
    is_valid = (np.arange(len(starts)) % VALID_EVERY) == VALID_EVERY // 2
    if not is_valid.any() and len(starts) > 1:
        is_valid[-1] = True
    train = [stream[s:s + block] for s, v in zip(starts, is_valid, strict=True) if not v]
    valid = [stream[s:s + block] for s, v in zip(starts, is_valid, strict=True) if v]
    empty = stream[:0]
    return (np.concatenate(train) if train else empty), (np.concatenate(valid) if valid else empty)


def _atomic_save(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build(spec: DomainSpec, tok: Tokenizer, out: Path) -> None:
    stream = tokenize_stream(_documents(spec), tok)
    where = f"tinylm domain {spec.name!r}"
    if not len(stream):
        raise UserError(f"{where}: no text found in {[str(f) for f in spec.files] or 'the built-in source'}")
    train, valid = split_stream(stream)
    if not len(train) or not len(valid):
        raise UserError(f"{where}: only {len(stream)} tokens, too few to hold out a validation split")
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save(out / "train.npy", lambda fh: np.save(fh, train))
    _atomic_save(out / "valid.npy", lambda fh: np.save(fh, valid))
    meta = {"name": spec.name, "source": "builtin" if spec.builtin else [str(f) for f in spec.files],
            "field": None if spec.builtin else spec.field, "tokenizer": tok.name,
            "n_tokens": int(len(stream)), "n_train": int(len(train)), "n_valid": int(len(valid)),
            "data_version": DATA_VERSION}
    _atomic_save(out / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=1).encode()))


def load_domain(spec: DomainSpec, tok: Tokenizer, root: Path | None = None) -> Domain:
    """The domain's memory-mapped splits, building and caching them first if this machine has not yet."""
    out = (root or cache_dir()) / _cache_key(spec, tok)
    if not (out / "meta.json").exists():
        _build(spec, tok, out)
    meta = json.loads((out / "meta.json").read_text())
    return Domain(spec.name, np.load(out / "train.npy", mmap_mode="r"),
                  np.load(out / "valid.npy", mmap_mode="r"), meta)


def load_domains(specs: list[DomainSpec], tok: Tokenizer) -> list[Domain]:
    """Prepare (once per machine) and open every domain."""
    return [load_domain(s, tok) for s in specs]


class MixtureSampler:
    """Training batches whose rows are windows of ``ctx + 1`` tokens, each row from one domain.

    Rows are assigned to domains deterministically so that after every batch each domain's row count is
    within one row of ``weight * rows so far`` (largest-deficit-first). Window offsets are uniform draws
    from one generator per domain, seeded by ``seed`` and the domain's name: common random numbers, so
    two runs with the same seed read each domain's windows in the same order whatever their mixtures, and
    their difference in loss measures the mixtures rather than which windows each happened to draw.
    ``counts`` holds the rows drawn from each domain so far.
    """

    def __init__(self, arrays: list[np.ndarray], weights: list[float], batch_size: int, ctx: int, seed: int,
                 names: list[str] | None = None):
        w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        self._weights = self.weights.tolist()
        self.windows = [np.lib.stride_tricks.sliding_window_view(a, ctx + 1) if wi > 0 else None
                        for a, wi in zip(arrays, self.weights, strict=True)]
        self.batch_size = batch_size
        names = names if names is not None else [str(i) for i in range(len(arrays))]
        self.rngs = [np.random.default_rng([seed, zlib.crc32(name.encode())]) for name in names]
        self.counts = np.zeros(len(arrays), dtype=np.int64)

    def _assign(self) -> np.ndarray:
        # plain Python: for a handful of domains this is ~20x faster than numpy calls per row
        weights, counts = self._weights, self.counts.tolist()
        total = sum(counts)
        for _ in range(self.batch_size):
            total += 1
            best = max(range(len(counts)), key=lambda i: weights[i] * total - counts[i])
            counts[best] += 1
        return np.asarray(counts, dtype=np.int64) - self.counts

    def next_batch(self) -> np.ndarray:
        """An array (batch_size, ctx + 1) of token ids."""
        per_batch = self._assign()
        rows = []
        for k, win, rng in zip(per_batch, self.windows, self.rngs, strict=True):
            if k:
                rows.append(win[rng.integers(0, len(win), size=int(k))])
        self.counts += per_batch
        return np.concatenate(rows)

    def shares(self) -> np.ndarray:
        """Realised share of training tokens from each domain."""
        return self.counts / max(1, int(self.counts.sum()))


def eval_windows(valid: np.ndarray, ctx: int, n_tokens: int) -> np.ndarray:
    """Fixed validation windows (n, ctx + 1): evenly spaced, about ``n_tokens`` predicted tokens."""
    span = len(valid) - ctx - 1
    n = max(1, min(-(-n_tokens // ctx), span // ctx + 1))
    starts = np.linspace(0, span, n).round().astype(np.int64)
    return np.lib.stride_tricks.sliding_window_view(valid, ctx + 1)[starts]


def resolve_weights(key: str, value: Any, names: list[str]) -> dict[str, float]:
    """Normalised non-negative weights over ``names`` from a mapping (absent names weigh 0) or one name."""
    where = f"tinylm config: {key}"
    if isinstance(value, str):
        value = {value: 1.0}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{where}: expected a domain name or a mapping of domain names to weights, "
                        f"got {value!r}")
    for name, w in value.items():
        if name not in names:
            raise UserError(f"{where}: unknown domain {name!r}; the study's domains are {names}")
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not w >= 0 or w == float("inf"):
            raise UserError(f"{where}: {name}: expected a finite non-negative weight, got {w!r}")
    total = float(sum(value.values()))
    if total <= 0:
        raise UserError(f"{where}: the weights sum to 0; at least one domain needs a positive weight")
    return {n: float(value.get(n, 0.0)) / total for n in names}
