"""The learning rate of each rung of ``studies/ladder.yaml``, and of its validation run, from a sweep.

A ladder predicts well only if every rung trains near its best learning rate: with one rate for every size
the small rungs sit far from theirs, the ladder falls faster than the best achievable losses do, and the law
extrapolates that. This trains one run per rung (the 40-tokens-per-parameter budget for the three smallest,
10 for the two largest, to keep it short) at each learning rate of a grid, takes each rung's best rate from
a parabola in log(lr) through its three best points, fits ``lr* = a N^b`` over the rungs, and prints the
rate it gives each rung and the validation run. The validation run is never trained here: its rate is an
extrapolation, as a large run's would be.

Shapes, batch sizes and budgets come from the study itself (its ``run`` presets and ``laws.validate.runs``),
so the sweep always measures the ladder that the study trains; only the learning rate is varied.

    python bench/ladder_lr.py [--lrs 2e-3 4e-3 8e-3 1.6e-2 3.2e-2 6.4e-2] [--jobs 2]   (about 4 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "studies" / "ladder.yaml"
SWEPT = ("xs_40", "s_40", "m_40", "l_10", "xl_10")
"""One budget per size: 40 tokens per parameter for the three smallest, 10 for the two largest (shorter)."""


def study_runs() -> tuple[dict, dict[str, dict], dict, dict[str, int], int]:
    """The study's fixed params, the swept rungs' presets and the validation run's (without lr and
    eval_every), and the parameter counts of the rungs and of the validation run, as the workload counts
    them (embeddings included). Read with the project's own study loader."""
    from sweeper.phases import run_size
    from sweeper.space import presets_of
    from sweeper.spec import load_study

    study = load_study(STUDY)
    drop = ("lr", "eval_every")
    presets = presets_of(study.space)["run"]
    rungs = {name: {k: v for k, v in presets[name].items() if k not in drop} for name in SWEPT}
    validation = {k: v for k, v in next(iter(study.laws.validate_.runs.values())).items() if k not in drop}
    base = {**study.params, "seed": 0, "eval_every": 10**9}

    def n_params(shape: dict) -> int:
        return int(run_size(study, {**base, **shape, "lr": 1e-3})["n_params"])

    return base, rungs, validation, {r: n_params(shape) for r, shape in rungs.items()}, n_params(validation)


def train_one(config: dict, rung: str, lr: float) -> tuple[str, float, float, float]:
    from workloads.tinylm import train

    t0 = time.perf_counter()
    final = train({**config, "lr": lr}, lambda **_: None)
    return rung, lr, float(final["loss.valid.target"]), time.perf_counter() - t0


def best_lr(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The minimum of a parabola in log(lr) through the best grid point and its neighbours."""
    i = int(np.argmin(losses))
    lo = min(max(0, i - 1), len(lrs) - 3)
    x, y = np.log(lrs[lo:lo + 3]), losses[lo:lo + 3]
    c = np.polyfit(x, y, 2)
    if c[0] <= 0:  # no curvature: the grid's best
        return float(lrs[i])
    return float(np.exp(np.clip(-c[1] / (2 * c[0]), x[0], x[-1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    lrs = sorted(args.lrs)
    if len(lrs) < 3:
        parser.error("--lrs: expected at least 3 learning rates")
    base, rungs, validation, sizes, validation_n = study_runs()
    tasks = [({**base, **rungs[rung]}, rung, lr) for rung in rungs for lr in lrs]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(train_one, *zip(*tasks, strict=True)))
    loss = {(r, lr): v for r, lr, v, _ in runs}
    optimum = {r: best_lr(np.array(lrs), np.array([loss[(r, lr)] for lr in lrs])) for r in rungs}
    n = np.array([sizes[r] for r in rungs], dtype=float)
    slope, intercept = np.polyfit(np.log(n), np.log([optimum[r] for r in rungs]), 1)

    def law(x: float) -> float:
        return float(np.exp(intercept) * x**slope)

    rows = [{"rung": r, "n_params": sizes[r], "batch": rungs[r].get("batch_size", base.get("batch_size")),
             **{f"lr {lr:g}": loss[(r, lr)] for lr in lrs}, "best lr": optimum[r], "lr from the fit": law(sizes[r])}
            for r in rungs]
    rows.append({**dict.fromkeys(rows[0], ""), "rung": "validation", "n_params": validation_n,
                 "batch": validation.get("batch_size", base.get("batch_size")), "lr from the fit": law(validation_n)})
    print_table(rows, f"final target loss by learning rate; lr* = {np.exp(intercept):.3g} N^{slope:.3f}")
    path = write_results("ladder-lr", {"lrs": lrs, "losses": [list(r) for r in runs], "best_lr": optimum,
                                       "fit": {"a": float(np.exp(intercept)), "b": float(slope)},
                                       "sizes": sizes, "validation_n": validation_n,
                                       "validation_lr": law(validation_n)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
