"""``sweeper fit hparams``: hyperparameter scaling laws along a study's (cost, metric) Pareto front.

    sweeper fit hparams results/lr_scaling
    sweeper fit hparams results/lr_scaling --metric m.loss.valid.code --cost flops --params lr d_model -o laws.json

Writes ``DIR/analysis/pareto.csv`` (the front: one row per trial, cost, metric and config), a PNG of cost
against metric with every trial faded behind the front, a PNG of each law, and the laws as JSON.
The front is CSV, not Parquet, so that ``DIR/**/*.parquet`` still reads only result rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Take the Pareto front of a study's finished trials in (cost, metric) and fit each numeric "
        "hyperparameter along it as a power law in cost, h = a * C^b (least squares on log-log, 95% "
        "interval on b): how the best learning rate, width or token count scale with compute.")
    parser.add_argument("dir", help="the study's results folder, e.g. results/lr_scaling")
    parser.add_argument("--metric", default="m.loss", help="the metric column (default m.loss; 'loss' also works)")
    parser.add_argument("--cost", default="cost", help="the cost column: cost, flops or wall_s (default cost)")
    parser.add_argument("--mode", choices=("min", "max"), default="min", help="is a lower metric better (default)")
    parser.add_argument("--params", nargs="+", metavar="NAME",
                        help="hyperparameters to fit (default: every numeric one that varies along the front)")
    parser.add_argument("--phase", default=None, help="only trials of this phase, e.g. search (default all)")
    parser.add_argument("-o", "--output", metavar="OUT.json",
                        help="where to write the laws (default DIR/analysis/hparams.json)")
    parser.add_argument("--json", action="store_true", help="print the laws as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from sweeper.errors import UserError
    from sweeper.laws import hparams
    from sweeper.results import StudyResults

    study = Path(args.dir)
    if not study.is_dir():
        raise UserError(f"{args.dir}: no such study folder")
    trials = StudyResults(study).trials(args.phase)
    if trials.is_empty():
        raise UserError(f"{args.dir}: no finished trials (no summary rows under {study / 'rows'})")
    metric = hparams.resolve_column(trials, args.metric, "metric")
    cost = hparams.resolve_column(trials, args.cost, "cost", prefix="")
    front = hparams.front_trials(trials, metric=metric, cost=cost, mode=args.mode)
    if front.is_empty():
        raise UserError(f"{args.dir}: no finished trial has a finite {metric} and a positive {cost}")
    laws = hparams.fit_hparam_laws(trials, metric=metric, cost=cost, mode=args.mode, params=args.params)

    analysis = study / "analysis"
    analysis.mkdir(exist_ok=True)
    keep = ["trial_id", cost, metric] + [c for c in front.columns if c.startswith(("cfg.", "mix."))]
    front.select(list(dict.fromkeys(c for c in keep if c in front.columns))).write_csv(analysis / "pareto.csv")
    figures = [hparams.plot_front(trials, front, metric, cost, analysis / "pareto.png")]
    if laws:
        figures.append(hparams.plot_laws(front, laws, cost, analysis / "hparams.png"))
    output = Path(args.output) if args.output else analysis / "hparams.json"
    fitted = {law.name for law in laws}
    skipped = {name: why for name, why in hparams.fittable_params(front).items() if name not in fitted and why}
    document = {
        "study": str(study),
        "metric": metric,
        "cost": cost,
        "mode": args.mode,
        "front_size": len(front),
        "laws": {law.name: law.to_dict() for law in laws},
        "skipped": skipped,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2))

    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print(document, laws, [analysis / "pareto.csv", output, *figures])
    return 0


def _print(document: dict, laws: list, files: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{document['metric']} front over {document['cost']}: {document['front_size']} trials; "
                  f"h = a * {document['cost']}^b")
    for name, justify in [("param", "left"), ("a", "right"), ("b", "right"), ("95% interval of b", "right"),
                          ("R²", "right"), ("points", "right")]:
        table.add_column(name, justify=justify)
    for law in laws:
        lo, hi = law.exponent_ci
        table.add_row(law.name, f"{law.coefficient:.4g}", f"{law.exponent:+.4f}", f"[{lo:+.4f}, {hi:+.4f}]",
                      f"{law.r2:.3f}", str(law.n_points))
    console.print(table)
    for name, why in document["skipped"].items():
        console.print(f"skipped {name}: {why}")
    for path in files:
        console.print(f"wrote {path}")
