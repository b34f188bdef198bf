"""Number and duration formatting shared by the live view, ``status`` and ``query`` (no Ray here)."""

from __future__ import annotations

from typing import Any


def fmt_num(value: Any) -> str:
    """Compact number formatting for tables: 3 significant digits, SI-like exponents for large values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.3g}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def fmt_duration(seconds: float | None) -> str:
    """Seconds as m:ss or h:mm:ss (``?`` when unknown)."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
