"""The ``sweeper`` command line: parse arguments, call the library, print. Errors for people exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from sweeper.errors import ParameterError, UserError

# Subcommands that live in sweeper/commands/<module>.py: (group, name) -> (module, help).
COMMANDS: dict[tuple[str, str], tuple[str, str]] = {
    ("fit", "mixture"): ("fit_mixture", "RegMix: regression from mixture weights to a target, then a simplex search "
                         "for the best mixture"),
    ("fit", "hparams"): ("fit_hparams", "hyperparameter scaling laws along the (cost, metric) Pareto front"),
    ("fit", "law"): ("fit_law", "fit a scaling law (auto: chosen by backtest; chinchilla, overtrain, power) with "
                     "bootstrap intervals"),
    ("predict", "law"): ("predict_law", "predict the loss at a scale from FIT.json, with its interval"),
    ("", "decide"): ("decide", "DataDecide: how often small runs pick the data recipe that wins at the target size"),
    ("", "report"): ("report", "one self-contained HTML page of a study: curves, parameters, front, analyses"),
}


def _add_running_options(p: argparse.ArgumentParser, set_help: str) -> None:
    """Options shared by the commands that run trials (run, resume)."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--address", metavar="ADDR", help="join an existing Ray cluster (e.g. auto or HOST:6379); "
                   "default: start an embedded local Ray")
    p.add_argument("--plain", action="store_true", help="one plain line per finished trial, even on a terminal")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a study file with Ray Tune", description=(
        "Run a study: Ray Tune trials proposed by the study's searcher, every report written to Parquet "
        "under results/<name>/ (or --results DIR), a live view while it runs."))
    p.add_argument("study", help="the study file (YAML)")
    _add_running_options(p, "override a study key, e.g. --set budget.trials=8 --set search.sampler=random")
    p.add_argument("--results", metavar="DIR", help="write the study's results to DIR (default results/<name>)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the study in its results folder: finished "
                       "trials are kept, interrupted ones rerun, the searcher's state restored")
    again.add_argument("--fresh", action="store_true", help="start over: delete sweeper's own files in the results "
                       "folder (rows, journals, analyses; nothing else), refused if they are another study's")
    p.add_argument("--force", action="store_true", help="with --fresh: start over even in a folder that holds "
                   "another study's results")
    p.set_defaults(func=_run)

    r = sub.add_parser("resume", help="continue an interrupted study from its results folder", description=(
        "Continue the study saved in DIR/study.yaml: finished trials are kept, interrupted ones rerun, every "
        "reported row kept exactly once. --set may change safe keys (budget, resources, max_failures)."))
    r.add_argument("dir", help="the study's results folder, e.g. results/quick")
    _add_running_options(r, "override a safe study key, e.g. --set budget.trials=60")
    r.set_defaults(func=_resume)


def _resume(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sweeper.engine import run_study
    from sweeper.folder import STUDY_COPY
    from sweeper.spec import load_study

    copy = Path(args.dir) / STUDY_COPY
    if not copy.exists():
        raise UserError(f"{args.dir}: no {STUDY_COPY} here, so there is no study to resume")
    study = load_study(copy, args.overrides)
    outcome = run_study(study, args.dir, address=args.address, rich=False if args.plain else None,
                        source=str(copy), resume=True)
    return _print_outcome(study.name, outcome)


def _run(args: argparse.Namespace) -> int:
    from sweeper.engine import run_study
    from sweeper.spec import load_study

    if args.force and not args.fresh:
        raise UserError("--force: only goes with --fresh")
    study = load_study(args.study, args.overrides)
    outcome = run_study(study, args.results, address=args.address, rich=False if args.plain else None,
                        source=args.study, resume=args.resume, fresh=args.fresh, force=args.force)
    return _print_outcome(study.name, outcome)


def _print_outcome(name: str, outcome) -> int:
    counts = outcome.counts
    best = outcome.progress.best()
    print(f"{name}: {sum(counts.values())} trials ({', '.join(f'{k} {v}' for k, v in counts.items() if v)}), "
          f"{outcome.rows_written} rows -> {outcome.results_dir}")
    if best is not None:
        print(f"best {outcome.progress.metric} = {outcome.progress.best_value():.6g} (trial {best.trial_id})")
    _write_report(outcome.results_dir)
    return 0


def _write_report(results_dir) -> None:  # noqa: ANN001 - a Path
    """The study's report page at the end of a run; a report that cannot be drawn is a warning, not a failure."""
    from sweeper.report import write_report

    try:
        print(f"report: {write_report(results_dir)}")
    except Exception as exc:  # noqa: BLE001 - the study's results are safe; only the page is missing
        print(f"sweeper: warning: no report page ({type(exc).__name__}: {exc}); retry with "
              f"`sweeper report {results_dir}`", file=sys.stderr)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summarise a study's results", description=(
        "Trials by status, the best config and metric, and the cost spent, read from the Parquet rows."))
    p.add_argument("dir", help="the study's results folder, e.g. results/quick")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sweeper.fmt import fmt_num
    from sweeper.summary import summarize

    info = summarize(args.dir)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    table = Table(title=f"study {info['study']}", show_header=False)
    table.add_row("trials", str(info["trials"]))
    for status, n in info["by_status"].items():
        table.add_row(f"  {status}", str(n))
    table.add_row("cost", fmt_num(info["cost"]))
    table.add_row("FLOPs", fmt_num(info["flops"]))
    table.add_row("trial seconds", f"{info['wall_s']:.1f}")
    best = info["best"]
    if best:
        table.add_row(f"best {info['metric']} ({info['mode']})", fmt_num(best["value"]))
        table.add_row("best trial", best["trial_id"])
        for key, value in best["config"].items():
            table.add_row(f"  {key}", fmt_num(value))
    Console().print(table)
    return 0


