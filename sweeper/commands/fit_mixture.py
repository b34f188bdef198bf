"""``sweeper fit mixture``: RegMix regression and simplex search on a study's results or on any table.

    sweeper fit mixture results/regmix [--target m.loss.valid.target] [-o OUTDIR]
    sweeper fit mixture --from TABLE [TABLE ...] --weights 'GLOB' --target COLUMN
                        [--score OTHER [OTHER ...]] [-o PREDICTIONS.csv]

Several files after ``--from`` (or ``--score``) are joined on the columns they share (or ``--on``), so
mixtures and losses kept in separate files, as in the RegMix repository, can be used as they are.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeper.errors import UserError

DEFAULT_TARGET = "m.loss.valid.target"
DEFAULT_STUDY_WEIGHTS = "mix.*"
DEFAULT_FROM_OUT = "mixture_fit"
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")

EXAMPLES = """\
examples:
  sweeper fit mixture results/regmix
  sweeper fit mixture results/regmix --target m.loss.valid.code -o results/regmix/code_mixture
  sweeper fit mixture --from train_mixture_1m.csv train_pile_loss_1m.csv --weights 'train_the_pile_*' \\
      --target metric/the_pile_pile_cc_val_loss \\
      --score test_mixture_1m.csv test_pile_loss_1m.csv -o test_predictions.csv

