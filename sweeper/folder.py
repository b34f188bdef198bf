"""A study's results folder: what sweeper writes there, the fingerprint of the study as first run,
and starting over (``--fresh``) without touching anyone else's files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from sweeper.atomic import write_text_atomic
from sweeper.errors import UserError

STUDY_COPY = "study.yaml"
FINGERPRINT = "study.fingerprint.json"
LOCK_FILE = ".lock"
# Everything sweeper itself writes in a results folder (the lock stays: the running process holds it).
OWN_ENTRIES = (
    "rows", "ray", "optuna.journal", "optuna.journal.lock", "searcher-state.json", STUDY_COPY, FINGERPRINT,
    "mixture", "analysis", "decide", "laws", "report.html",
)
# Changes that keep every earlier trial meaningful; anything else changes what the study measures.
SAFE_KEYS = ("budget.", "description", "max_failures", "resources.")


def check_results_path(results: Path) -> None:
    """A results folder must be a folder (or not exist yet), not a file."""
    if results.exists() and not results.is_dir():
        raise UserError(f"--results {results}: is a file, expected a folder for the study's results")


def recorded_study_name(results: Path) -> str | None:
    """The name of the study whose results the folder holds (from its fingerprint or copy), if any."""
    for name, load in ((FINGERPRINT, lambda t: json.loads(t).get("study", {})), (STUDY_COPY, yaml.safe_load)):
        path = results / name
        if path.is_file():
            try:
                data = load(path.read_text())
            except (ValueError, yaml.YAMLError, OSError):
                continue
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                return data["name"]
    return None


def clear_own_files(results: Path, study_name: str, other_study: bool = False) -> list[str]:
    """``--fresh``: delete sweeper's own files in ``results`` (rows, journals, states, analyses) and
    nothing else; refuse a folder that holds another study's results unless ``other_study``.
    Returns the names deleted."""
    recorded = recorded_study_name(results)
    if recorded is not None and recorded != study_name and not other_study:
        raise UserError(
            f"{results}: holds the results of study {recorded!r}, not {study_name!r}; --fresh would delete them. "
            "Write elsewhere with --results DIR, or add --force to start over in this folder anyway"
        )
    removed = []
    for name in OWN_ENTRIES:
        path = results / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed


def _measured_part(data: dict[str, Any]) -> dict[str, Any]:
    """The keys of a resolved study that decide what its trials measure (everything but SAFE_KEYS)."""
    flat = flat_keys(data)
    return {k: v for k, v in flat.items() if not k.startswith(SAFE_KEYS)}


def fingerprint_of(data: dict[str, Any]) -> str:
    """A hash of what a study measures: equal for studies whose trials are comparable."""
    text = json.dumps(_measured_part(data), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_fingerprint(results: Path, data: dict[str, Any]) -> None:
    """Record the study as first run; later runs of the folder are checked against it."""
    payload = {"sha256": fingerprint_of(data), "study": data}
    write_text_atomic(results / FINGERPRINT, json.dumps(payload, indent=1, default=str) + "\n")


def original_study(results: Path) -> dict[str, Any]:
    """The study the folder's trials ran: its fingerprint (or, in a folder from before fingerprints,
    its ``study.yaml``, which then becomes the fingerprint)."""
    path = results / FINGERPRINT
    if path.is_file():
        try:
            payload = json.loads(path.read_text())
            study = payload["study"]
            if not isinstance(study, dict) or payload.get("sha256") != fingerprint_of(study):
                raise ValueError("its hash does not match its study")
            return study
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: damaged study fingerprint ({exc}); the folder's trials cannot be checked "
                            "against the study, so start a new folder with --results DIR") from None
    copy = results / STUDY_COPY
    if not copy.is_file():
        raise UserError(f"{results}: no {STUDY_COPY} here, so there is no study to resume")
    try:
        data = yaml.safe_load(copy.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{copy}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{copy}: expected a mapping of study keys")
    write_fingerprint(results, data)
    return data


def flat_keys(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``budget.trials``); an empty mapping stays as one key."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flat_keys(value, f"{prefix}{key}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: data}


def study_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(unsafe, safe) differences between two resolved studies, as 'key: old -> new' lines."""
    a, b = flat_keys(old), flat_keys(new)
    unsafe, safe = [], []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            line = f"{key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}"
            (safe if key.startswith(SAFE_KEYS) else unsafe).append(line)
    return unsafe, safe


def check_resumable(results: Path, study_data: dict[str, Any]) -> list[str]:
    """Refuse a resume whose study measures something else than the folder's trials did (compared with
    the study as first run, not with an editable copy); returns the safe changes."""
    unsafe, safe = study_changes(original_study(results), study_data)
    if unsafe:
        raise UserError(
            f"{results}: the study changed since its first run ({'; '.join(unsafe)}), so its trials would not "
            "be comparable; change only budget, resources, max_failures or description to resume, "
            "or start a new folder with --results DIR"
        )
    return safe
