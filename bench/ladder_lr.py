"""The learning rate of each rung of ``studies/ladder.yaml``, and of its validation run, from a sweep.

A ladder predicts well only if every rung trains near its best learning rate: with one rate for every size
the small rungs sit far from theirs, the ladder falls faster than the best achievable losses do, and the law
extrapolates that. This trains one run per rung (the 40-tokens-per-parameter budget for the three smallest,
10 for the two largest, to keep it short) at each learning rate of a grid, takes each rung's best rate from
a parabola in log(lr) through its three best points, fits ``lr* = a N^b`` over the rungs, and prints the
rate it gives each rung and the validation run. The validation run is never trained here: its rate is an
extrapolation, as a large run's would be.

    python bench/ladder_lr.py [--lrs 1e-3 3e-3 1e-2 2e-2 4e-2] [--jobs 2]      (about 6 minutes on 2 cores)
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

BASE = {"ctx": 64, "batch_size": 32, "schedule": "cosine", "eval_tokens": 8192, "threads": 1, "seed": 0,
        "eval_every": 10**9}
RUNGS = {  # name: (shape and budget, parameters as the workload counts them)
    "xs_40": ({"d_model": 16, "n_layers": 1, "n_heads": 1, "tokens": 329600}, 8240),
    "s_40": ({"d_model": 24, "n_layers": 1, "n_heads": 2, "tokens": 586560}, 14664),
    "m_40": ({"d_model": 32, "n_layers": 2, "n_heads": 2, "tokens": 1399040}, 34976),
    "l_10": ({"d_model": 48, "n_layers": 2, "n_heads": 2, "tokens": 708960}, 70896),
    "xl_10": ({"d_model": 72, "n_layers": 2, "n_heads": 2, "tokens": 1478160}, 147816),
}
VALIDATION_N = 293384  # the study's xxl run


def train_one(rung: str, lr: float) -> tuple[str, float, float, float]:
    from workloads.tinylm import train

    t0 = time.perf_counter()
    final = train({**BASE, **RUNGS[rung][0], "lr": lr}, lambda **_: None)
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
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 2e-2, 4e-2])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    lrs = sorted(args.lrs)
    if len(lrs) < 3:
        parser.error("--lrs: expected at least 3 learning rates")
    tasks = [(rung, lr) for rung in RUNGS for lr in lrs]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(train_one, *zip(*tasks, strict=True)))
    loss = {(r, lr): v for r, lr, v, _ in runs}
    optimum = {r: best_lr(np.array(lrs), np.array([loss[(r, lr)] for lr in lrs])) for r in RUNGS}
    n = np.array([RUNGS[r][1] for r in RUNGS], dtype=float)
    slope, intercept = np.polyfit(np.log(n), np.log([optimum[r] for r in RUNGS]), 1)

    def law(x: float) -> float:
        return float(np.exp(intercept) * x**slope)

    rows = [{"rung": r, "n_params": RUNGS[r][1], **{f"lr {lr:g}": loss[(r, lr)] for lr in lrs},
             "best lr": optimum[r], "lr from the fit": law(RUNGS[r][1])} for r in RUNGS]
    rows.append({"rung": "validation", "n_params": VALIDATION_N, "lr from the fit": law(VALIDATION_N)})
    print_table(rows, f"final target loss by learning rate; lr* = {np.exp(intercept):.3g} N^{slope:.3f}")
    path = write_results("ladder-lr", {"lrs": lrs, "losses": [list(r) for r in runs], "best_lr": optimum,
                                       "fit": {"a": float(np.exp(intercept)), "b": float(slope)},
                                       "validation_lr": law(VALIDATION_N)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
