"""Where the text of each domain comes from: built-in sources (no download) and user files.

Built-in domains, all available on a fresh machine:

- ``code``: Python source files of the standard library (tests, ``site-packages`` and bundled wheels
  left out), a deterministic subset of whole files chosen by a hash of their path, up to 4 MiB.
- ``docstrings``: every module, class and function docstring of the same standard-library files
  (all of them, not only the subset), extracted with :mod:`ast`; about 1.8 MB on CPython 3.11.
- ``manual``: the reference-manual topics that ship with CPython in ``pydoc_data.topics`` (the text that
  ``help("if")`` shows); about 0.46 MB of English prose about Python.
- ``arith``: generated arithmetic, one expression with its exact result per line (``(37+5)*12=504``),
  2 MiB.
- ``records``: generated structured records, one JSON object per line whose derived fields are consistent
  (``total`` = ``qty`` x ``price``, ``age`` = 2025 - ``born``), 2 MiB.

Each source yields documents (strings); the data layer tokenizes them, separates documents with the
tokenizer's end-of-document id, splits train/validation and caches the token arrays.
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import random
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

from sweeper.errors import UserError

CODE_BYTES = 4 << 20
GENERATED_BYTES = 2 << 20
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "_bundled"}


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files, tests and third-party packages excluded, in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    if not files:
        raise UserError(f"tinylm: built-in domains code/docstrings: no Python sources found under {root} "
                        "(a Python installed without its .py files); use user domains instead")
    return files


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def code_documents() -> Iterator[str]:
    """Whole standard-library source files, in hash order of their relative path, up to CODE_BYTES."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib_files(), key=lambda p: hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest())
    total = 0
    for path in files:
        text = _read(path)
        if total + len(text) > CODE_BYTES:
            continue
        total += len(text)
        yield text


def docstring_documents() -> Iterator[str]:
    """Module, class and function docstrings of every standard-library source file."""
    for path in stdlib_files():
        try:
            tree = ast.parse(_read(path))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def manual_documents() -> Iterator[str]:
    """The reference-manual topics of ``pydoc_data`` in key order."""
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield topics[key]


class _Rng:
    """``random.random`` based draws: the Mersenne Twister stream is stable across Python versions."""

    def __init__(self, seed: int):
        self._r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + int(self._r.random() * (hi - lo + 1))

    def pick(self, seq: list[str]) -> str:
        return seq[self.int(0, len(seq) - 1)]


def _number(rng: _Rng) -> int:
    return rng.int(0, 10 ** rng.int(1, 4) - 1)


def _expression(rng: _Rng) -> tuple[str, int]:
    kind = rng.int(0, 5)
    a, b = _number(rng), _number(rng)
    if kind == 0:
        return f"{a}+{b}", a + b
    if kind == 1:
        return f"{a}-{b}", a - b
    if kind == 2:
        a, b = rng.int(0, 999), rng.int(0, 99)
        return f"{a}*{b}", a * b
    if kind == 3:
        b, q = rng.int(1, 99), rng.int(0, 999)
        return f"{b * q}/{b}", q
    c = rng.int(1, 99)
    if kind == 4:
        return f"({a}+{b})*{c}", (a + b) * c
    return f"{a}-{b}*{c}", a - b * c


def arith_documents() -> Iterator[str]:
    """Lines ``expression=result``, 64 lines a document, GENERATED_BYTES in all."""
    rng, total = _Rng(1), 0
    while total < GENERATED_BYTES:
        lines = []
        for _ in range(64):
            expr, value = _expression(rng)
            lines.append(f"{expr}={value}")
        doc = "\n".join(lines)
        total += len(doc) + 1
        yield doc


_CITIES = ["Lisbon", "Porto", "Lagos", "Nairobi", "Osaka", "Lima", "Quito", "Oslo", "Tartu", "Hanoi", "Cusco",
           "Accra", "Perth", "Bergen", "Kyoto", "Dakar", "Turin", "Leeds", "Malmo", "Graz", "Cork", "Split",
           "Izmir", "Pune", "Sapporo", "Recife", "Tunis", "Fez", "Bilbao", "Ghent", "Lyon", "Utrecht"]
