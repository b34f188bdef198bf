"""Points for the scaling laws: (model size N, tokens D, compute C, loss) from a frame or an external table.

A study's points are built from its rows by `sweeper.law_inputs.law_points` (one point per finished trial,
or every checkpoint); here they arrive as a DataFrame. Each point keeps the run it came from, so that the
bootstrap can resample whole runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from sweeper.errors import ParameterError, UserError

FLOPS_PER_TOKEN_PARAM = 6.0
"""C = 6 N D: forward plus backward FLOPs per parameter per token (Kaplan et al., Hoffmann et al.)."""

VARIABLES = {"n": "N (parameters)", "d": "D (tokens)", "c": "C (FLOPs)"}


@dataclass(frozen=True)
class LawData:
    """Points to fit: ``loss`` and whichever of ``n``, ``d``, ``c`` the source has, plus run labels.

    ``columns`` names the source column behind each variable (for error messages and provenance);
    ``extra`` holds further columns asked for (e.g. a downstream accuracy for the two-step law).
    """

    loss: np.ndarray
    n: np.ndarray | None = None
    d: np.ndarray | None = None
    c: np.ndarray | None = None
    run: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "data"
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.run is None:
            object.__setattr__(self, "run", np.arange(len(self.loss)).astype(str))

    def __len__(self) -> int:
        return len(self.loss)

    def get(self, var: str) -> np.ndarray:
        """The values of ``n``, ``d`` or ``c``; a UserError naming the missing column if there are none."""
        values = getattr(self, var)
        if values is None:
            flag = {"n": "--n", "d": "--d", "c": "--c"}[var]
            raise UserError(f"{self.source}: {self.columns.get(var, var)}: no such column, so no values for "
                            f"{VARIABLES[var]}; name the column with {flag} COL")
        return values

    def take(self, index: np.ndarray) -> LawData:
        """The points at ``index`` (an integer or boolean array)."""
        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[index]

        return replace(self, loss=self.loss[index], n=pick(self.n), d=pick(self.d), c=pick(self.c),
                       run=self.run[index], extra={k: v[index] for k, v in self.extra.items()})

    @property
    def n_runs(self) -> int:
        return len(np.unique(self.run))


def from_frame(frame: pl.DataFrame, source: str, loss: str, wanted: dict[str, str | None], run: str | None,
               extra: Sequence[str] = (), k: float = FLOPS_PER_TOKEN_PARAM,
               requested: dict[str, str] | None = None) -> LawData:
    """Points from a frame's columns: ``wanted`` maps n, d, c to a column (or None); ``run`` names the run
    column (None: each row its own run). D defaults to C / (k N), C to k N D."""
    for col in [loss, *(v for v in wanted.values() if v), *([run] if run else []), *extra]:
        if col not in frame.columns:
            raise UserError(f"{source}: {col}: no such column (columns: {', '.join(frame.columns)})")
    total = frame.height
    values = numbers(frame, loss, source)
    bad = ~np.isfinite(values)
    if bad.any():
        warnings.warn(f"{source}: {loss}: dropped {int(bad.sum())} of {total} points whose loss is NaN or "
                      f"missing", UserWarning, stacklevel=3)
        frame = frame.filter(pl.Series(~bad))
        values = values[~bad]
    if values.size and (values <= 0).any():
        raise UserError(f"{source}: {loss}: losses must be positive (found {values.min():.4g}); the laws fit log L")
    arrays: dict[str, np.ndarray | None] = {}
    for var, col in wanted.items():
        if not col:
            arrays[var] = None
            continue
        arr = numbers(frame, col, source)
        if not np.isfinite(arr).all():
            raise UserError(f"{source}: {col}: {int((~np.isfinite(arr)).sum())} missing or non-numeric values "
                            f"for {VARIABLES[var]}")
        if (arr <= 0).any():
            raise UserError(f"{source}: {col}: {VARIABLES[var]} must be positive (found {arr.min():.4g})")
        arrays[var] = arr
    n, d, c = arrays["n"], arrays["d"], arrays["c"]
    if d is None and n is not None and c is not None:
        d = c / (k * n)
    if c is None and n is not None and d is not None:
        c = k * n * d
    columns = {var: col or (requested or {}).get(var) or var for var, col in wanted.items()}
    return LawData(
        loss=values, n=n, d=d, c=c,
        run=frame[run].cast(pl.Utf8).to_numpy() if run else None,
        extra={col: numbers(frame, col, source) for col in extra},
        source=source, columns={**columns, "loss": loss},
    )


def numbers(frame: pl.DataFrame, col: str, source: str) -> np.ndarray:
    """Column ``col`` as floats (missing values as NaN), or a UserError naming the source and the column if
    it holds anything but numbers (text that does not read as a number, dates, lists, ...)."""
    series = frame[col]
    if series.dtype.is_numeric() or series.dtype in (pl.Null, pl.Boolean):
        return series.cast(pl.Float64).to_numpy()
    if series.dtype != pl.String:
        raise UserError(f"{source}: {col}: expected numbers, found {series.dtype} values")
    cast = series.cast(pl.Float64, strict=False)
    bad = cast.is_null() & series.is_not_null()
    if bad.any():
        raise UserError(f"{source}: {col}: expected numbers, found text such as {series.filter(bad)[0]!r} "
                        f"({bad.sum()} of {len(series)} values)")
    return cast.to_numpy()


def drop_highest(data: LawData, count: int) -> LawData:
    """Drop the ``count`` highest-loss points (Besiroglu et al. drop 5 outliers from the Chinchilla table)."""
    if count <= 0:
        return data
    if count >= len(data):
        raise ParameterError("drop_highest", f"{count}: only {len(data)} points", source=data.source)
    order = np.argsort(data.loss, kind="stable")
    return data.take(np.sort(order[: len(data) - count]))


def distinct_levels(values: np.ndarray, rtol: float = 1e-3) -> np.ndarray:
    """Label values that agree within ``rtol`` (relative) as one level, 0 for the smallest.

    Model sizes read off a figure (or computed in floating point) differ in the last digits; they are one
    size for the purposes of a holdout or a by-size bootstrap.
    """
    logs = np.log(np.asarray(values, dtype=float))
    order = np.argsort(logs, kind="stable")
    step = np.r_[0, (np.diff(logs[order]) > rtol).cumsum()]
    labels = np.empty(len(values), dtype=int)
    labels[order] = step
    return labels


def drop_smallest(data: LawData, by: str, share: float, min_levels: int = 3) -> LawData:
    """Drop the smallest ``floor(share x levels)`` levels of ``by`` (``n``, ``d`` or ``c``), keeping at least
    ``min_levels`` of them: a fit window that starts nearer the sizes it predicts."""
    levels = distinct_levels(data.get(by))
    n_levels = int(levels.max()) + 1
    dropped = math.floor(share * n_levels)
    if dropped <= 0:
        return data
    if n_levels - dropped < min_levels:
        raise ParameterError("window", f"dropping {dropped} of {n_levels} {VARIABLES[by]} values leaves fewer "
                             f"than {min_levels}", source=data.source)
    return data.take(np.flatnonzero(levels >= dropped))


def split_largest(data: LawData, by: str, count: int = 1) -> tuple[LawData, LawData]:
    """Hold out the ``count`` largest levels of ``by`` (``n`` or ``c``): (train, held out)."""
    levels = distinct_levels(data.get(by))
    n_levels = int(levels.max()) + 1
    if count < 1 or count >= n_levels:
        raise ParameterError("holdout_largest", f"{count}: {VARIABLES[by]} has {n_levels} distinct values; hold "
                             "out at least 1 and leave at least 1", source=data.source)
    test = levels >= n_levels - count
    return data.take(np.flatnonzero(~test)), data.take(np.flatnonzero(test))
