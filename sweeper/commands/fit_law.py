"""``sweeper fit law``: fit a scaling law to a study's results (or a table), write FIT.json and figures.

    sweeper fit law results/ladder --loss m.loss.valid.code -o fit.json --plot fit.png     # --law auto
    sweeper fit law results/ladder --law chinchilla --loss m.loss.valid.code -o fit.json
    sweeper fit law results/ladder --law power --x flops --loss m.loss --holdout-largest
    sweeper fit law --from runs.csv --n params --c flops --loss loss --drop-highest 5
    sweeper fit law results/ladder --n m.n_params --loss m.loss.valid.target \
        --components m.loss.valid.code=0.5 m.loss.valid.arith=0.5 -o fit.json       # one law per component
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from sweeper.commands.options import accept_negative_numbers

LAWS = ("auto", "chinchilla", "overtrain", "power")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fit L = E + A/N^alpha + B/D^beta (chinchilla), L = E + (a M^eta + b M^-eta) C^-eta with M = D/N "
        "(overtrain, Gadre et al. 2024) or L = E + A*x^-alpha (power) to a study's final "
        "losses (or every checkpoint with --intermediate), or to a CSV/Parquet table with --from. Huber "
        "loss (delta 1e-3) on log residuals, the global optimum over an exponent grid, bootstrap intervals "
        "over runs. Prints the parameters with intervals; -o writes FIT.json for `sweeper predict law`.")
    parser.add_argument("dir", nargs="?", help="the study's results folder, e.g. results/ladder")
    parser.add_argument("--from", dest="table", metavar="TABLE", help="fit a CSV or Parquet table instead of a study")
    parser.add_argument("--law", choices=LAWS, default="auto",
                        help="the law to fit; auto (default) backtests chinchilla, overtrain and the power law in "
                             "compute (fit without the largest 10%% and 25%% of the sizes, at least 1 and 2, predict "
                             "them) and keeps the one that erred least, its extrapolation error added to its "
                             "intervals")
    parser.add_argument("--loss", required=True, metavar="COL", help="the loss column, e.g. m.loss.valid.code")
    parser.add_argument("--x", choices=("flops", "tokens", "n"), default="flops",
                        help="the power law's variable (default flops)")
    parser.add_argument("--n", metavar="COL", help="model size N column (study default cfg.n_params; a "
                        "tinylm study reports it as m.n_params)")
    parser.add_argument("--d", metavar="COL", help="tokens D column (study default tokens)")
    parser.add_argument("--c", metavar="COL", help="compute C column in FLOPs (study default flops); "
                        "D = C / (6 N) where D is absent")
    parser.add_argument("--run", metavar="COL", help="with --from: the column naming each point's run, so the "
                        "bootstrap resamples whole runs (default: every row is its own run)")
    parser.add_argument("--components", nargs="+", metavar="COL=WEIGHT",
                        help="the loss is the weighted sum of these columns (a mixture's per-domain losses): fit "
                             "a law to each (--law auto: each its own form) and predict their sum; its interval "
                             "is the joint bootstrap widened by the sum's own backtest error")
    parser.add_argument("--phase", metavar="NAME", help="only the runs of this phase of the study (a ladder's "
                        "sweep is `search`, its validation runs `validate`; default every phase)")
    parser.add_argument("--intermediate", action="store_true",
                        help="fit every reported checkpoint of finished and pruned runs, not only final losses")
    parser.add_argument("--min-fraction", type=float, default=0.1, metavar="F",
                        help="with --intermediate, skip checkpoints before F of a run's tokens (default 0.1)")
    parser.add_argument("--windows", action="store_true",
                        help="with --law auto: also backtest each form fitted without the smallest 25%%, 50%% or "
                        "75%% of the sizes (laws fitted near the sizes they predict often extrapolate better), "
                        "and keep the window that erred least")
    parser.add_argument("--drop-highest", type=int, default=0, metavar="K",
                        help="drop the K highest-loss points first (outliers at tiny scale)")
    parser.add_argument("--holdout-largest", type=int, nargs="?", const=1, default=None, metavar="K",
                        help="backtest: also fit without the K largest model sizes (or compute budgets, "
                        "--holdout-by flops; K defaults to 1) and report the error of predicting them")
    parser.add_argument("--holdout-by", choices=("n", "flops", "tokens"), default=None,
                        help="what 'largest' means for --holdout-largest (default: n for chinchilla and overtrain, "
                        "the law's variable for power)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="B", help="bootstrap replicates (default 200)")
    parser.add_argument("--by", choices=("run", "size"), default="run",
                        help="bootstrap unit: runs (each seed is a run) or whole model sizes (default run)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--optimizer", choices=("trf", "lbfgs"), default="trf",
                        help="local optimiser from the grid's best starts (default trf)")
    parser.add_argument("--flops-per-token-param", type=float, default=6.0, metavar="K",
                        help="C = K N D for compute-optimal allocation and derived columns (default 6)")
    parser.add_argument("-o", "--output", metavar="FIT.json", help="write the fit as JSON")
    parser.add_argument("--plot", metavar="PNG", help="write loss-vs-compute with the fit and band; a law in N and "
                        "D also writes isoFLOP slices to <PNG stem>-isoflops.png")
    parser.add_argument("--json", action="store_true", help="print the fit as JSON instead of a table")
    accept_negative_numbers(parser)  # --flops-per-token-param -6e0 reaches the check in run, not argparse


def run(args: argparse.Namespace) -> int:
    from sweeper.errors import UserError
    from sweeper.laws import data as lawdata
    from sweeper.laws.power import X_NAMES, backtest, fit_law

    if bool(args.dir) == bool(args.table):
        raise UserError("fit law: give a study folder DIR or --from TABLE (one of them)")
    if args.run and not args.table:
        raise UserError("--run: only for --from TABLE (a study's runs are its trials)")
    if args.phase and args.table:
        raise UserError("--phase: only for a study folder DIR (a table has no phases)")
    if not 0 < args.flops_per_token_param < float("inf"):
        raise UserError(f"--flops-per-token-param: {args.flops_per_token_param}: expected a positive number")
    if not 0 <= args.min_fraction < 1:
        raise UserError(f"--min-fraction: {args.min_fraction}: expected a number in [0, 1)")
    if args.windows and args.law != "auto":
        raise UserError(f"--windows: only with --law auto (fit windows are chosen by backtest), not {args.law}")
    if args.components:
        return _fit_components(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = lawdata.drop_highest(_points(args, args.loss), args.drop_highest)
        options = {"bootstrap": args.bootstrap, "by": args.by, "level": args.level, "seed": args.seed,
                   "optimizer": args.optimizer, "flops_per_token_param": args.flops_per_token_param,
                   **_windows(args)}
        fit = fit_law(data, args.law, args.x, **options)
        fit.data.update({"intermediate": args.intermediate, "drop_highest": args.drop_highest})
        if args.holdout_largest is not None:
            by = X_NAMES[args.holdout_by] if args.holdout_by else None
            fit.holdout = backtest(data, args.law, args.x, holdout_by=by, count=args.holdout_largest, **options)
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"sweeper: warning: {message}", file=sys.stderr)
    if args.output:
        fit.save(args.output)
    plots = _plots(fit, data, args.plot) if args.plot else []
    if args.json:
        print(json.dumps(fit.to_dict(samples=False), indent=2))
    else:
        from sweeper.views.law import print_law_fit

        print_law_fit(fit, args.output, plots)
    return 0


def _points(args: argparse.Namespace, loss: str):
    """The points of ``loss`` from the table (--from) or the study folder, as the flags say."""
    from sweeper.law_inputs import law_points, table_points

    if args.table:
        return table_points(args.table, loss, n=args.n, d=args.d, c=args.c, run=args.run,
                            flops_per_token_param=args.flops_per_token_param)
    return law_points(args.dir, loss, n=args.n or "cfg.n_params", d=args.d or "tokens", c=args.c or "flops",
                      intermediate=args.intermediate, min_fraction=args.min_fraction,
                      flops_per_token_param=args.flops_per_token_param, phase=args.phase)


def parse_components(values: list[str]) -> dict[str, float]:
    """``COL=WEIGHT`` pairs as a mapping; a UserError naming --components for anything else."""
    from sweeper.errors import UserError

    out: dict[str, float] = {}
    for item in values:
        name, sep, weight = item.rpartition("=")
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if not sep or not name or not 0 < value < float("inf"):
            raise UserError(f"--components: {item!r}: expected COL=WEIGHT with a positive weight")
        if name in out:
            raise UserError(f"--components: {name} is given twice")
        out[name] = value
    if len(out) < 2:
        raise UserError("--components: expected at least 2 COL=WEIGHT pairs")
    return out


def _windows(args: argparse.Namespace) -> dict[str, Any]:
    """``--windows``: the fit windows auto tries (`WINDOW_SHARES`), as a fit's keyword; none without it."""
    from sweeper.laws.select import WINDOW_SHARES

    return {"windows": WINDOW_SHARES} if args.windows else {}


