"""Points for the scaling laws: (model size N, tokens D, compute C, loss) from a study or an external table.

A study's points come from its Parquet rows (``sweeper.store``): by default one point per finished trial
(its summary row), or with ``intermediate=True`` every reported checkpoint of every finished or pruned
trial (the Hitchhiker's Guide finding: intermediate checkpoints make laws cheaper and steadier). Each
point keeps the run it came from, so that the bootstrap can resample whole runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from sweeper.errors import UserError

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


def load_table(path: str | Path, loss: str, *, n: str | None = None, d: str | None = None,
               c: str | None = None, run: str | None = None, extra: Sequence[str] = (),
               flops_per_token_param: float = FLOPS_PER_TOKEN_PARAM) -> LawData:
    """Points from a CSV or Parquet table. D defaults to C / (6 N) when only C is given, C to 6 N D.

    (N is never derived: counted FLOPs of real models are not exactly 6 N D.)
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a CSV or Parquet table)")
    frame = _read_table(path)
    wanted = {"n": n, "d": d, "c": c}
    if not any(wanted.values()):
        raise UserError(f"{path}: name at least one of --n, --d, --c (columns: {', '.join(frame.columns)})")
    return _from_frame(frame, str(path), loss, wanted, run, extra, flops_per_token_param)


def _read_table(path: Path) -> pl.DataFrame:
    """A CSV or Parquet table, or a UserError naming the file if it is empty or cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".tsv", ".txt"):
        raise UserError(f"{path}: unknown table format {path.suffix!r} (expected .csv, .tsv or .parquet)")
    kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
    try:
        if kind == "Parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=10_000)
    except pl.exceptions.NoDataError:
        raise UserError(f"{path}: empty file (expected a {kind} table with a header and one row per point)") from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable {kind} table ({_first_line(exc)})") from None
    if not frame.columns:
        raise UserError(f"{path}: no columns (expected a {kind} table with a header and one row per point)")
    return frame


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_study(study_dir: str | Path, loss: str, *, n: str = "cfg.n_params", d: str = "tokens",
               c: str = "flops", intermediate: bool = False, min_fraction: float = 0.1,
               extra: Sequence[str] = (), flops_per_token_param: float = FLOPS_PER_TOKEN_PARAM) -> LawData:
    """Points from a study's results: final losses of finished trials, or every checkpoint if ``intermediate``.

    Intermediate checkpoints below ``min_fraction`` of their run's final tokens are left out (the earliest
    part of a curve is dominated by transients, not by the law).
    """
    from sweeper import store

    study_dir = Path(study_dir)
    if not store.rows_dir(study_dir).is_dir():
        raise UserError(f"{study_dir}: not a study results folder (no rows/ with Parquet files)")
    rows = store.scan_rows(study_dir)
    try:
        return _study_points(study_dir, rows, loss, n, d, c, intermediate, min_fraction, extra, flops_per_token_param)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UserError(f"{store.rows_dir(study_dir)}: cannot read the study's rows ({_first_line(exc)})") from None


def _study_points(study_dir: Path, rows: pl.LazyFrame, loss: str, n: str, d: str, c: str, intermediate: bool,
                  min_fraction: float, extra: Sequence[str], flops_per_token_param: float) -> LawData:
    names = rows.collect_schema().names()
    if loss not in names:
        metrics = [x for x in names if x.startswith("m.")]
        raise UserError(f"{study_dir}: {loss}: no such column; metrics: {', '.join(metrics) or 'none'}")
    if intermediate and d not in names:
        raise UserError(f"{study_dir}: {d}: no such column; --intermediate needs the tokens of every checkpoint")
    summaries = rows.filter(pl.col("row_kind") == "summary")
    # One attempt per trial: the last one (a retried trial's earlier attempts are superseded).
    last = (summaries.group_by("trial_id").agg(pl.col("attempt").max(), pl.col("status").sort_by("attempt").last()))
    if intermediate:
        keep = last.filter(pl.col("status").is_in(["done", "pruned"])).select("trial_id", "attempt")
        frame = (rows.filter(pl.col("row_kind") == "report").join(keep, on=["trial_id", "attempt"])
                 .filter(pl.col(d) >= min_fraction * pl.col(d).max().over("trial_id"))
                 .filter(pl.col(d) > 0)
                 .sort("trial_id", "report_index").collect())
    else:
        keep = last.filter(pl.col("status") == "done").select("trial_id", "attempt")
        frame = summaries.join(keep, on=["trial_id", "attempt"]).sort("trial_id").collect()
    wanted = {"n": n if n in names else None, "d": d if d in names else None, "c": c if c in names else None}
    if wanted["n"] and frame[n].null_count():
        # A run-level value reported once (tinylm reports n_params with its first report): spread it over the run.
        per_run = rows.group_by("trial_id").agg(pl.col(n).drop_nulls().first().alias("_n")).collect()
        frame = frame.join(per_run, on="trial_id", how="left").with_columns(pl.col(n).fill_null(pl.col("_n")))
    return _from_frame(frame, str(study_dir), loss, wanted, "trial_id", extra, flops_per_token_param,
                       requested={"n": n, "d": d, "c": c})


def _from_frame(frame: pl.DataFrame, source: str, loss: str, wanted: dict[str, str | None], run: str | None,
                extra: Sequence[str], k: float, requested: dict[str, str] | None = None) -> LawData:
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
        raise UserError(f"{data.source}: --drop-highest {count}: only {len(data)} points")
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


def split_largest(data: LawData, by: str, count: int = 1) -> tuple[LawData, LawData]:
    """Hold out the ``count`` largest levels of ``by`` (``n`` or ``c``): (train, held out)."""
    levels = distinct_levels(data.get(by))
    n_levels = int(levels.max()) + 1
    if count < 1 or count >= n_levels:
        raise UserError(f"{data.source}: --holdout-largest {count}: {VARIABLES[by]} has {n_levels} distinct "
                        f"values; hold out at least 1 and leave at least 1")
    test = levels >= n_levels - count
    return data.take(np.flatnonzero(~test)), data.take(np.flatnonzero(test))
