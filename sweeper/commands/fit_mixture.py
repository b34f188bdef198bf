"""``sweeper fit mixture``: RegMix regression and simplex search on a study's results or on any table.

    sweeper fit mixture results/regmix [--target m.loss.valid.target] [-o OUTDIR]
    sweeper fit mixture --from TABLE [TABLE ...] --weights 'GLOB' --target COLUMN
                        [--score OTHER [OTHER ...]] [-o PREDICTIONS.csv]

Several files after ``--from`` (or ``--score``) are joined on the columns they share (or ``--on``), so
mixtures and losses kept in separate files, as in the RegMix repository, can be used as they are.
"""

from __future__ import annotations

import argparse
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

    from sweeper import regmix_fit as rf
    from sweeper.laws.mixture import spearman
    from sweeper.regmix_fit import study_prior

    if bool(args.study) == bool(args.tables):
        raise UserError("fit mixture: give either a study results folder DIR or --from TABLE")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.study:
        source, target = str(args.study), args.target or DEFAULT_TARGET
        proxies, missing = rf.load_study_proxies(args.study, target, args.phase,
                                                 args.weights or DEFAULT_STUDY_WEIGHTS)
        keep = [c for c in ("trial_id",) if c in proxies.frame.columns]
    else:
        if not args.weights or not args.target:
            raise UserError("--from: also name the weight columns (--weights 'GLOB') and the target (--target COLUMN)")
        frame = read_tables(args.tables, args.on, "--from")
        source = " + ".join(args.tables)
        proxies, missing = rf.proxies_from_table(frame, args.weights, args.target, source)
        keep = list(frame.columns)
    if missing:
        print(f"fit mixture: {missing} rows have no {proxies.target}; left out", file=sys.stderr)

    prior = parse_prior(args.prior, proxies.domains) if args.prior else None
    if prior is None and args.study:
        prior = study_prior(args.study, proxies.domains)
    result = rf.fit_and_search(proxies, prior, mode=args.mode, models=models, folds=args.folds, seed=args.seed,
                               samples=args.samples, top_k=args.top_k)

    out_dir, out_file = output_paths(args.out, args.study)
    written: list[Path] = []
    scored_rho, extra_sets = None, []
    if args.score:
        other = read_tables(args.score, args.on, "--score")
        missing_cols = [c for c in proxies.columns if c not in other.columns]
        if missing_cols:
            raise UserError(f"{' + '.join(args.score)}: --score: missing weight columns {', '.join(missing_cols)}")
        predicted = result.fit.predict(rf.weight_matrix(other, proxies.columns, " + ".join(args.score)))
        scored = other.with_columns(pl.Series("predicted", predicted))
        written.append(rf.write_table(scored, out_file if out_file is not None else out_dir / "scored.csv"))
        if proxies.target in other.columns:
            measured = other[proxies.target].cast(pl.Float64, strict=False).to_numpy()
            ok = np.isfinite(measured)
            if ok.sum() >= 2:
                scored_rho = spearman(predicted[ok], measured[ok])
                extra_sets.append((f"scored ({int(ok.sum())}), rho {scored_rho:.4f}", measured[ok], predicted[ok]))
    written = rf.write_outputs(result, proxies, out_dir, source=source, keep=keep,
                               predictions_path=out_file if (out_file is not None and not args.score) else None,
                               extra_sets=extra_sets, held_out_spearman=scored_rho) + written

    lines = rf.report_lines(result, source)
    if args.score:
        rho_text = f"Spearman rho {scored_rho:.4f}" if scored_rho is not None else f"no {proxies.target} to compare"
        lines.insert(2, f"  scored {' + '.join(args.score)}: {rho_text}")
    print("\n".join(lines))
    print("  wrote " + ", ".join(str(p) for p in written))
    return 0


# --------------------------------------------------------------------------------------------------------------
# Inputs


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
