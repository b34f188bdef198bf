"""Cost-aware search against Optuna TPE, multi-objective TPE on (metric, log cost) (``motpe``) and random
search, at equal total cost, on two problems. ``cost_aware_noise`` is the cost-aware search with the options
for noisy metrics: the front judged by the model's mean, and front points within the fitted noise run again
with the next seed (on the noise-free synthetic law a re-run repeats the same value).

- ``synthetic``: the synthetic scaling law (workloads.synthetic, noise-free): N, D and lr on log scales,
  cost 6ND. Milliseconds per trial, so many seeds.
- ``tinylm``: real training of ``workloads.tinylm`` (2 layers, one head, batch 16 x context 64, one
  thread): width (d_model), training tokens and learning rate on log scales; the metric is the validation
  loss averaged over the five built-in domains, the cost the counted training FLOPs. Seconds per trial.

For each method and seed: the hypervolume of its (cost, metric) front (log10 cost) and the total cost it
spent before its front reached the problem's fixed reference hypervolume (``target_hv``); a run that never
reaches it within the budget is censored there. Per method the table gives the mean hypervolume with a 90%
bootstrap interval over seeds, how many seeds reached the reference, the median cost to reach it (``>budget``
when half or more never did), and that median as a multiple of random search's and of TPE's, each with a 90%
bootstrap interval (seeds resampled within each method). Censoring is counted against the method: a base
whose median never reached the reference counts as reaching it at the budget, so the ratio is an upper
bound (shown ``<=``), and a method whose median never reached it has an infinite ratio. Also: the total cost
spent before one of its trials costing at most L came within 1% of the best metric any method found at that
cost L, for three cost levels L.

Concurrency is simulated (``--concurrent 1 2 4``): each method runs asynchronously on k workers, a
trial lasting its cost, and is asked for the next trial whenever a worker frees while the other trials are
still running, as under Ray Tune. The cost to the reference counts the trials finished by then. With one
worker this is the plain ask-evaluate-tell loop.

    python bench/search.py [--problem synthetic|tinylm|both] [--seeds 5] [--jobs 2] [--concurrent 1 2 4]
    python bench/search.py --problem tinylm --rescore     # the ratios again from the saved per-seed costs
    python bench/search.py --problem tinylm --concurrent 2 --seeds 20 --extend   # seeds after the saved ones
    python bench/search.py --problem tinylm --concurrent 4 --seeds 20 --extend --rerun cost_aware   # one afresh
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, print_table, write_results  # noqa: E402
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
    target_hv: float  # the fixed reference hypervolume whose cost to reach is compared


def evaluate_synthetic(config: dict) -> tuple[float | None, float]:
    from workloads.synthetic import expected_loss

    n, d = config["n_params"], config["tokens"]
    return expected_loss(n, d, config["lr"]), 6 * n * d


def evaluate_tinylm(config: dict) -> tuple[float | None, float]:
    """Train one tinylm to the end; the final mean validation loss and the counted training FLOPs."""
    from workloads.tinylm import describe, train

    run = {"d_model": int(config["d_model"]), "n_layers": 2, "n_heads": 1, "ctx": 64, "batch_size": 16,
           "tokens": int(config["tokens"]), "lr": float(config["lr"]), "schedule": "cosine", "warmup": 0.05,
           "eval_every": 10**9, "eval_tokens": 8192, "threads": 1, "seed": int(config.get("seed", 0))}
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
                         reference=(6e19, 6.5), levels=(6e16, 6e17, 6e18), budget=1e20, unit="FLOPs",
                         target_hv=9.0),
    "tinylm": Problem("tinylm",
                      (Dimension("d_model", 16, 96, "log", integer=True),
                       Dimension("tokens", 2e4, 5e5, "log", integer=True),
                       Dimension("lr", 1e-4, 1e-1, "log")), evaluate_tinylm,
                      reference=(1e12, 4.5), levels=(1e10, 3e10, 1e11), budget=2e12, unit="FLOPs",
                      target_hv=3.8),
}


def simulate(ask: Callable[[], tuple[Any, dict]], tell: Callable[[Any, dict, float | None, float], None],
             problem: Problem, concurrent: int) -> tuple[np.ndarray, np.ndarray]:
    """Run a method on `concurrent` simulated workers, asynchronously, as Ray Tune runs trials: a trial's
    duration is its cost, and the next one is asked for as soon as a worker frees, while the others are
    still running. Trials are started until the budget is spent. Costs and metrics in completion order."""
    running: list[tuple[float, int, Any, dict, float | None, float]] = []
    costs: list[float] = []
    metrics: list[float] = []
    spent, clock, started = 0.0, 0.0, 0
    while spent < problem.budget or running:
        while len(running) < concurrent and spent < problem.budget:
            handle, config = ask()
            metric, cost = problem.evaluate(config)  # deterministic: evaluated now, told when it "finishes"
            spent += cost
            heapq.heappush(running, (clock + cost, started, handle, config, metric, cost))
            started += 1
        clock, _, handle, config, metric, cost = heapq.heappop(running)
        tell(handle, config, metric, cost)
        costs.append(cost)
        metrics.append(math.inf if metric is None else metric)
    return np.array(costs), np.array(metrics)


def run_cost_aware(problem: Problem, seed: int, concurrent: int, **options: Any) -> tuple[np.ndarray, np.ndarray]:
    search = CostAwareSearch(problem.dims, seed=seed, **options)
    keys = iter(range(10**9))

    def ask() -> tuple[str, dict]:
        key = f"t{next(keys)}"
        return key, search.suggest(key=key)

    def tell(key: str, config: dict, metric: float | None, cost: float) -> None:
        search.observe(config, metric, cost, failed=metric is None, key=key)

    return simulate(ask, tell, problem, concurrent)


def run_random(problem: Problem, seed: int, concurrent: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)

    def ask() -> tuple[None, dict]:
        return None, {d.name: d.python_value(float(d.from_unit(rng.uniform()))) for d in problem.dims}

    return simulate(ask, lambda *_: None, problem, concurrent)


def run_optuna(problem: Problem, seed: int, concurrent: int, multi: bool) -> tuple[np.ndarray, np.ndarray]:
    """Optuna's TPE (or MO-TPE on metric and log cost); with concurrent trials it runs with
    `constant_liar`, as Optuna recommends for parallel optimisation."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=concurrent > 1)
    study = optuna.create_study(sampler=sampler, directions=["minimize", "minimize"] if multi else ["minimize"])

    def ask() -> tuple[Any, dict]:
        trial = study.ask()
        return trial, {d.name: trial.suggest_int(d.name, math.ceil(d.low), math.floor(d.high), log=True)
                       if d.integer else trial.suggest_float(d.name, d.low, d.high, log=True)
                       for d in problem.dims}

    def tell(trial: Any, config: dict, metric: float | None, cost: float) -> None:
        if metric is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, [metric, math.log(cost)] if multi else metric)

    return simulate(ask, tell, problem, concurrent)


