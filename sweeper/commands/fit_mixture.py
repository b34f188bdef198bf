"""``sweeper fit mixture``: RegMix regression and simplex search on a study's results or on any table (usage in
``EXAMPLES``). Several files after ``--from`` (or ``--score``) are joined on the columns they share (or ``--on``),
so mixtures and losses kept in separate files, as in the RegMix repository, can be used as they are."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweeper.errors import UserError

DEFAULT_TARGET = "m.loss.valid.target"
DEFAULT_STUDY_WEIGHTS = "mix.*"
DEFAULT_FROM_OUT = "mixture_fit"

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
    from sweeper.laws.mixture import AUTO, DEFAULT_TRANSFORM, MODELS, TRANSFORMS

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
    parser.add_argument("--transform", choices=(AUTO, *TRANSFORMS), default=DEFAULT_TRANSFORM,
                        help="what the regressions learn: the target itself (none), its ranks (rank: the search "
                             "needs only the order, and a few very bad mixtures do not dominate the fit), "
                             "log(target) or -1/target (inverse); auto (default) cross-validates each and keeps "
                             "the best; predictions are in target units")
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
    from sweeper import regmix_fit as rf
    from sweeper.commands.options import one_source, output_paths, parse_prior
    from sweeper.tables import read_tables, write_table

    one_source(args.study, args.tables, "fit mixture")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.study:
        source = str(args.study)
        proxies, missing = rf.load_study_proxies(args.study, args.target or DEFAULT_TARGET, args.phase,
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
        prior = rf.study_prior(args.study, proxies.domains)
    result = rf.fit_and_search(proxies, prior, mode=args.mode, models=models, folds=args.folds, seed=args.seed,
                               samples=args.samples, top_k=args.top_k, transform=args.transform)

    out_dir, out_file = output_paths(args.out, Path(args.study) / "mixture" if args.study else Path(DEFAULT_FROM_OUT))
    scored = None
    if args.score:
        other = " + ".join(args.score)
        scored = rf.score_mixtures(result, proxies, read_tables(args.score, args.on, "--score"), f"--score: {other}")
        scored_path = write_table(scored.frame, out_file if out_file is not None else out_dir / "scored.csv")
    extra_sets = ([(f"scored ({len(scored.measured)}), rho {scored.rho:.4f}", scored.measured, scored.predicted)]
                  if scored is not None and scored.rho is not None else [])
    written = rf.write_outputs(result, proxies, out_dir, source=source, keep=keep,
                               predictions_path=out_file if (out_file is not None and not args.score) else None,
                               extra_sets=extra_sets, held_out_spearman=scored.rho if scored else None)
    lines = rf.report_lines(result, source)
    if scored is not None:
        written.append(scored_path)
        rho = f"Spearman rho {scored.rho:.4f}" if scored.rho is not None else f"no {proxies.target} to compare"
        lines.insert(2, f"  scored {' + '.join(args.score)}: {rho}")
    print("\n".join(lines))
    print("  wrote " + ", ".join(str(p) for p in written))
    return 0
