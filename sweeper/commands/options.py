"""Parsers and checks of command-line values shared by the commands (flags in, library values out)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from sweeper.errors import UserError
from sweeper.tables import TABLE_SUFFIXES

NEGATIVE_NUMBER = re.compile(r"^-(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)
"""What argparse should read as a (negative) number, not as an option: -1, -2.5, -1e9, -2.5E+3, -inf."""


def accept_negative_numbers(parser: argparse.ArgumentParser) -> None:
    """Let ``--n -1e9`` reach ``run``, which refuses it with the positivity message.

    argparse takes an argument that starts with '-' for an option unless it matches the parser's private
    ``_negative_number_matcher``, which in older Pythons (3.11 among them) knows -1 and -2.5 but not -1e9
    (newer ones know -1e9 but not -inf), so ``--n -1e9`` failed inside argparse with "expected one
    argument". A ``type=`` function cannot help (argparse refuses before calling it) and there is no public
    hook, so this parser's matcher is set here; the parser has no option that looks like a negative
    number, so none is shadowed.
    """
    parser._negative_number_matcher = NEGATIVE_NUMBER  # noqa: SLF001 - see the docstring


def one_source(study: str | None, table: object, command: str) -> None:
    """A command reads a study folder DIR or ``--from TABLE``, never both, never neither."""
    if bool(study) == bool(table):
        raise UserError(f"{command}: give either a study results folder DIR or --from TABLE")


def refuse_flags(given: Mapping[str, object], why: str) -> None:
    """A UserError naming the flags in ``given`` (flag -> value) that have a value: they do not apply."""
    extra = [flag for flag, value in given.items() if value]
    if extra:
        raise UserError(f"{', '.join(extra)}: {why}")


def parse_names(text: str, allowed: Sequence[str], flag: str) -> list[str]:
    """A comma-separated list of names from ``allowed`` (spaces in a name may be written as '-')."""
    names = {a.replace(" ", "-"): a for a in allowed}
    parts = [p.strip().replace(" ", "-") for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in names]
    if unknown or not parts:
        raise UserError(f"{flag}: {', '.join(unknown) or 'none'}: expected some of {', '.join(names)}")
    return [names[p] for p in parts]


def parse_fractions(text: str, flag: str = "--checkpoints") -> list[float]:
    """Comma-separated fractions in (0, 1] (``0.5`` or ``50%``)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part.rstrip("%")) / (100.0 if part.endswith("%") else 1.0)
        except ValueError:
            raise UserError(f"{flag}: {part!r}: expected a fraction such as 0.5 (or 50%)") from None
        if not 0 < value <= 1:
            raise UserError(f"{flag}: {part!r}: expected a fraction in (0, 1]")
        out.append(value)
    if not out:
        raise UserError(f"{flag}: expected at least one fraction, e.g. 0.25,0.5,1")
    return out


def parse_prior(text: str, domains: Sequence[str]) -> dict[str, float]:
    """``--prior``: 'domain=share,...' or a YAML/JSON file holding {domain: share} (or mix: {...})."""
    import yaml

    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise UserError(f"--prior: {path}: no such file")
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), dict):
            data = next(iter(data.values()))
    else:
        data = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise UserError(f"--prior: {part!r}: expected domain=share")
            data[name.strip()] = value.strip()
    if not isinstance(data, dict):
        raise UserError(f"--prior: expected a mapping {{domain: share}}, got {type(data).__name__}")
    from sweeper.maths.simplex import as_mixture

    return as_mixture(data, domains, "--prior")


def output_paths(out: str | None, default_dir: Path) -> tuple[Path, Path | None]:
    """(folder for the outputs, file for the main table or None) from ``-o``: a path ending in a table
    suffix names the file (the other outputs go next to it), any other names the folder."""
    if out is None:
        return default_dir, None
    path = Path(out)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return (path.parent if str(path.parent) else Path(".")), path
    return path, None
