"""Cost-aware search against Optuna TPE, multi-objective TPE on (metric, log cost) and random search, at
equal total cost, on two problems:

- ``synthetic``: the synthetic scaling law (workloads.synthetic, noise-free): N, D and lr on log scales,
  cost 6ND. Milliseconds per trial, so many seeds.
- ``tinylm``: real training of ``workloads.tinylm`` (2 layers, one head, batch 16 x context 64, one
  thread): width (d_model), training tokens and learning rate on log scales; the metric is the validation
  loss averaged over the five built-in domains, the cost the counted training FLOPs. Seconds per trial.

For each method and seed: the hypervolume of its (cost, metric) front (log10 cost), the total cost it
spent before reaching random search's median final hypervolume (and that as a multiple of random's and of
TPE's), and the total cost it spent before one of its trials costing at most L came within 1% of the best
metric any method found at that cost L, for three cost levels L.

    python bench/search.py [--problem synthetic|tinylm|both] [--seeds 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402
from sweeper.maths.pareto import hypervolume  # noqa: E402
from sweeper.search.cost_aware import CostAwareSearch, Dimension  # noqa: E402


@dataclass(frozen=True)
class Problem:
    """A search problem: the space, how a config is scored, the front's reference point and the budget."""

    name: str
    dims: tuple[Dimension, ...]
    evaluate: Callable[[dict], tuple[float | None, float]]  # config -> (metric, None when it failed; cost)
    reference: tuple[float, float]  # (cost, metric) bounding the hypervolume
    levels: tuple[float, ...]  # cost levels for "within 1% of the best at this cost"
    budget: float  # total cost each method may spend per seed
    unit: str


def evaluate_synthetic(config: dict) -> tuple[float | None, float]:
    from workloads.synthetic import expected_loss

    n, d = config["n_params"], config["tokens"]
    return expected_loss(n, d, config["lr"]), 6 * n * d


def evaluate_tinylm(config: dict) -> tuple[float | None, float]:
    """Train one tinylm to the end; the final mean validation loss and the counted training FLOPs."""
    from workloads.tinylm import describe, train

    run = {"d_model": int(config["d_model"]), "n_layers": 2, "n_heads": 1, "ctx": 64, "batch_size": 16,
           "tokens": int(config["tokens"]), "lr": float(config["lr"]), "schedule": "cosine", "warmup": 0.05,
           "eval_every": 10**9, "eval_tokens": 8192, "threads": 1, "seed": 0}
    reports: list[dict] = []
    try:
        final = train(run, lambda **r: reports.append(r))
    except FloatingPointError:  # diverged (found at the final evaluation): the whole run was spent
        return None, describe(run)["flops"]
    return float(final["loss.valid.target"]), float(reports[-1]["flops"])


PROBLEMS = {
    "synthetic": Problem("synthetic",
                         (Dimension("n_params", 1e7, 1e9, "log"), Dimension("tokens", 1e8, 1e10, "log"),
                          Dimension("lr", 1e-4, 1e-1, "log")), evaluate_synthetic,
                         reference=(6e19, 6.5), levels=(6e16, 6e17, 6e18), budget=1e20, unit="FLOPs"),
    "tinylm": Problem("tinylm",
                      (Dimension("d_model", 16, 96, "log", integer=True),
                       Dimension("tokens", 2e4, 5e5, "log", integer=True),
                       Dimension("lr", 1e-4, 1e-1, "log")), evaluate_tinylm,
                      reference=(1e12, 4.5), levels=(1e10, 3e10, 1e11), budget=2e12, unit="FLOPs"),
}


def run_cost_aware(problem: Problem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    search = CostAwareSearch(problem.dims, seed=seed)
    costs, metrics = [], []
    while sum(costs) < problem.budget:
        config = search.suggest()
        metric, cost = problem.evaluate(config)
        search.observe(config, metric, cost, failed=metric is None)
        costs.append(cost)
        metrics.append(math.inf if metric is None else metric)
    return np.array(costs), np.array(metrics)


def run_random(problem: Problem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    costs, metrics = [], []
    while sum(costs) < problem.budget:
        config = {d.name: d.python_value(float(d.from_unit(rng.uniform()))) for d in problem.dims}
        metric, cost = problem.evaluate(config)
        costs.append(cost)
        metrics.append(math.inf if metric is None else metric)
    return np.array(costs), np.array(metrics)


def run_optuna(problem: Problem, seed: int, multi: bool) -> tuple[np.ndarray, np.ndarray]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed),
                                directions=["minimize", "minimize"] if multi else ["minimize"])
    costs, metrics = [], []
    while sum(costs) < problem.budget:
        trial = study.ask()
        config = {d.name: trial.suggest_int(d.name, math.ceil(d.low), math.floor(d.high), log=True) if d.integer
                  else trial.suggest_float(d.name, d.low, d.high, log=True) for d in problem.dims}
        metric, cost = problem.evaluate(config)
        if metric is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, [metric, math.log(cost)] if multi else metric)
        costs.append(cost)
        metrics.append(math.inf if metric is None else metric)
    return np.array(costs), np.array(metrics)


