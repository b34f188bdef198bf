"""The batch size and learning rate of each rung of ``studies/ladder.yaml``, and of its validation runs, from a
sweep.

A ladder predicts well only if every rung trains near its best hyperparameters: a rung far from them sits
above the trend of the others, and the law extrapolates the gap. The learning rate alone is not enough: on
CPU-sized models the best batch is small, and a rung whose batch is too large takes too few steps (a 2-layer
model of 148k parameters at 10 tokens per parameter loses 7% of its loss when its batch of 32 sequences
becomes 4). This trains every swept rung on a grid of batch sizes and learning rates, takes each rung's
optimum from a quadratic in (log batch, log lr) through the best grid point and its neighbours, and fits
two rules over the rungs: the batch as a power law of the tokens D (the best batch grows with the data, not
with the model; Zhang et al. 2024, Bergsma et al. 2025) and the learning rate as a power law of N and of that
batch. It prints each rung's and each validation run's batch, learning rate and number of steps from the
rules. The validation runs are never trained here: their settings are extrapolations, as a large run's are.

Shapes and budgets come from the study itself (its ``run`` presets and ``laws.validate.runs``); the grid is
relative to each rung's preset (by default batch x 1/4 ... 4, lr x 1/2 ... 2; see BATCH_SCALES).

    python bench/ladder_hparams.py [--jobs 2] [--reuse]        (12-15 minutes on 2 cores; --reuse: no training)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "studies" / "ladder.yaml"
RAW = Path(__file__).resolve().parent / "results" / "ladder-hparams-runs.json"
SWEPT = ("xs_10", "xs_40", "s_10", "s_40", "m_10", "m_40", "l_10", "xl_10")
"""Both budgets of the three smallest sizes (the batch rule needs D to vary at one N), one of the two largest
(their 40-tokens-per-parameter runs take minutes at small batches)."""
BATCH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
LR_SCALES = (0.5, 0.71, 1.0, 1.41, 2.0)
"""The default grid, relative to each rung's preset: centred, so a rerun checks the study's settings. The saved
results (bench/results/ladder-hparams*.json) swept the presets before these rules, batch 8 to 32 sequences
growing as sqrt(N) with the lr of a sweep of the rate alone, with ``--batch-scales 0.0625 0.125 0.25 0.5
--lr-scales 0.25 0.35 0.5 0.71 1``: their best batches were all below those presets."""


def study_runs() -> tuple[dict, dict[str, dict], dict[str, dict], dict[str, dict[str, float]]]:
    """The study's fixed params, every rung's and validation run's preset (without eval_every), and the
    n_params and tokens of each, as the workload counts them. Read with the project's own study loader."""
    from sweeper.phases import run_size
    from sweeper.space import presets_of
    from sweeper.spec import load_study

    study = load_study(STUDY)

    def shape(preset: dict) -> dict:
        return {k: v for k, v in preset.items() if k != "eval_every"}

    presets = {name: shape(p) for name, p in presets_of(study.space)["run"].items()}
    validation = {name: shape(p) for name, p in study.laws.validate_.runs.items()}
    base = {**study.params, "seed": 0, "eval_every": 10**9}
    sizes = {name: run_size(study, {**base, **shape}) for name, shape in {**presets, **validation}.items()}
    return base, presets, validation, sizes


def grid(preset: dict, batch_scales: list[float], lr_scales: list[float]) -> list[tuple[int, float]]:
    """(batch, lr) pairs relative to a preset; batches rounded to whole sequences, at least 1, each once."""
    batches = sorted({max(1, round(preset["batch_size"] * s)) for s in batch_scales})
    return [(b, preset["lr"] * s) for b in batches for s in lr_scales]


def train_one(config: dict, rung: str, batch: int, lr: float) -> tuple[str, int, float, float, float]:
    from workloads.tinylm import train

    t0 = time.perf_counter()
    final = train({**config, "batch_size": batch, "lr": lr}, lambda **_: None)
    return rung, batch, lr, float(final["loss.valid.target"]), time.perf_counter() - t0


def optimum(points: list[tuple[int, float, float]]) -> tuple[float, float, float]:
    """(batch, lr, loss) at the minimum of a quadratic in (log batch, log lr) fitted to the best grid point and
    its grid neighbours, kept within them; the best grid point itself where the quadratic has no minimum."""
    batches = sorted({b for b, _, _ in points})
    lrs = sorted({lr for _, lr, _ in points})
    loss = {(b, lr): v for b, lr, v in points}
    b0, l0, v0 = min(points, key=lambda p: p[2])
    i, j = batches.index(b0), lrs.index(l0)
    near = [(b, lr) for b in batches[max(0, i - 1):i + 2] for lr in lrs[max(0, j - 1):j + 2]]
    x, y = np.log([b for b, _ in near]), np.log([lr for _, lr in near])
    z = np.array([loss[p] for p in near])
    if len(set(x)) < 3 or len(set(y)) < 3:
        return float(b0), float(l0), float(v0)
    design = np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])
    c = np.linalg.lstsq(design, z, rcond=None)[0]
    hessian = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    if np.any(np.linalg.eigvalsh(hessian) <= 0):
        return float(b0), float(l0), float(v0)
    u, v = np.clip(np.linalg.solve(hessian, -c[1:3]), [x.min(), y.min()], [x.max(), y.max()])
    return float(np.exp(u)), float(np.exp(v)), float(c @ [1, u, v, u * u, v * v, u * v])


