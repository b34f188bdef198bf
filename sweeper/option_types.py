"""Checking ``search.options`` against a sampler's or searcher's signature before anything runs.

A value of the wrong type (``n_startup_trials: "x"``) is accepted by most constructors and fails much
later, inside Ray, at the first suggestion. The annotations of the signature (plain strings under
``from __future__ import annotations``) say what each option takes; the plain types a study file can
hold (numbers, booleans, strings, lists, mappings, null) are checked, and an option whose annotation
names only Python objects (a callable, a sampler) can only be null in a study file.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_SCALARS: dict[str, Callable[[Any], bool]] = {
    "None": lambda v: v is None,
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "Any": lambda v: True,
}
_CONTAINERS = {"list": list, "Sequence": list, "tuple": list, "dict": dict, "Mapping": dict}


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == sep and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def matches(annotation: str, value: Any) -> bool:
    """Whether a value from a study file fits an annotation such as ``int | None`` or ``list[float]``."""
    for option in _split_top(annotation, "|"):
        option = option.removeprefix("typing.").removeprefix("collections.abc.")
        head, _, inner = option.partition("[")
        if head in _SCALARS and not inner:
            if _SCALARS[head](value):
                return True
        elif head == "Literal":
            if value in [_literal(x) for x in _split_top(inner[:-1], ",")]:
                return True
        elif head in ("Optional",):
            if value is None or matches(inner[:-1], value):
                return True
        elif head in _CONTAINERS and isinstance(value, _CONTAINERS[head]):
            if _CONTAINERS[head] is dict or not inner:
                return True
            item = _split_top(inner[:-1], ",")[0]
            if all(matches(item, v) for v in value):
                return True
    return False


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return {"True": True, "False": False, "None": None}.get(text, text)


def check_option_types(func: Callable[..., Any], options: dict[str, Any]) -> list[str]:
    """Problems with ``options`` as keyword arguments of ``func``: 'name: expected T, got V' lines."""
    params = inspect.signature(func).parameters
    problems = []
    for name, value in options.items():
        param = params.get(name)
        if param is None:
            continue
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            default = param.default
            if default is None or default is inspect.Parameter.empty:
                continue
            annotation = type(default).__name__
        if not isinstance(annotation, str):
            annotation = getattr(annotation, "__name__", str(annotation))
        if not matches(annotation, value):
            problems.append(f"{name}: expected {annotation}, got {value!r}")
    return problems