_ITEMS = ["lamp", "kettle", "chair", "notebook", "bicycle", "teapot", "blanket", "radio", "camera",
          "umbrella", "backpack", "candle", "mirror", "basket", "clock", "drill", "ladder", "guitar"]
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "th", "br", "kl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io"]


def _name(rng: _Rng) -> str:
    parts = []
    for _ in range(2):
        word = "".join(rng.pick(_ONSETS) + rng.pick(_VOWELS) for _ in range(rng.int(1, 3)))
        parts.append(word.capitalize())
    return " ".join(parts)


def records_documents() -> Iterator[str]:
    """JSON lines of orders with consistent derived fields, 32 records a document, GENERATED_BYTES in all."""
    rng, total, next_id = _Rng(2), 0, 1000
    while total < GENERATED_BYTES:
        lines = []
        for _ in range(32):
            born, qty, cents = rng.int(1940, 2007), rng.int(1, 12), rng.int(50, 9999)
            record = {"id": next_id, "name": _name(rng), "city": rng.pick(_CITIES), "born": born,
                      "age": 2025 - born, "item": rng.pick(_ITEMS), "qty": qty, "price": f"{cents / 100:.2f}",
                      "total": f"{qty * cents / 100:.2f}"}
            next_id += rng.int(1, 9)
            lines.append(json.dumps(record))
        doc = "\n".join(lines)
        total += len(doc) + 1
        yield doc


BUILTIN: dict[str, Callable[[], Iterator[str]]] = {
    "code": code_documents,
    "docstrings": docstring_documents,
    "manual": manual_documents,
    "arith": arith_documents,
    "records": records_documents,
}

USER_SUFFIXES = (".txt", ".jsonl", ".parquet")


def resolve_paths(where: str, pattern: str | list[str]) -> list[Path]:
    """Expand a path, a glob or a list of them into existing files; a pattern matching nothing is an error."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    if not patterns:
        raise UserError(f"{where}: path: expected a file, a glob or a list of them, got an empty list")
    files: list[Path] = []
    for pat in patterns:
        if not isinstance(pat, str) or not pat:
            raise UserError(f"{where}: path: expected a file or glob string, got {pat!r}")
        expanded = os.path.expanduser(pat)
        matches = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else [expanded]
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise UserError(f"{where}: path: {pat!r} does not exist or matches no file")
        for m in matches:
            if not m.endswith(USER_SUFFIXES):
                raise UserError(f"{where}: path: {m!r}: expected a {', '.join(USER_SUFFIXES)} file")
        files.extend(Path(m).resolve() for m in matches)
    return files


def user_documents(where: str, files: list[Path], field: str) -> Iterator[str]:
    """Documents of user files: a ``.txt`` file is one, a ``.jsonl`` line or a ``.parquet`` row one."""
    for path in files:
        if path.suffix == ".txt":
            yield _read(path)
        elif path.suffix == ".jsonl":
            yield from _jsonl_documents(where, path, field)
        else:
            yield from _parquet_documents(where, path, field)


def _jsonl_documents(where: str, path: Path, field: str) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)[field]
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                raise UserError(f"{where}: {path}:{lineno}: expected a JSON object with a text field "
                                f"{field!r} ({type(exc).__name__}: {exc})") from exc
            if not isinstance(value, str):
                raise UserError(f"{where}: {path}:{lineno}: field {field!r} is {type(value).__name__}, "
                                "expected a string")
            yield value


def _parquet_documents(where: str, path: Path, field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"{where}: {path}: not a readable Parquet file ({exc})") from exc
    if field not in pf.schema_arrow.names:
        raise UserError(f"{where}: {path}: no column {field!r}; columns are {pf.schema_arrow.names}")
    if not (pa.types.is_string(pf.schema_arrow.field(field).type)
            or pa.types.is_large_string(pf.schema_arrow.field(field).type)):
        raise UserError(f"{where}: {path}: column {field!r} is {pf.schema_arrow.field(field).type}, "
                        "expected strings")
    for batch in pf.iter_batches(columns=[field], batch_size=4096):
        for value in batch.column(0).to_pylist():
            if value:
                yield value
