"""Cost-aware search against Optuna TPE, multi-objective TPE on (metric, log cost) and random search, at
equal total cost, on the synthetic scaling law (workloads.synthetic: N, D and lr on log scales, cost 6ND).

For each method and seed: the hypervolume of its (cost, metric) front (log10 cost, reference point
(6e19, 6.5)), the total cost it spent before reaching random search's median final hypervolume, and the
cost it needs to come within 1% of the best loss any method found at three cost levels.

    python bench/search.py [--budget 1e20] [--seeds 5]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402
from sweeper.search.cost_aware import CostAwareSearch, Dimension  # noqa: E402
from sweeper.search.pareto import hypervolume  # noqa: E402
from workloads.synthetic import expected_loss  # noqa: E402

DIMS = [Dimension("n_params", 1e7, 1e9, "log"), Dimension("tokens", 1e8, 1e10, "log"),
        Dimension("lr", 1e-4, 1e-1, "log")]
REF = (6e19, 6.5)
LEVELS = (6e16, 6e17, 6e18)


def evaluate(config: dict) -> tuple[float, float]:
    return expected_loss(config["n_params"], config["tokens"], config["lr"]), 6 * config["n_params"] * config["tokens"]


def run_cost_aware(seed: int, budget: float) -> tuple[np.ndarray, np.ndarray]:
    search = CostAwareSearch(DIMS, seed=seed)
    costs, losses = [], []
    while sum(costs) < budget:
        config = search.suggest()
        loss, cost = evaluate(config)
        search.observe(config, loss, cost)
        costs.append(cost)
        losses.append(loss)
    return np.array(costs), np.array(losses)


def run_random(seed: int, budget: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    costs, losses = [], []
    while sum(costs) < budget:
        loss, cost = evaluate({d.name: float(d.from_unit(rng.uniform())) for d in DIMS})
        costs.append(cost)
        losses.append(loss)
    return np.array(costs), np.array(losses)


def run_optuna(seed: int, budget: float, multi: bool) -> tuple[np.ndarray, np.ndarray]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed),
                                directions=["minimize", "minimize"] if multi else ["minimize"])
    costs, losses = [], []
    while sum(costs) < budget:
        trial = study.ask()
        loss, cost = evaluate({d.name: trial.suggest_float(d.name, d.low, d.high, log=True) for d in DIMS})
        study.tell(trial, [loss, math.log(cost)] if multi else loss)
        costs.append(cost)
        losses.append(loss)
    return np.array(costs), np.array(losses)


def cost_to_reach(costs: np.ndarray, losses: np.ndarray, level: float, target: float) -> float:
    ok = (costs <= level) & (losses <= target)
    return float(np.cumsum(costs)[np.argmax(ok)]) if ok.any() else math.inf


def cost_to_hypervolume(costs: np.ndarray, losses: np.ndarray, target: float) -> float:
    for k in range(len(costs)):
        if hypervolume(costs[: k + 1], losses[: k + 1], REF) >= target:
            return float(np.cumsum(costs)[k])
    return math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1e20)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    seeds = range(args.seeds)
    methods = {
        "random": lambda s: run_random(s, args.budget),
        "tpe": lambda s: run_optuna(s, args.budget, multi=False),
        "motpe (loss, log cost)": lambda s: run_optuna(s, args.budget, multi=True),
        "cost_aware": lambda s: run_cost_aware(s, args.budget),
    }
    runs, seconds = {}, {}
    for name, fn in methods.items():
        t0 = time.perf_counter()
        runs[name] = [fn(s) for s in seeds]
        seconds[name] = time.perf_counter() - t0
    best = {level: min(m[c <= level].min() for rs in runs.values() for c, m in rs if (c <= level).any())
            for level in LEVELS}
    random_hv = float(np.median([hypervolume(c, m, REF) for c, m in runs["random"]]))
    rows = []
    for name, rs in runs.items():
        hv = [hypervolume(c, m, REF) for c, m in rs]
        to_hv = [cost_to_hypervolume(c, m, random_hv) for c, m in rs]
        row = {"method": name, "hypervolume": float(np.mean(hv)), "hv_std": float(np.std(hv)),
               "trials": float(np.mean([len(c) for c, _ in rs])), "best_loss": float(np.mean([m.min() for _, m in rs])),
               "cost_to_random_hv": float(np.median(to_hv)), "search_s": seconds[name]}
        for level in LEVELS:
            reach = [cost_to_reach(c, m, level, 1.01 * best[level]) for c, m in rs]
            row[f"within_1pct@{level:.0e}"] = f"{sum(np.isfinite(reach))}/{len(reach)}"
        rows.append(row)
    baseline = {r["method"]: r["cost_to_random_hv"] for r in rows}
    for row in rows:
        row["x_random_cost"] = row["cost_to_random_hv"] / baseline["random"]
    print_table(rows, f"search at equal total cost {args.budget:.0e} (FLOPs), {args.seeds} seeds; "
                      f"random's median hypervolume {random_hv:.3f}")
    path = write_results("search", {"budget": args.budget, "seeds": args.seeds, "reference": REF,
                                    "random_median_hv": random_hv, "targets": {"x_random_cost": 0.5,
                                                                               "x_tpe_cost": 0.75}, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