outputs (in OUTDIR, or next to -o FILE.csv): mixture_predictions.csv (each fitted mixture's cross-validated
and in-sample prediction), best_mixture.yaml (mix: {domain: weight}, usable as a study's fixed mixture),
mixture_fit.json, mixture_predicted_vs_measured.png, mixture_weights.png; with --score, OTHER's rows with a
`predicted` column (-o FILE.csv, else OUTDIR/scored.csv).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sweeper fit mixture``."""
    from sweeper.laws.mixture import MODELS

    parser.description = (
        "RegMix: fit a regression from mixture weights to a target metric (LightGBM, linear, log-quadratic "
        "and their ensemble; the one with the best k-fold cross-validated Spearman rho is used), then score "
        "fresh mixtures drawn around the prior and write the mean of the best ones as the predicted best "
        "mixture.")
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("study", nargs="?", metavar="DIR",
                        help="a study's results folder (results/<study>); weights are its mix.* columns")
    parser.add_argument("--from", dest="tables", nargs="+", metavar="TABLE",
                        help="fit on an external table instead (CSV or Parquet); several are joined")
    parser.add_argument("--on", action="append", metavar="COLUMN",
                        help="join key for several tables (repeatable; default: the columns they all share)")
    parser.add_argument("--weights", metavar="GLOB",
                        help=f"weight columns, by a glob of their names (default {DEFAULT_STUDY_WEIGHTS!r} for a "
                             "study; required with --from). Rows are normalised to sum to one")
    parser.add_argument("--target", metavar="COLUMN",
                        help=f"the metric to predict (default {DEFAULT_TARGET} for a study; required with --from)")
    parser.add_argument("--mode", choices=("min", "max"), default="min",
                        help="min: lower target is better, e.g. a loss (default); max: e.g. an accuracy")
    parser.add_argument("--score", nargs="+", metavar="OTHER",
                        help="predict the target for OTHER's mixtures (CSV or Parquet, several are joined) and "
                             "write its rows back with a `predicted` column; prints Spearman rho if OTHER has "
                             "the target column")
    parser.add_argument("-o", "--out", metavar="PATH",
                        help="output folder, or a .csv/.parquet file for the predictions (the scored rows with "
                             "--score), the other outputs going next to it (default: DIR/mixture for a study, "
                             f"./{DEFAULT_FROM_OUT} with --from)")
    parser.add_argument("--models", default=",".join(MODELS), metavar="LIST",
                        help=f"regressions to compare, comma-separated (default {','.join(MODELS)})")
    parser.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default 5)")
    parser.add_argument("--samples", type=int, default=100_000, metavar="N",
                        help="mixtures drawn around the prior and scored by the fit (default 100000)")
    parser.add_argument("--top-k", type=int, default=128, metavar="K",
                        help="the pick is the mean of the K best-scored mixtures (default 128)")
    parser.add_argument("--prior", metavar="MIX",
                        help="centre of the search, 'domain=share,...' or a YAML/JSON file with {domain: share} "
                             "(or mix: {...}); default: the prior in DIR/study.yaml, else the mean of the fitted "
                             "mixtures")
    parser.add_argument("--phase", default="search",
                        help="with DIR: use trials of this phase (default search; rows without a phase count)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds, LightGBM and the draws (default 0)")


def run(args: argparse.Namespace) -> int:
    """Fit, search, write the outputs; print a summary. Returns the exit code."""
    import numpy as np
    import polars as pl

    from sweeper.laws import mixture as mx
    from sweeper.laws import mixture_plots

    if bool(args.study) == bool(args.tables):
        raise UserError("fit mixture: give either a study results folder DIR or --from TABLE")
    models = [m.strip() for m in args.models.split(",") if m.strip()]

    if args.study:
        frame = read_study_trials(args.study, args.phase)
        source, pattern = str(args.study), args.weights or DEFAULT_STUDY_WEIGHTS
        target = args.target or DEFAULT_TARGET
        keep_cols = [c for c in ("trial_id",) if c in frame.columns]
    else:
        if not args.weights or not args.target:
            raise UserError("--from: also name the weight columns (--weights 'GLOB') and the target (--target COLUMN)")
        frame = read_tables(args.tables, args.on, "--from")
        source, pattern, target = " + ".join(args.tables), args.weights, args.target
        keep_cols = list(frame.columns)

    columns, domains = weight_columns(frame.columns, pattern, source)
    if target not in frame.columns:
        raise UserError(f"{source}: --target: no column {target!r}; numeric columns: "
                        f"{', '.join(c for c, t in frame.schema.items() if t.is_numeric() and c not in columns)}")
    if target in columns:
        raise UserError(f"--target: {target!r} is also matched by --weights {pattern!r}")
    frame = frame.with_columns(pl.col(target).cast(pl.Float64, strict=False))
    valid = frame[target].is_not_null() & frame[target].is_not_nan()
    if not valid.all():
        print(f"fit mixture: {int((~valid).sum())} of {frame.height} rows have no {target}; left out",
              file=sys.stderr)
        frame = frame.filter(valid)
    x = weight_matrix(frame, columns, source)
    y = frame[target].to_numpy()

    fit = mx.fit_mixture(x, y, domains, models=models, folds=args.folds, seed=args.seed, target_name=target)
    prior = parse_prior(args.prior, domains) if args.prior else None
    if prior is None and args.study:
        prior = study_prior(args.study, domains)
    pick = mx.search_simplex(fit, prior, n_samples=args.samples, top_k=args.top_k, mode=args.mode,
                             seed=args.seed)

    out_dir, out_file = output_paths(args.out, args.study)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    fitted = frame.select(list(dict.fromkeys([*keep_cols, *columns, target]))).with_columns(
        pl.Series("predicted_cv", fit.cv_predictions[fit.model]), pl.Series("predicted", fit.fitted))
    fit_path = out_file if (out_file is not None and not args.score) else out_dir / "mixture_predictions.csv"
    written.append(write_table(fitted, fit_path))

    scored_rho = None
    sets = [(f"proxies, {fit.folds}-fold CV ({fit.n_rows}), rho {fit.rho:.4f}", y, fit.cv_predictions[fit.model])]
    if args.score:
        other = read_tables(args.score, args.on, "--score")
        missing = [c for c in columns if c not in other.columns]
        if missing:
            raise UserError(f"{' + '.join(args.score)}: --score: missing weight columns {', '.join(missing)}")
        predicted = fit.predict(weight_matrix(other, columns, " + ".join(args.score)))
        scored = other.with_columns(pl.Series("predicted", predicted))
        written.append(write_table(scored, out_file if out_file is not None else out_dir / "scored.csv"))
        if target in other.columns:
            measured = other[target].cast(pl.Float64, strict=False).to_numpy()
            ok = np.isfinite(measured)
            if ok.sum() >= 2:
                scored_rho = mx.spearman(predicted[ok], measured[ok])
                sets.append((f"scored ({int(ok.sum())}), rho {scored_rho:.4f}", measured[ok], predicted[ok]))

    best_row = int(np.argmin(y) if args.mode == "min" else np.argmax(y))
    centre = pick.prior
    baselines = {
        "RegMix pick": pick.mixture,
        "uniform": {d: 1.0 / len(domains) for d in domains},
        "prior" if prior is not None else "mean of fitted mixtures": centre,
        "best fitted mixture": dict(zip(domains, fit.weights[best_row].tolist(), strict=True)),
    }
    predicted_baselines = {name: float(fit.predict(m)[0]) for name, m in baselines.items()}
    notes = {name: f"predicted {v:.4g}" for name, v in predicted_baselines.items()}
    notes["best fitted mixture"] += f", measured {y[best_row]:.4g}"

    yaml_path = out_dir / "best_mixture.yaml"
    yaml_path.write_text(mx.mixture_yaml(pick, fit, source=source))
    written.append(yaml_path)
    written.append(mixture_plots.plot_predicted_vs_measured(
        out_dir / "mixture_predicted_vs_measured.png", sets, target=target,
        title=f"RegMix fit ({fit.model})\n{target}"))
    written.append(mixture_plots.plot_mixtures(
        out_dir / "mixture_weights.png", baselines, notes=notes,
        title=f"RegMix pick against baselines\n{target}"))
    summary = {"source": source, "weights": columns, **fit.summary(), "held_out_spearman": scored_rho,
               "pick": pick.summary(), "baselines": {n: {"mixture": m, "predicted": predicted_baselines[n]}
                                                     for n, m in baselines.items()},
               "best_fitted_measured": float(y[best_row])}
    json_path = out_dir / "mixture_fit.json"
    json_path.write_text(json.dumps(summary, indent=2))
    written.append(json_path)

    print(f"fit mixture: {fit.n_rows} mixtures x {len(domains)} domains -> {target} ({source})")
    print(f"  {fit.folds}-fold CV Spearman rho: "
          + "  ".join(f"{m} {r:.4f}" for m, r in fit.cv_rho.items()) + f"  -> using {fit.model}")
    if args.score:
        rho_text = f"Spearman rho {scored_rho:.4f}" if scored_rho is not None else f"no {target} to compare"
        print(f"  scored {' + '.join(args.score)}: {rho_text}")
    print(f"  predicted best mixture (mean of top {pick.top_k} of {pick.n_samples}): "
          f"predicted {target} {pick.predicted:.4f} (the top {pick.top_k} themselves: {pick.top_mean:.4f})")
    for name, value in predicted_baselines.items():
        if name != "RegMix pick":
            print(f"    vs {name}: predicted {value:.4f}")
    top = sorted(pick.mixture.items(), key=lambda kv: -kv[1])
    print("    " + ", ".join(f"{d} {w:.3f}" for d, w in top[:8]) + (", ..." if len(top) > 8 else ""))
    beaten = [name for name, value in predicted_baselines.items() if name != "RegMix pick"
              and (value < pick.predicted if args.mode == "min" else value > pick.predicted)]
    if beaten:
        print(f"  note: the model predicts {', '.join(beaten)} better than the averaged pick itself: the top "
              f"{pick.top_k} draws lie apart on the simplex and their mean falls between them (try a smaller "
              f"--top-k, and trust only a measured comparison: regmix.validate trains each at a larger scale)")
    print("  wrote " + ", ".join(str(p) for p in written))
    return 0


# --------------------------------------------------------------------------------------------------------------
# Inputs


def read_study_trials(study_dir: str | Path, phase: str | None = "search") -> Any:
    """Finished trials of a study (last attempt of each, status done) as a Polars DataFrame."""
    import polars as pl

    from sweeper import store

    study_dir = Path(study_dir)
    if not store.rows_dir(study_dir).is_dir():
        raise UserError(f"{study_dir}: not a study results folder (no rows/ with Parquet files)")
    trials = store.read_trials(study_dir)
    if phase and "phase" in trials.columns:
        trials = trials.filter(pl.col("phase").is_null() | (pl.col("phase") == phase))
    if trials.is_empty():
        raise UserError(f"{study_dir}: no finished trials yet")
    trials = (trials.sort("trial_id", "attempt").unique(subset="trial_id", keep="last", maintain_order=True)
              .filter(pl.col("status") == "done"))
    if trials.is_empty():
        raise UserError(f"{study_dir}: no trial has finished (status done) yet")
    # Trial ids are random: order rows by their mixtures so the same proxies give the same folds and fit.
    weights = sorted(c for c in trials.columns if c.startswith("mix."))
    return trials.sort([*weights, "trial_id"])


def read_table(path: str | Path, flag: str) -> Any:
    """A CSV, TSV or Parquet file as a Polars DataFrame."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag}: {path}: no such file (expected a CSV or Parquet table)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UserError(f"{flag}: {path}: cannot read the table ({exc})") from None
    raise UserError(f"{flag}: {path}: unknown table format {path.suffix!r} (expected .csv, .tsv or .parquet)")


def read_tables(paths: Sequence[str], on: Sequence[str] | None, flag: str) -> Any:
    """One table, or several joined (inner) on ``on`` or on the columns they all share."""
    frames = [read_table(p, flag) for p in paths]
    if len(frames) == 1:
        return frames[0]
    keys = list(on) if on else [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]
    if not keys:
        raise UserError(f"{flag}: {', '.join(paths)}: the tables share no column to join on; name one with --on")
    for path, f in zip(paths, frames, strict=True):
        missing = [k for k in keys if k not in f.columns]
        if missing:
            raise UserError(f"{flag}: {path}: --on: no column {', '.join(missing)}")
        if f.select(keys).is_duplicated().any():
            raise UserError(f"{flag}: {path}: join key {', '.join(keys)} is not unique; name the key with --on")
    joined = frames[0]
    for f in frames[1:]:
        joined = joined.join(f, on=keys, how="inner")
    if joined.is_empty():
        raise UserError(f"{flag}: {', '.join(paths)}: no rows match on {', '.join(keys)}")
    return joined


def weight_columns(names: Sequence[str], pattern: str, source: str) -> tuple[list[str], list[str]]:
    """Columns whose names match the glob ``pattern`` (in table order) and their domain names: the column
    names without the pattern's literal prefix and suffix (``mix.code`` -> ``code`` for ``mix.*``)."""
    columns = [c for c in names if fnmatch.fnmatchcase(c, pattern)]
    if len(columns) < 2:
        raise UserError(f"{source}: --weights {pattern!r}: expected at least two matching columns, found "
                        f"{len(columns)} (columns: {', '.join(names[:30])}{', ...' if len(names) > 30 else ''})")
    wild = [i for i, ch in enumerate(pattern) if ch in "*?[]"]
    prefix, suffix = (pattern[:wild[0]], pattern[wild[-1] + 1:]) if wild else ("", "")
    domains = [c[len(prefix):len(c) - len(suffix)] for c in columns]
    if len(set(domains)) != len(domains) or not all(domains):
        domains = list(columns)
    return columns, domains


def weight_matrix(frame: Any, columns: Sequence[str], source: str) -> Any:
    """The weight columns as a float array; a UserError for missing or non-numeric weights."""
    import numpy as np
    import polars as pl

    x = frame.select(pl.col(c).cast(pl.Float64, strict=False) for c in columns).to_numpy()
    bad = ~np.isfinite(x)
    if bad.any():
        col = columns[int(np.argmax(bad.any(axis=0)))]
        raise UserError(f"{source}: {col}: {int(bad.any(axis=1).sum())} rows have a missing or non-numeric weight")
    return x


def study_prior(study_dir: str | Path, domains: Sequence[str]) -> dict[str, float] | None:
    """The prior the study in ``DIR/study.yaml`` sampled its mixtures around (its simplex parameter's
    ``prior``, else the workload's token shares; see `sweeper.search.mixture_prior`), if there is one."""
    from sweeper.search import mixture_prior
    from sweeper.search.dirichlet import as_mixture
    from sweeper.spec import load_study

    path = Path(study_dir) / "study.yaml"
    try:
        study = load_study(path)
    except UserError:
        return None
    if not any(getattr(p, "type", None) == "simplex" for p in study.space.values()):
        return None
    return as_mixture(mixture_prior(study), domains, f"{path}: prior")


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
    from sweeper.search.dirichlet import as_mixture

    return as_mixture(data, domains, "--prior")


# --------------------------------------------------------------------------------------------------------------
# Outputs


def output_paths(out: str | None, study: str | None) -> tuple[Path, Path | None]:
    """(folder for the outputs, predictions file or None) from ``-o``."""
    if out is None:
        return (Path(study) / "mixture" if study else Path(DEFAULT_FROM_OUT)), None
    path = Path(out)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return (path.parent if str(path.parent) else Path(".")), path
    return path, None


def write_table(frame: Any, path: Path) -> Path:
    """Write CSV or Parquet by the file's suffix, through a temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(tmp)
    else:
        frame.write_csv(tmp, separator="\t" if path.suffix.lower() == ".tsv" else ",")
    tmp.replace(path)
    return path
