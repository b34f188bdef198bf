"""``sweeper decide``: DataDecide on a study's results or on any table of runs.

    sweeper decide results/datadecide [--metric m.loss.valid.target ...] [--json OUT]
    sweeper decide --from TABLE --recipe COL --size COL --metric COL [--metric COL2 ...] [--seed COL]
                   [--compute COL] [--target-size X] [--higher-is-better | --maximize COL] [--json OUT]

How often does ranking data recipes with small runs pick the recipe that wins at the target size? Prints the
decision accuracy of every predictor (single-scale ranking, power-law and two-step extrapolation; with fewer
seeds and earlier checkpoints) per proxy size and proxy metric, and which proxy metric predicts best.
"""

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
    parser.add_argument("--recipe", metavar="COL", help="with --from: the data recipe column")
    parser.add_argument("--size", metavar="COL", help="with --from: the model size column (labels or numbers)")
    parser.add_argument("--seed", metavar="COL", help="with --from: the seed column (default: one run per recipe "
                        "and size)")
    parser.add_argument("--compute", metavar="COL", help="with --from: cumulative training compute (FLOPs); "
                        "default: numeric sizes stand in for it")
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

    from sweeper.laws import decide as dd
    from sweeper.laws.decide_plots import plot_frontier

    names = {p.replace(" ", "-"): p for p in dd.PREDICTORS}
    predictors = [p.strip().replace(" ", "-") for p in args.predictors.split(",") if p.strip()]
    unknown = [p for p in predictors if p not in names]
    if unknown or not predictors:
        raise UserError(f"--predictors: {', '.join(unknown) or 'none'}: expected some of {', '.join(names)}")
    predictors = [names[p] for p in predictors]
    checkpoints = parse_fractions(args.checkpoints)
    if args.max_subsets < 1:
        raise UserError(f"--max-subsets: expected at least 1, got {args.max_subsets}")
    runs = load_runs(args)
    decisions = dd.evaluate(runs, predictors=predictors, checkpoints=checkpoints, max_subsets=args.max_subsets,
                            law_seeds=args.law_seeds)
    out_dir = Path(args.out) if args.out else (Path(args.study) / "decide" if args.study else Path(DEFAULT_FROM_OUT))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_csv(decisions.table, out_dir / "decisions.csv")]
    written.append(plot_frontier(decisions, out_dir / "frontier.png"))
    if args.json == "-":
        print(json.dumps(decisions.to_dict(), indent=2))
        for path in written:
            print(f"sweeper decide: wrote {path}", file=sys.stderr)
        return 0
    written.append(decisions.save_json(args.json or out_dir / "decide.json"))
    print_report(decisions, written, show_all=args.all)
    return 0


def load_runs(args: argparse.Namespace) -> Any:
    """The runs of a study folder or of ``--from TABLE``; UserError for a missing or contradictory flag."""
    from sweeper.laws import decide as dd

    if bool(args.study) == bool(args.table):
        raise UserError("decide: give either a study results folder DIR or --from TABLE")
    if args.higher_is_better and args.maximize:
        raise UserError("--higher-is-better applies to every metric; give it or --maximize COL, not both")
    hib: bool | list[str] | None = True if args.higher_is_better else (list(args.maximize) if args.maximize else None)
    if args.study:
        extra = [f for f, v in (("--recipe", args.recipe), ("--size", args.size), ("--seed", args.seed),
                                ("--compute", args.compute)) if v]
        if extra:
            raise UserError(f"{', '.join(extra)}: only with --from TABLE (a study's columns are cfg.recipe, "
                            f"cfg.size, seed and flops)")
        return dd.load_study(args.study, metrics=args.metric, target_size=args.target_size, higher_is_better=hib,
                             phase=args.phase)
    missing = [f for f, v in (("--recipe", args.recipe), ("--size", args.size), ("--metric", args.metric)) if not v]
    if missing:
        raise UserError(f"--from: also name {', '.join(missing)} (the recipe, size and metric columns)")
    if args.phase:
        raise UserError("--phase: only with a study folder DIR")
    from sweeper.commands.fit_mixture import read_table

    frame = read_table(args.table, "--from")
    return dd.from_frame(frame, recipe=args.recipe, size=args.size, metrics=args.metric, seed=args.seed,
                         compute=args.compute, target_size=args.target_size,
                         higher_is_better=False if hib is None else hib, source=str(args.table))