def _on_edge(best: tuple[float, float, float], cells: list[tuple[int, float]]) -> str:
    """Which of the grid's bounds the optimum sits on (the grid should then be extended), or ''."""
    batches, lrs = [b for b, _ in cells], [lr for _, lr in cells]
    if len(set(batches)) == 1:  # one batch (a preset of 1 sequence cannot go lower): no batch bound to report
        batches = []
    edges = [name for name, value, bound in (("smallest batch", best[0], min(batches, default=None)),
                                             ("largest batch", best[0], max(batches, default=None)),
                                             ("lowest lr", best[1], min(lrs)), ("highest lr", best[1], max(lrs)))
             if bound is not None and np.isclose(value, bound)]
    return ", ".join(edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch-scales", type=float, nargs="+", default=list(BATCH_SCALES))
    parser.add_argument("--lr-scales", type=float, nargs="+", default=list(LR_SCALES))
    parser.add_argument("--reuse", action="store_true", help=f"analyse the runs saved in {RAW.name} again")
    args = parser.parse_args()
    base, presets, validation, sizes = study_runs()
    if args.reuse:  # the saved runs, with the sizes they were swept at
        saved = json.loads(RAW.read_text())
        runs = [(r["rung"], r["batch"], r["lr"], r["loss"], r["wall_s"]) for r in saved["runs"]]
        swept = saved["sizes"]
    else:
        cells = {rung: grid(presets[rung], args.batch_scales, args.lr_scales) for rung in SWEPT}
        tasks = [({**base, **presets[rung]}, rung, b, lr) for rung in SWEPT for b, lr in cells[rung]]
        tasks.sort(key=lambda t: -sizes[t[1]]["flops"] / t[2])  # the longest first, so the pool ends together
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(train_one, *zip(*tasks, strict=True)))
        swept = {rung: sizes[rung] for rung in SWEPT}
        RAW.parent.mkdir(parents=True, exist_ok=True)  # the runs first: the analysis can be redone from them
        RAW.write_text(json.dumps({
            "grid": {"batch_scales": args.batch_scales, "lr_scales": args.lr_scales},
            "presets": {r: {k: presets[r][k] for k in ("batch_size", "lr")} for r in SWEPT}, "sizes": swept,
            "runs": [dict(zip(("rung", "batch", "lr", "loss", "wall_s"), r, strict=True)) for r in runs]}))
    best = {r: optimum([(b, lr, v) for rr, b, lr, v, _ in runs if rr == r]) for r in SWEPT}
    n = np.log([swept[r]["n_params"] for r in SWEPT])
    d = np.log([swept[r]["tokens"] for r in SWEPT])
    log_b = np.log([best[r][0] for r in SWEPT])
    log_lr = np.log([best[r][1] for r in SWEPT])
    batch_rule = np.polyfit(d, log_b, 1)  # log B* = slope log D + intercept
    lr_rule = np.linalg.lstsq(np.column_stack([np.ones_like(n), n, log_b]), log_lr, rcond=None)[0]

    def rule(name: str) -> dict[str, float]:
        size = sizes[name]
        batch = float(np.exp(np.polyval(batch_rule, np.log(size["tokens"]))))
        lr = float(np.exp(lr_rule @ [1, np.log(size["n_params"]), np.log(batch)]))
        whole = max(1, round(batch))
        return {"batch": batch, "lr": lr, "steps": int(size["tokens"] // (whole * base["ctx"]))}

    shapes = {**presets, **validation}
    rows = [{"run": r, "n_params": sizes[r]["n_params"], "tokens": sizes[r]["tokens"],
             "study batch": shapes[r]["batch_size"], "study lr": shapes[r]["lr"],
             "best batch": best[r][0] if r in best else float("nan"),
             "best lr": best[r][1] if r in best else float("nan"),
             "best loss": best[r][2] if r in best else float("nan"),
             "on the grid's edge": _on_edge(best[r], [(b, lr) for rr, b, lr, _, _ in runs if rr == r])
             if r in best else "",
             **{f"rule {k}": v for k, v in rule(r).items()}} for r in [*presets, *validation]]
    print_table(rows, f"best batch and lr by rung; B* = {np.exp(batch_rule[1]):.3g} D^{batch_rule[0]:.3f}, "
                      f"lr* = {np.exp(lr_rule[0]):.3g} N^{lr_rule[1]:.3f} B*^{lr_rule[2]:.3f}")
    path = write_results("ladder-hparams", {
        "runs": [{"rung": r, "batch": b, "lr": lr, "loss": v, "wall_s": w} for r, b, lr, v, w in runs],
        "best": {r: dict(zip(("batch", "lr", "loss"), best[r], strict=True)) for r in SWEPT},
        "batch_rule": {"a": float(np.exp(batch_rule[1])), "b": float(batch_rule[0])},
        "lr_rule": {"a": float(np.exp(lr_rule[0])), "b_n": float(lr_rule[1]), "b_batch": float(lr_rule[2])},
        "rules": {r: rule(r) for r in [*presets, *validation]}, "sizes": sizes})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