METHODS = {
    "random": run_random,
    "tpe": partial(run_optuna, multi=False),
    "motpe (metric, log cost)": partial(run_optuna, multi=True),
    "cost_aware": run_cost_aware,
}


def cost_to_reach(costs: np.ndarray, metrics: np.ndarray, level: float, target: float) -> float:
    """Total cost spent until a trial costing at most `level` reached `target` (inf: never)."""
    ok = (costs <= level) & (metrics <= target)
    return float(np.cumsum(costs)[np.argmax(ok)]) if ok.any() else math.inf


def cost_to_hypervolume(costs: np.ndarray, metrics: np.ndarray, reference: tuple[float, float],
                        target: float) -> float:
    """Total cost spent until the front's hypervolume reached `target` (inf: never)."""
    for k in range(len(costs)):
        if hypervolume(costs[: k + 1], metrics[: k + 1], reference) >= target:
            return float(np.cumsum(costs)[k])
    return math.inf


def _one_run(problem_name: str, budget: float, method: str, seed: int
             ) -> tuple[str, int, np.ndarray, np.ndarray, float]:
    problem = replace(PROBLEMS[problem_name], budget=budget)
    t0 = time.perf_counter()
    costs, metrics = METHODS[method](problem, seed)
    return method, seed, costs, metrics, time.perf_counter() - t0


def median_cost(values: list[float]) -> float:
    """The median, counting never-reached (inf) as worst: inf when at least half never got there."""
    return float(np.median(np.array(values, dtype=float)))


def compare(problem: Problem, seeds: int, jobs: int) -> dict:
    """Run every method on every seed; print the table and return the figures."""
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    tasks = [(problem.name, problem.budget, m, s) for s in range(seeds) for m in METHODS]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for method, _, costs, metrics, took in pool.map(_one_run, *zip(*tasks, strict=True)):
            runs[method].append((costs, metrics))
            seconds[method] += took
    ref = problem.reference
    cheap = {level: [m[c <= level].min() for rs in runs.values() for c, m in rs if (c <= level).any()]
             for level in problem.levels}
    best = {level: min(found) for level, found in cheap.items() if found}  # levels no trial reached drop out
    random_hv = float(np.median([hypervolume(c, m, ref) for c, m in runs["random"]]))
    rows = []
    for name, rs in runs.items():
        hv = [hypervolume(c, m, ref) for c, m in rs]
        row = {"method": name, "hypervolume": float(np.mean(hv)), "hv_std": float(np.std(hv)),
               "trials": float(np.mean([len(c) for c, _ in rs])),
               "failed": float(np.mean([np.isinf(m).sum() for _, m in rs])),
               "best_metric": float(np.mean([m.min() for _, m in rs])),
               "cost_to_random_hv": median_cost([cost_to_hypervolume(c, m, ref, random_hv) for c, m in rs]),
               "run_s": seconds[name]}
        for level in best:
            reach = [cost_to_reach(c, m, level, 1.01 * best[level]) for c, m in rs]
            row[f"1%@{level:.0e}: reached"] = f"{int(np.isfinite(reach).sum())}/{len(reach)}"
            row[f"1%@{level:.0e}: cost"] = median_cost(reach)
        rows.append(row)
    base = {r["method"]: r["cost_to_random_hv"] for r in rows}
    for row in rows:
        row["x_random"] = row["cost_to_random_hv"] / base["random"]
        row["x_tpe"] = row["cost_to_random_hv"] / base["tpe"] if math.isfinite(base["tpe"]) else math.nan
    print_table(rows, f"{problem.name}: equal total cost {problem.budget:.0e} {problem.unit}, {seeds} seeds; "
                      f"random's median hypervolume {random_hv:.3f}; costs are medians over seeds")
    return {"budget": problem.budget, "seeds": seeds, "reference": ref, "levels": problem.levels,
            "best_at_level": {f"{k:.0e}": v for k, v in best.items()}, "random_median_hv": random_hv,
            "dimensions": [{"name": d.name, "low": d.low, "high": d.high, "scale": d.scale} for d in problem.dims],
            "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=[*PROBLEMS, "both"], default="synthetic")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="method x seed runs in parallel (one thread each)")
    parser.add_argument("--budget", type=float, help="total cost per method and seed (default: the problem's)")
    args = parser.parse_args()
    names = list(PROBLEMS) if args.problem == "both" else [args.problem]
    results = {}
    for name in names:
        problem = PROBLEMS[name]
        if args.budget:
            problem = replace(problem, budget=args.budget)
        results[name] = compare(problem, args.seeds, args.jobs)
    path = write_results(f"search-{args.problem}" if args.problem != "synthetic" else "search",
                         {"targets": {"x_random": 0.5, "x_tpe": 0.75}, "problems": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