def parse_fractions(text: str) -> list[float]:
    """``--checkpoints``: comma-separated fractions in (0, 1]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part.rstrip("%")) / (100.0 if part.endswith("%") else 1.0)
        except ValueError:
            raise UserError(f"--checkpoints: {part!r}: expected a fraction such as 0.5 (or 50%)") from None
        if not 0 < value <= 1:
            raise UserError(f"--checkpoints: {part!r}: expected a fraction in (0, 1]")
        out.append(value)
    if not out:
        raise UserError("--checkpoints: expected at least one fraction, e.g. 0.25,0.5,1")
    return out


def write_csv(frame: Any, path: Path) -> Path:
    """The table as CSV, through a temporary name."""
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_csv(tmp)
    tmp.replace(path)
    return path


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def print_report(decisions: Any, written: list[Path], show_all: bool = False) -> None:
    """Rich tables: the target ranking, the predictors (per proxy metric), the proxy-metric summary."""
    import polars as pl
    from rich import box
    from rich.console import Console
    from rich.table import Table

    info = decisions.info
    console = Console()
    judged = info["metric"]
    hib = info["higher_is_better"][judged]
    target = Table(title=f"target: {judged} at size {info['target_size']!r} (mean over seeds; "
                         f"{'higher' if hib else 'lower'} is better)")
    for col, justify in (("rank", "right"), ("recipe", "left"), ("value", "right"), ("sd", "right"),
                         ("seeds", "right")):
        target.add_column(col, justify=justify)
    for r in decisions.target.iter_rows(named=True):
        target.add_row(str(r["rank"]), r["recipe"], f"{r['value']:.4f}", _num(r["sd"], ".4f"), str(r["seeds"]))
    console.print(target)

    table = decisions.table
    if not show_all and table.height:
        keep = (pl.col("on_frontier") | ((pl.col("checkpoint") == 1.0)
                                         & (pl.col("seeds") == pl.col("seeds").max().over("metric", "predictor",
                                                                                          "sizes"))))
        table = table.filter(keep)
    for metric in info["metrics"]:
        rows = table.filter(pl.col("metric") == metric).sort("compute")
        if rows.is_empty():
            continue
        role = "judged" if metric == judged else "proxy"
        t = Table(title=f"{metric} ({role}): {info['pairs']} pairs of {len(info['recipes'])} recipes",
                  caption="k seeds; %tgt: compute / every recipe once at the target; acc: decision accuracy (sd "
                          "over seed subsets); * frontier; ! a law fit warned" + ("" if show_all else "; --all: "
                                                                                      "every k and checkpoint"),
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 0, 0, 1))
        for col, justify in (("predictor", "left"), ("sizes", "left"), ("k", "right"), ("ckpt", "right"),
                             ("compute", "right"), ("%tgt", "right"), ("acc", "right"), ("sd", "right"),
                             ("rho", "right"), ("tau", "right"), ("", "left")):
            t.add_column(col, justify=justify, no_wrap=True)
        for r in rows.iter_rows(named=True):
            sizes = r["sizes"].split(",")
            t.add_row(r["predictor"], sizes[0] if len(sizes) == 1 else f"{sizes[0]}..{sizes[-1]}", str(r["seeds"]),
                      "final" if r["checkpoint"] >= 1 else f"{r['checkpoint']:.0%}", f"{r['compute']:.3g}",
                      _pct(r["compute_vs_target"]), _pct(r["decision_accuracy"]), _pct(r["accuracy_sd"]),
                      _num(r["spearman"], ".2f"), _num(r["kendall"], ".2f"),
                      ("*" if r["on_frontier"] else "") + ("!" if r["warned_fits"] else ""))
        console.print(t)

    if decisions.proxies.height > 1:
        s = Table(title="proxy metrics, best first (single-scale baseline: all seeds, final checkpoint)")
        for col, justify in (("metric", "left"), ("baseline mean", "right"), ("best", "right"),
                             ("best predictor", "left")):
            s.add_column(col, justify=justify)
        for r in decisions.proxies.iter_rows(named=True):
            s.add_row(r["metric"], _pct(r["single_scale_mean"]), _pct(r["best_accuracy"]), r["best_predictor"])
        console.print(s)
    if decisions.best_metric:
        console.print(f"best proxy metric: {decisions.best_metric} (highest mean single-scale decision accuracy "
                      f"over the proxy sizes {', '.join(info['proxy_sizes'])})")
    for note in info["notes"]:
        console.print(f"note: {note}")
    warned = decisions.table.filter(pl.col("warned_fits") > 0)
    if warned.height:
        console.print(f"{int(warned['warned_fits'].sum())} law fits in {warned.height} rows warned (column "
                      f"warned_fits; messages in the JSON's fit_warnings), e.g. {info['fit_warnings'][0]}")
    if decisions.skipped:
        console.print(f"skipped {len(decisions.skipped)} predictor variant(s) (reasons in the JSON), e.g. "
                      f"{decisions.skipped[0]['predictor']} {decisions.skipped[0]['sizes']}: "
                      f"{decisions.skipped[0]['reason']}")
    for path in written:
        console.print(f"wrote {path}")
