"""What ``sweeper decide`` prints: the target ranking, each proxy metric's predictors, the best metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