def _add_query(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="run SQL over a study's rows (Polars SQL)", description=(
        "Run a Polars SQL query over the study's rows. Tables: rows (every report and summary row), "
        "reports (report rows) and trials (one summary row per trial). Quote dotted column names: "
        'SELECT trial_id, "m.loss" FROM trials ORDER BY "m.loss" LIMIT 5'))
    p.add_argument("dir", help="the study's results folder")
    p.add_argument("sql", help="the query")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE (required for parquet)")
    p.set_defaults(func=_query)


def _query(args: argparse.Namespace) -> int:
    from sweeper.query import export, print_table, run_query

    frame = run_query(args.dir, args.sql)
    if args.format == "table" and not args.output:
        print_table(frame)
    else:
        export(frame, args.format if args.format != "table" else "csv", args.output)
    return 0


def _requested(argv: Sequence[str] | None) -> set[tuple[str, str]] | None:
    """The module command that ``argv`` names, or None (every one) when ``argv`` is not known: only that
    command's module is imported, so ``sweeper fit law`` does not pay for loading ``report``'s."""
    if argv is None:
        return None
    words = [a for a in argv if not a.startswith("-")][:2]
    return {key for key in COMMANDS if list(key) == words or (not key[0] and words[:1] == [key[1]])}


def _add_module_commands(sub: argparse._SubParsersAction, wanted: set[tuple[str, str]] | None = None) -> None:
    groups: dict[str, argparse._SubParsersAction] = {}
    for (group, name), (module, help_text) in COMMANDS.items():
        if group:
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} ({', '.join(n for g, n in COMMANDS if g == group)})")
                groups[group] = gp.add_subparsers(dest=f"{group}_kind", required=True, metavar="KIND")
            parser = groups[group].add_parser(name, help=help_text, description=help_text)
        else:
            parser = sub.add_parser(name, help=help_text, description=help_text)
        if wanted is None or (group, name) in wanted:
            mod = importlib.import_module(f"sweeper.commands.{module}")
            mod.configure(parser)
            parser.set_defaults(func=mod.run)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the arguments it will parse, only the module command they name is loaded."""
    parser = argparse.ArgumentParser(prog="sweeper", description=(
        "Sweeps of small proxy models with Ray Tune: every report in Parquet, a live view, scaling laws."))
    from sweeper import __version__

    parser.add_argument("--version", action="version", version=f"sweeper {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_status(sub)
    _add_query(sub)
    _add_module_commands(sub, _requested(argv))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ParameterError as exc:
        print(f"sweeper: error: {exc.render(flag_of(args, exc.param))}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"sweeper: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc)


FLAG_OF_PARAMETER = {"metrics": "metric", "higher_is_better": "maximize"}
"""Library parameters whose flag has another name."""


def flag_of(args: argparse.Namespace, param: str) -> str:
    """The command-line flag that set a library parameter (``top_k`` -> ``--top-k``), or the parameter's own
    name when the command has no such flag."""
    dest = FLAG_OF_PARAMETER.get(param, param)
    return f"--{dest.replace('_', '-')}" if hasattr(args, dest) else param


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Exit 130 (143 for SIGTERM) and say how to carry on."""
    from sweeper.interrupt import Interrupted

    code, where = 130, None
    if isinstance(exc, Interrupted):
        code, where = exc.exit_code, exc.results_dir
    hint = f"; continue with: sweeper resume {where}" if where is not None else ""
    print(f"sweeper: interrupted; every row reported so far is in the results folder{hint}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