def _fit_components(args: argparse.Namespace) -> int:
    """``--components``: one law per component, the sum predicted; printed, and written with -o."""
    from sweeper.errors import UserError
    from sweeper.laws.components import fit_components

    unsupported = [flag for flag, used in (("--intermediate", args.intermediate), ("--drop-highest",
                   args.drop_highest), ("--holdout-largest", args.holdout_largest is not None),
                   ("--plot", args.plot), ("--by size", args.by != "run")) if used]
    if unsupported:
        raise UserError(f"--components: not with {', '.join(unsupported)} (the components are fitted to the final "
                        f"losses of the same runs, resampled by run)")
    weights = parse_components(args.components)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = _points(args, args.loss)
        parts = {name: replace(_points(args, name), source=f"{target.source} {name}") for name in weights}
        fit = fit_components(parts, weights, target, args.law, bootstrap=args.bootstrap, level=args.level,
                             seed=args.seed, optimizer=args.optimizer,
                             flops_per_token_param=args.flops_per_token_param, **_windows(args))
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"sweeper: warning: {message}", file=sys.stderr)
    if args.output:
        fit.save(args.output)
    if args.json:
        print(json.dumps(fit.to_dict(samples=False), indent=2, default=float))
        return 0
    from sweeper.views.law import print_component_fit

    print_component_fit(fit, args.output)
    return 0


def _plots(fit, data, png: str) -> list[Path]:
    from sweeper.laws.plots import plot_fit, plot_isoflops
    from sweeper.laws.power import ND_LAWS

    path = Path(png)
    out = [plot_fit(fit, data, path)]
    if fit.law in ND_LAWS:
        out.append(plot_isoflops(fit, data, path.with_name(f"{path.stem}-isoflops{path.suffix or '.png'}")))
    return out