METHODS = {
    "random": run_random,
    "tpe": partial(run_optuna, multi=False),
    "motpe": partial(run_optuna, multi=True),  # multi-objective TPE on (metric, log cost)
    "cost_aware": run_cost_aware,
    # the default before 2026-12-05: CARBS' expected improvement over the front at one cost, with the cheapest
    # fifth of the trials pooled into one front point
    "cost_aware_front_ei": partial(run_cost_aware, acquisition="front_ei", min_front_cost_quantile=0.2),
    # noisy metrics: the front judged by the model's mean, and front points within the noise run again with
    # the next seed (the synthetic law has no seed, so there a re-run repeats the same value)
    "cost_aware_noise": partial(run_cost_aware, front_by="model", rerun_key="seed"),
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


def _one_run(problem_name: str, budget: float, method: str, seed: int, concurrent: int
             ) -> tuple[str, int, np.ndarray, np.ndarray, float]:
    problem = replace(PROBLEMS[problem_name], budget=budget)
    t0 = time.perf_counter()
    costs, metrics = METHODS[method](problem, seed, concurrent)
    return method, seed, costs, metrics, time.perf_counter() - t0


def median_cost(values: list[float] | np.ndarray, axis: int | None = None) -> Any:
    """The median (the higher middle value of an even count), counting never-reached (inf) as worst: inf when
    at least half never got there."""
    out = np.quantile(np.asarray(values, dtype=float), 0.5, axis=axis, method="higher")
    return float(out) if axis is None else out


BOOTSTRAP = 2000
LEVEL = 0.9


def _interval(draws: np.ndarray) -> tuple[float, float]:
    tail = 50 * (1 - LEVEL)  # order statistics, no interpolation: an infinite draw stays infinite
    return float(np.percentile(draws, tail, method="lower")), float(np.percentile(draws, 100 - tail, method="higher"))


def mean_interval(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    """A 90% bootstrap interval of the mean over seeds."""
    v = np.asarray(values, dtype=float)
    return _interval(v[rng.integers(0, len(v), (BOOTSTRAP, len(v)))].mean(axis=1))


RATIO_COLUMNS = ("x_random", "x_random 90%", "x_tpe", "x_tpe 90%")


def cost_ratio(cost: Any, base: Any, budget: float) -> Any:
    """median cost / the base's median, censored conservatively: a base that did not reach the reference
    within the budget (inf) counts as reaching it at the budget, so the ratio is an upper bound (the true one
    is smaller); a method that did not reach it has an infinite ratio, whatever the base did."""
    cost, base = np.asarray(cost, dtype=float), np.asarray(base, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isinf(cost), np.inf, cost / np.where(np.isinf(base), budget, base))
    return float(out) if out.ndim == 0 else out


def ratio_interval(costs: list[float], base: list[float], budget: float,
                   rng: np.random.Generator) -> tuple[float, float]:
    """A 90% bootstrap interval of `cost_ratio` of the medians, seeds resampled within each method."""
    a, b = np.asarray(costs, dtype=float), np.asarray(base, dtype=float)
    ma = median_cost(a[rng.integers(0, len(a), (BOOTSTRAP, len(a)))], axis=1)
    mb = median_cost(b[rng.integers(0, len(b), (BOOTSTRAP, len(b)))], axis=1)
    return _interval(cost_ratio(ma, mb, budget))


def ratio_columns(to_target: dict[str, list[float]], name: str, budget: float,
                  rng: np.random.Generator) -> dict[str, Any]:
    """``x_random``, ``x_tpe`` and their 90% intervals for method ``name``; ``<=`` marks a bound (the base's
    median never reached the reference within the budget)."""
    out: dict[str, Any] = {}
    cost = median_cost(to_target[name])
    for base in ("random", "tpe"):
        base_cost = median_cost(to_target[base])
        ratio = cost_ratio(cost, base_cost, budget)
        out[f"x_{base}"] = f"<={ratio:.2f}" if math.isinf(base_cost) and math.isfinite(ratio) else ratio
        out[f"x_{base} 90%"] = _fmt_interval(*ratio_interval(to_target[name], to_target[base], budget, rng))
    return out


def _fmt_interval(lo: float, hi: float) -> str:
    def one(v: float) -> str:
        return "inf" if math.isinf(v) else f"{v:.2f}"

    return f"[{one(lo)}, {one(hi)}]"


def saved_runs(result: dict, methods: tuple[str, ...], budget: float) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The runs of a saved result (one concurrency of `compare`'s output), for `methods`, to extend with
    more seeds; a clear error when they cannot be (an older result without every trial, another budget)."""
    trials = result.get("trials_by_seed")
    if trials is None:
        raise SystemExit("--extend: the saved result does not keep every trial (trials_by_seed); run it afresh")
    if result["budget"] != budget:
        raise SystemExit(f"--extend: the saved result's budget is {result['budget']:g}, not {budget:g}")
    missing = [m for m in methods if m not in trials]
    if missing:
        raise SystemExit(f"--extend: the saved result has no runs of {', '.join(missing)}")
    return {m: [(np.asarray(r["cost"], dtype=float), np.asarray(r["metric"], dtype=float)) for r in trials[m]]
            for m in methods}


def compare(problem: Problem, seeds: int, jobs: int, concurrent: int = 1,
            methods: tuple[str, ...] = tuple(METHODS),
            earlier: dict[str, list[tuple[np.ndarray, np.ndarray]]] | None = None) -> dict:
    """Run every method on every seed with `concurrent` simulated workers; print the table and return the
    figures. ``earlier`` holds runs already made (seeds 0, 1, ... of each method, e.g. from `saved_runs`):
    only the seeds after them are run."""
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: list((earlier or {}).get(m, [])) for m in methods}
    seconds = {m: 0.0 for m in methods}
    tasks = [(problem.name, problem.budget, m, s, concurrent) for s in range(seeds) for m in methods
             if s >= len(runs[m])]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for method, seed, costs, metrics, took in pool.map(_one_run, *zip(*tasks, strict=True)) if tasks else ():
            assert seed == len(runs[method]), "runs come back in the order of their seeds"
            runs[method].append((costs, metrics))
            seconds[method] += took
    ref = problem.reference
    cheap = {level: [m[c <= level].min() for rs in runs.values() for c, m in rs if (c <= level).any()]
             for level in problem.levels}
    best = {level: min(found) for level, found in cheap.items() if found}  # levels no trial reached drop out
    rng, ratio_rng = np.random.default_rng(0), np.random.default_rng(1)
    to_target = {name: [cost_to_hypervolume(c, m, ref, problem.target_hv) for c, m in rs]
                 for name, rs in runs.items()}
    rows = []
    for name, rs in runs.items():
        hv = [hypervolume(c, m, ref) for c, m in rs]
        cost = median_cost(to_target[name])
        row = {"method": name, "hypervolume": float(np.mean(hv)),
               "hv 90%": _fmt_interval(*mean_interval(hv, rng)),
               "trials": float(np.mean([len(c) for c, _ in rs])),
               "failed": float(np.mean([np.isinf(m).sum() for _, m in rs])),
               "best_metric": float(np.mean([m.min() for _, m in rs])),
               "reached": f"{int(np.isfinite(to_target[name]).sum())}/{len(rs)}",
               "cost_to_target": cost if math.isfinite(cost) else ">budget",
               "run_s": seconds[name]}
        row.update(ratio_columns(to_target, name, problem.budget, ratio_rng))
        for level in best:
            reach = [cost_to_reach(c, m, level, 1.01 * best[level]) for c, m in rs]
            row[f"1%@{level:.0e}: reached"] = f"{int(np.isfinite(reach).sum())}/{len(reach)}"
            row[f"1%@{level:.0e}: cost"] = median_cost(reach)
        rows.append(row)
    main_cols = ("method", "hypervolume", "hv 90%", "trials", "failed", "reached", "cost_to_target", *RATIO_COLUMNS,
                 "run_s")
    print_table([{k: r[k] for k in main_cols} for r in rows],
                f"{problem.name}, {concurrent} concurrent: equal total cost {problem.budget:.0e} {problem.unit}, "
                f"{seeds} seeds; cost to "
                      f"the reference hypervolume {problem.target_hv} (median over seeds, censored at the budget); "
                      f"90% bootstrap intervals")
    print_table([{k: v for k, v in r.items() if k == "method" or k.startswith("1%@") or k == "best_metric"}
                 for r in rows], f"{problem.name}, {concurrent} concurrent: cost until a trial costing at most L "
                                 "came within 1% of the best metric any method found at L (median over seeds)")
    return {"budget": problem.budget, "seeds": seeds, "concurrent": concurrent, "reference": ref,
            "levels": problem.levels,
            "best_at_level": {f"{k:.0e}": v for k, v in best.items()}, "target_hv": problem.target_hv,
            "cost_to_target_by_seed": to_target,
            # every trial of every run, in the order it finished (failed: metric inf), so that the figures can be
            # recomputed or the seeds extended without training again
            "trials_by_seed": {name: [{"cost": c.tolist(), "metric": m.tolist()} for c, m in rs]
                               for name, rs in runs.items()},
            "dimensions": [{"name": d.name, "low": d.low, "high": d.high, "scale": d.scale} for d in problem.dims],
            "rows": rows}


def rescore(problem: str) -> None:
    """Recompute the cost ratios of a problem's saved result from its per-seed costs (as `compare` would),
    print them and write them back into the file's rows."""
    path, payload = _saved_payload(problem, "--rescore")
    for problem_name, by_concurrency in payload["problems"].items():
        for label, result in by_concurrency.items():
            ratio_rng = np.random.default_rng(1)
            to_target = {k: [float(v) for v in costs] for k, costs in result["cost_to_target_by_seed"].items()}
            for row in result["rows"]:
                row.update(ratio_columns(to_target, row["method"], result["budget"], ratio_rng))
            print_table([{k: r[k] for k in ("method", "reached", "cost_to_target", *RATIO_COLUMNS)}
                         for r in result["rows"]],
                        f"{problem_name}, {label}, {result['seeds']} seeds: cost to the reference hypervolume "
                        f"{result['target_hv']} as a multiple of random's and TPE's (90% bootstrap intervals)")
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"rewrote {path}")


def results_name(problem: str) -> str:
    """The file under bench/results that holds ``problem``'s figures (without ``.json``)."""
    return "search" if problem == "synthetic" else f"search-{problem}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=[*PROBLEMS, "both"], default="synthetic")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="method x seed runs in parallel (one thread each)")
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1],
                        help="simulated concurrent trials, one table each (e.g. 1 2 4)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="methods to compare (random and tpe are always run: the ratios need them)")
    parser.add_argument("--budget", type=float, help="total cost per method and seed (default: the problem's)")
    parser.add_argument("--rescore", action="store_true",
                        help="recompute the cost ratios of the saved results (bench/results) without running")
    parser.add_argument("--extend", action="store_true",
                        help="take the saved runs (bench/results) as the first seeds, run only the seeds after "
                             "them up to --seeds, and update those entries of the saved file")
    parser.add_argument("--rerun", nargs="+", choices=list(METHODS), default=[], metavar="METHOD",
                        help="with --extend: run these methods afresh on every seed (e.g. after changing one) and "
                             "keep the saved runs of the others")
    args = parser.parse_args()
    names = list(PROBLEMS) if args.problem == "both" else [args.problem]
    if args.rescore:
        for name in names:
            rescore(name)
        return
    if args.rerun and not args.extend:
        raise SystemExit("--rerun: only with --extend (it keeps the saved runs of the other methods)")
    methods = tuple(m for m in METHODS if m in {"random", "tpe", *args.methods, *args.rerun})
    kept = tuple(m for m in methods if m not in args.rerun)
    for name in names:
        problem = PROBLEMS[name]
        if args.budget:
            problem = replace(problem, budget=args.budget)
        saved = _saved_payload(name, "--extend")[1] if args.extend else {"problems": {name: {}}}
        results = saved["problems"].setdefault(name, {})
        labels = {k: f"concurrent={k}" for k in args.concurrent}
        missing = [label for label in labels.values() if args.extend and label not in results]
        if missing:
            raise SystemExit(f"--extend: {results_name(name)}.json has no {', '.join(missing)} to extend")
        # every saved result checked before anything runs
        earlier = {k: saved_runs(results[label], kept, problem.budget) if args.extend else None
                   for k, label in labels.items()}
        for k, label in labels.items():
            results[label] = compare(problem, args.seeds, args.jobs, k, methods, earlier[k])
            when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            if earlier[k]:
                results[label]["extended"] = (f"seeds 0-{min(len(r) for r in earlier[k].values()) - 1} from the "
                                              f"saved result, the rest run {when}")
            if args.rerun:
                results[label]["rerun"] = f"{', '.join(args.rerun)}: every seed run afresh {when}"
        extra = {"extends_the_result_written": saved["when"]} if args.extend else {}
        path = write_results(results_name(name), {"targets": {"x_random": 0.5, "x_tpe": 0.75}, **extra,
                                                  "problems": {name: results}})
        print(f"wrote {path}")


def _saved_payload(problem: str, flag: str) -> tuple[Path, dict]:
    """The path and contents of a problem's saved results, for `flag` (--rescore, --extend) to work on."""
    path = RESULTS / f"{results_name(problem)}.json"
    if not path.exists():
        raise SystemExit(f"{flag}: {path} does not exist; run without {flag} first")
    return path, json.loads(path.read_text())


if __name__ == "__main__":
    main()
