"""``sweeper decide``: DataDecide on a study's results or on any table of runs (usage in ``EXAMPLES``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sweeper.errors import UserError

DEFAULT_FROM_OUT = "decide"

EXAMPLES = """\
examples:
  sweeper decide results/datadecide
  sweeper decide results/datadecide --metric m.loss.valid.target --metric m.loss.valid.code --json dd.json
  sweeper decide --from runs.csv --recipe data --size params --seed seed --compute flops \\
      --metric acc --metric bpb --maximize acc --target-size 1e9

outputs (in -o DIR; default DIR/decide for a study, ./decide with --from): decisions.csv (every predictor
variant: metric, predictor, sizes, seeds, checkpoint, compute, decision accuracy, Spearman, Kendall,
on_frontier), frontier.png (compute against decision accuracy, one panel per proxy metric, the single-scale
baseline always drawn) and decide.json (or --json OUT; '-' prints it instead of the tables).

decision accuracy: over all pairs of recipes with different target values (the judged metric, the first
--metric, at the target size, mean over seeds), the share a predictor orders as the target does; a pair it
predicts tied counts 1/2. Each number of seeds k is the mean over subsets of k seeds.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sweeper decide``."""
    from sweeper.laws.decide import CHECKPOINTS, PREDICTORS

    parser.description = (
        "DataDecide (Magnusson et al. 2025): rank data recipes from small runs and measure how often the "
        "ranking holds at the target size. Scores single-scale ranking at each proxy size and power-law / "
        "two-step extrapolation, each with fewer seeds and earlier checkpoints, on every proxy metric; prints "
        "decision accuracy against compute and the frontier.")
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("study", nargs="?", metavar="DIR",
                        help="a study's results folder (cfg.recipe, cfg.size, seed, flops from its Parquet rows)")
    parser.add_argument("--from", dest="table", metavar="TABLE",
                        help="analyse an external table instead (CSV or Parquet; one row per run, or per "
                             "checkpoint of a run with --compute)")
    for flag, text in (("--recipe", "the data recipe column"), ("--size", "the model size column (labels or numbers)"),
                       ("--seed", "the seed column (default: one run per recipe and size)"),
                       ("--compute", "cumulative training compute (FLOPs); default: numeric sizes stand in")):
        parser.add_argument(flag, metavar="COL", help=f"with --from: {text}")
    parser.add_argument("--metric", action="append", metavar="COL",
                        help="a metric column (repeatable): the first is judged at the target size, every one "
                             "is scored as a small-scale proxy (study default: the decide: block of "
                             "DIR/study.yaml, else m.loss.valid.target)")
    parser.add_argument("--target-size", metavar="X",
                        help="the size whose runs are the truth (default: the study's decide.target_size, else "
                             "the largest size)")
    parser.add_argument("--higher-is-better", action="store_true",
                        help="every metric is better when higher (e.g. accuracies); default: lower is better "
                             "(losses)")
    parser.add_argument("--maximize", action="append", metavar="COL",
                        help="this metric only is better when higher (repeatable), e.g. an accuracy judged at the "
                             "target with loss proxies")
    parser.add_argument("--predictors", default=",".join(p.replace(" ", "-") for p in PREDICTORS), metavar="LIST",
                        help=f"comma-separated, from {', '.join(p.replace(' ', '-') for p in PREDICTORS)} "
                             "(default all)")
    parser.add_argument("--checkpoints", default=",".join(f"{c:g}" for c in CHECKPOINTS), metavar="FRACTIONS",
                        help="single-scale checkpoints as fractions of each run's compute (default "
                             f"{','.join(f'{c:g}' for c in CHECKPOINTS)})")
    parser.add_argument("--law-seeds", choices=("each", "all"), default="each",
                        help="power law with every number of seeds (each, default) or with all seeds only; "
                             "the two-step always fits every proxy size and seed (about 1-2 s per recipe and "
                             "proxy metric: leave it out with --predictors single-scale,power-law for a quick look)")
    parser.add_argument("--max-subsets", type=int, default=10, metavar="N",
                        help="at most N seed subsets per number of seeds (drawn at random beyond; default 10)")
    parser.add_argument("--phase", default=None,
                        help="with DIR: only trials of this phase (default: every phase)")
    parser.add_argument("-o", "--out", metavar="DIR",
                        help="output folder (default DIR/decide for a study, ./decide with --from)")
    parser.add_argument("--json", metavar="OUT", help="write the JSON here (default OUTDIR/decide.json); '-' "
                        "prints it on stdout instead of the tables")
    parser.add_argument("--all", action="store_true",
                        help="print every predictor variant, not only the baseline, the law fits with all "
                             "seeds and the frontier")


def run(args: argparse.Namespace) -> int:
    """Load the runs, score the predictors, write CSV/JSON/PNG and print the tables. Returns the exit code."""
    import json

    from sweeper.commands.options import parse_fractions, parse_names
    from sweeper.laws import decide as dd
    from sweeper.laws.decide_plots import plot_frontier
    from sweeper.tables import write_table
    from sweeper.views.decide import print_report

    predictors = parse_names(args.predictors, dd.PREDICTORS, "--predictors")
    checkpoints = parse_fractions(args.checkpoints, "--checkpoints")
    if args.max_subsets < 1:
        raise UserError(f"--max-subsets: expected at least 1, got {args.max_subsets}")
    decisions = dd.evaluate(load_runs(args), predictors=predictors, checkpoints=checkpoints,
                            max_subsets=args.max_subsets, law_seeds=args.law_seeds)
    out_dir = Path(args.out) if args.out else (Path(args.study) / "decide" if args.study else Path(DEFAULT_FROM_OUT))
    written = [write_table(decisions.table, out_dir / "decisions.csv"),
               plot_frontier(decisions, out_dir / "frontier.png")]
    if args.json == "-":
        print(json.dumps(decisions.to_dict(), indent=2))
        print("\n".join(f"sweeper decide: wrote {path}" for path in written), file=sys.stderr)
        return 0
    written.append(decisions.save_json(args.json or out_dir / "decide.json"))
    print_report(decisions, written, show_all=args.all)
    return 0


def load_runs(args: argparse.Namespace) -> Any:
    """The runs of a study folder or of ``--from TABLE``; UserError for a missing or contradictory flag."""
    from sweeper.commands.options import one_source, refuse_flags
    from sweeper.law_inputs import decide_runs
    from sweeper.laws import decide as dd
    from sweeper.tables import read_table

    one_source(args.study, args.table, "decide")
    if args.higher_is_better and args.maximize:
        raise UserError("--higher-is-better applies to every metric; give it or --maximize COL, not both")
    hib: bool | list[str] | None = True if args.higher_is_better else (list(args.maximize) if args.maximize else None)
    if args.study:
        refuse_flags({"--recipe": args.recipe, "--size": args.size, "--seed": args.seed, "--compute": args.compute},
                     "only with --from TABLE (a study's columns are cfg.recipe, cfg.size, seed and flops)")
        return decide_runs(args.study, metrics=args.metric, target_size=args.target_size, higher_is_better=hib,
                           phase=args.phase)
    missing = [f for f, v in (("--recipe", args.recipe), ("--size", args.size), ("--metric", args.metric)) if not v]
    if missing:
        raise UserError(f"--from: also name {', '.join(missing)} (the recipe, size and metric columns)")
    refuse_flags({"--phase": args.phase}, "only with a study folder DIR")
    return dd.from_frame(read_table(args.table, "--from"), recipe=args.recipe, size=args.size, metrics=args.metric,
                         seed=args.seed, compute=args.compute, target_size=args.target_size,
                         higher_is_better=False if hib is None else hib, source=str(args.table))
