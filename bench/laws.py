"""Benchmark of the scaling-law extrapolator (sweeper.laws); writes bench/results/laws.json.

1. The Chinchilla table (../shared/data/chinchilla, 5 highest losses dropped, D = C / 6N): fit time and
   fitted values against the published replication (Besiroglu et al. 2024), both local optimisers, the
   bootstrap, and (``--reference``) the replication's own 4,500-start L-BFGS grid on the same objective.
2. ``--holdout-largest`` backtests on the Chinchilla table and on the synthetic workload's law.
3. Recovery of the synthetic law: how often the 95% bootstrap intervals cover the true parameters.
4. The LR-annealing law: final loss from a run's early part and under another schedule, on curves drawn
   from the law and on real (toy) PyTorch training runs.
5. Extrapolation by law form, one table (issue 14): on the Chinchilla table (the 3 largest sizes held
   out) and on the learning curves of Alabdulmohsin et al. 2022 (../shared/data/colpret/revisiting_lang.csv:
   fit the rows marked Training = 1 of each curve, predict the rest) and on the data-constrained training
   curves of Muennighoff et al. 2023 (../shared/data/colpret/datablations_losses.csv: fit each curve from 10%
   to 50% of its tokens, predict the rest), every form and ``auto``: the mean and worst relative error of the
   held-out predictions, how often the 90% interval covers them, and its interval score (width plus 20x
   the miss, in log loss: lower is better, `interval_score`). Beside it, each form fitted to all of
   the Chinchilla table, the held-out sizes included: its error on those sizes is a floor that no
   extrapolation with that form can be expected to beat. ``auto + windows`` also lets each form drop the
   smallest 25/50/75% of the sizes (or, on a curve, of the checkpoints) when its backtests say so.
6. The command a user runs, end to end: ``sweeper fit law`` on the Chinchilla table with ``--law auto``
   (start-up, reading the table, the backtests, the 200-replicate bootstrap, the printout), wall time of
   ``--repeats`` runs against issue 14's 2 s.

    python bench/laws.py                 # about 11 minutes on 2 cores
    python bench/laws.py --reference --reference-stride 10   # also 450 starts of the reference grid
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402
from sweeper.law_inputs import table_points  # noqa: E402
from sweeper.laws.curves import Curve, fit_annealing, lr_areas, predict_final  # noqa: E402
from sweeper.laws.data import LawData, drop_highest, split_largest  # noqa: E402
from sweeper.laws.power import PowerSumProblem, backtest, fit_law  # noqa: E402
from sweeper.laws.select import WINDOW_SHARES  # noqa: E402
from workloads.synthetic import TRUE_PARAMS, optimal_lr, train  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHINCHILLA = SHARED / "chinchilla" / "epoch_svg_extracted_data.csv"
REVISITING = SHARED / "colpret" / "revisiting_lang.csv"
DATABLATIONS = SHARED / "colpret" / "datablations_losses.csv"
PUBLISHED = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
REPLICATION_GRID = {"E": 1.8172, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}
TOLERANCE = {"E": 0.01, "alpha": 0.01, "beta": 0.01, "A": 0.05, "B": 0.05}
NAMES = ("E", "A", "B", "alpha", "beta")


# -- 1. the Chinchilla table -------------------------------------------------------------------------
def chinchilla_table() -> LawData:
    return drop_highest(table_points(CHINCHILLA, "loss", n="Model Size", c="Training FLOP"), 5)


def bench_chinchilla(data: LawData, repeats: int) -> dict:
    out: dict = {"n_points": len(data)}
    for optimizer in ("trf", "lbfgs"):
        fit_law(data, "chinchilla", bootstrap=0, optimizer=optimizer)  # warm-up: imports, caches
        times, fit = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            fit = fit_law(data, "chinchilla", bootstrap=0, optimizer=optimizer)
            times.append(time.perf_counter() - t0)
        rel = {k: fit.params[k] / PUBLISHED[k] - 1 for k in NAMES}
        out[optimizer] = {
            "fit_s_median": statistics.median(times), "fit_s_max": max(times), "objective": fit.objective,
            "params": fit.params, "rel_to_published": rel,
            "rel_to_replication_grid": {k: fit.params[k] / REPLICATION_GRID[k] - 1 for k in NAMES},
            "within_tolerance": all(abs(rel[k]) <= TOLERANCE[k] for k in NAMES),
            "starts": fit.info["starts"], "starts_at_optimum": fit.info["starts_at_optimum"],
        }
    t0 = time.perf_counter()
    boot = fit_law(data, "chinchilla", bootstrap=200, seed=0)
    out["bootstrap"] = {"replicates": 200, "total_s": time.perf_counter() - t0, "intervals": boot.intervals}
    opt = boot.compute_optimal(np.array([5.76e23]))
    out["compute_optimal_5.76e23"] = {k: v.to_dict() for k, v in opt.items()}
    return out


def bench_reference_grid(data: LawData, stride: int) -> dict:
    """The replication's grid of 4,500 L-BFGS starts (analytic gradient here), every ``stride``-th start."""
    from scipy.optimize import minimize

    problem = PowerSumProblem(np.column_stack([np.log(data.n), np.log(data.d)]), data.loss)
    grid = list(itertools.product(np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5), np.arange(-1, 1.5, 0.5),
                                  np.arange(0, 30, 5), np.arange(0, 30, 5)))[::stride]
    # Their parameters are (a, b, e, alpha, beta) on uncentred logs; ours centre log N and log D.
    best, t0 = np.inf, time.perf_counter()
    for alpha, beta, e, a, b in grid:
        theta = np.array([e, a - alpha * problem.x0[0], b - beta * problem.x0[1], alpha, beta])
        res = minimize(problem.value_and_grad, theta, jac=True, method="L-BFGS-B")
        best = min(best, res.fun)
    return {"starts": len(grid), "stride": stride, "total_s": time.perf_counter() - t0,
            "per_start_ms": 1000 * (time.perf_counter() - t0) / len(grid), "best_objective": best}


def bench_random_laws(count: int, starts: int) -> dict:
    """Global optimum on any data: random laws, designs and noise levels; our fit against the best of
    ``starts`` random L-BFGS-B starts on the same objective and bounds."""
    import warnings

    from scipy.optimize import minimize

    rng = np.random.default_rng(42)
    gaps, ours_s, brute_s, degenerate, lbfgs_gaps, lbfgs_s = [], 0.0, 0.0, 0, [], 0.0
    for _ in range(count):
        e, a, b = rng.uniform(0.5, 3), 10 ** rng.uniform(1, 4), 10 ** rng.uniform(1, 4)
        alpha, beta, noise = rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8), rng.choice([0.003, 0.01, 0.03])
        sizes = np.geomspace(10 ** rng.uniform(6, 8), 10 ** rng.uniform(8.5, 10), rng.integers(4, 8))
        n, d = map(np.array, zip(*[(s, r * s) for s in sizes for r in
                                   np.geomspace(rng.uniform(2, 10), rng.uniform(50, 400), rng.integers(3, 7))],
                                  strict=True))
        loss = (e + a / n ** alpha + b / d ** beta) * np.exp(noise * rng.standard_normal(n.size))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_law(LawData(loss=loss, n=n, d=d), "chinchilla", bootstrap=0)
        ours_s += time.perf_counter() - t0
        degenerate += bool(fit.info["at_bounds"])
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = fit_law(LawData(loss=loss, n=n, d=d), "chinchilla", bootstrap=0, optimizer="lbfgs")
        lbfgs_s += time.perf_counter() - t0
        problem = PowerSumProblem(np.column_stack([np.log(n), np.log(d)]), loss)
        t0, best = time.perf_counter(), np.inf
        for _ in range(starts):
            x0 = np.r_[np.log(loss.min()) - rng.uniform(0, 3), rng.uniform(-3, 3, 2), rng.uniform(0.02, 2.5, 2)]
            res = minimize(problem.value_and_grad, x0, jac=True, method="L-BFGS-B",
                           bounds=list(zip(problem.lower, problem.upper, strict=True)))
            best = min(best, res.fun)
        brute_s += time.perf_counter() - t0
        gaps.append((fit.objective - best) / best)
        lbfgs_gaps.append((other.objective - best) / best)
    gaps, lbfgs_gaps = np.array(gaps), np.array(lbfgs_gaps)
    return {"laws": count, "brute_force_starts": starts, "ours_worse_by_1e-6": int((gaps > 1e-6).sum()),
            "max_rel_gap": float(gaps.max()), "degenerate_fits_flagged": degenerate,
            "ours_mean_s": ours_s / count, "brute_force_mean_s": brute_s / count,
            "with_lbfgs_refinement": {"worse_by_1e-6": int((lbfgs_gaps > 1e-6).sum()),
                                      "max_rel_gap": float(lbfgs_gaps.max()), "mean_s": lbfgs_s / count}}


# -- 2/3. the synthetic workload ------------------------------------------------------------------------
SIZES = tuple(np.geomspace(1e7, 1e9, 6))


def synthetic_runs(dataset: int, sizes=SIZES, ratios=(5, 10, 20, 40, 80), seeds: int = 2,
                   steps: int = 10) -> tuple[LawData, LawData]:
    """Final and intermediate points of real synthetic-workload runs at the optimal LR (where its law is
    exactly Chinchilla's form), noise 0.01, one seed per run."""
    final, inter = [], []
    for i, (n, r, _) in enumerate(itertools.product(sizes, ratios, range(seeds))):
        rows: list[dict] = []
        train({"n_params": float(n), "tokens": float(r * n), "lr": optimal_lr(n), "steps": steps, "noise": 0.01,
               "seed": dataset * 10_000 + i}, lambda rows=rows, **kw: rows.append(kw))
        run = f"{dataset}-{i}"
        final.append((n, rows[-1]["tokens"], rows[-1]["loss"], run))
        inter += [(n, row["tokens"], row["loss"], run) for row in rows if row["step"] >= steps // 5]

    def law_data(points: list) -> LawData:
        n, d, loss, run = map(np.array, zip(*points, strict=True))
        return LawData(loss=loss.astype(float), n=n.astype(float), d=d.astype(float), run=run)

    return law_data(final), law_data(inter)


def bench_synthetic(datasets: int) -> tuple[dict, dict]:
    truth = {k: TRUE_PARAMS[k] for k in NAMES}
    covered = dict.fromkeys(NAMES, 0)
    holdout = {"final": [], "intermediate": []}
    fit_times = []
    for ds in range(datasets):
        final, inter = synthetic_runs(ds)
        t0 = time.perf_counter()
        fit = fit_law(final, "chinchilla", bootstrap=100, seed=ds)
        fit_times.append(time.perf_counter() - t0)
        for k in NAMES:
            lo, hi = fit.intervals[k]
            covered[k] += lo <= truth[k] <= hi
        holdout["final"].append(backtest(final, "chinchilla", count=1, bootstrap=100, seed=ds))
        holdout["intermediate"].append(backtest(inter, "chinchilla", count=1, bootstrap=100, seed=ds))
    recovery = {"datasets": datasets, "runs_per_dataset": len(final), "coverage_95": {k: v / datasets for k, v in
                covered.items()}, "fit_plus_100_bootstrap_s_median": statistics.median(fit_times)}
    summary = {}
    for kind, reports in holdout.items():
        summary[kind] = {
            "points_train": reports[0]["n_train"], "points_test": reports[0]["n_test"],
            "extrapolation": reports[0]["held_out"]["extrapolation"],
            "mean_abs_rel_error": float(np.mean([r["mean_abs_rel_error"] for r in reports])),
            "max_abs_rel_error": float(np.max([r["max_abs_rel_error"] for r in reports])),
            "mean_bias": float(np.mean([r["mean_rel_error"] for r in reports])),
            "interval_coverage": float(np.mean([r["interval_coverage"] for r in reports])),
            "predictive_coverage": float(np.mean([r["predictive_coverage"] for r in reports])),
        }
    return recovery, summary


def bench_chinchilla_holdouts(data: LawData) -> list[dict]:
    rows = []
    for by, count in (("n", 1), ("n", 3), ("n", 6), ("c", 1), ("c", 3)):
        r = backtest(data, "chinchilla", holdout_by=by, count=count, bootstrap=200)
        rows.append({"held_out": f"{count} largest {r['held_out']['by']}", "n_train": r["n_train"],
                     "n_test": r["n_test"], "extrapolation": r["held_out"]["extrapolation"],
                     "mean_abs_rel_error": r["mean_abs_rel_error"], "max_abs_rel_error": r["max_abs_rel_error"],
                     "bias": r["mean_rel_error"], "interval_coverage": r["interval_coverage"],
                     "predictive_coverage": r["predictive_coverage"]})
    return rows


# -- 4. the LR-annealing law -----------------------------------------------------------------------------
def schedule(kind: str, steps: int, peak: float = 3e-3, warmup: int = 100) -> np.ndarray:
    s = np.arange(steps)
    if kind == "constant":
        body = np.full(steps, peak)
    elif kind == "cosine":
        body = 0.1 * peak + 0.9 * peak * 0.5 * (1 + np.cos(np.pi * (s - warmup) / (steps - warmup)))
    else:
        start = int(0.8 * steps)
        body = np.where(s < start, peak, peak + (0.1 * peak - peak) * (s - start + 1) / (steps - start))
    return np.where(s < warmup, peak * (s + 1) / warmup, body)


def law_curves(seed: int, steps: int = 4000, every: int = 40, noise: float = 0.003) -> dict[str, Curve]:
    rng = np.random.default_rng(seed)
    p = (2.5, 0.6, 0.5, 0.1)
    out = {}
    for kind in ("constant", "cosine", "wsd"):
        lr = schedule(kind, steps)
        s1, s2 = lr_areas(lr)
        at = np.arange(every, steps + 1, every)
        loss = (p[0] + p[1] * s1 ** -p[2] - p[3] * s2)[at - 1] * np.exp(noise * rng.standard_normal(at.size))
        true_final = p[0] + p[1] * s1[-1] ** -p[2] - p[3] * s2[-1]
        out[kind] = (Curve(at, loss, lr, kind), true_final)
    return out


def mlp_curves(steps: int = 3000, every: int = 25) -> dict[str, Curve]:
    """Real training: a student MLP learns a teacher MLP from noisy minibatches (AdamW, batch 16) under
    three schedules; the held-out MSE every ``every`` steps is the curve."""
    import torch

    torch.set_num_threads(1)
    out = {}
    for kind in ("constant", "cosine", "wsd"):
        g = torch.Generator().manual_seed(1234)
        teacher = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.Tanh(), torch.nn.Linear(128, 1))
        with torch.no_grad():
            for p in teacher.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[-1]))
            xv = torch.randn(4096, 32, generator=g)
            yv = teacher(xv) + 0.1 * torch.randn(4096, 1, generator=g)
        torch.manual_seed(0)
        student = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                      torch.nn.Tanh(), torch.nn.Linear(64, 1))
        opt = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=0.0)
        lr = schedule(kind, steps)
        data = torch.Generator().manual_seed(7)
        at, losses = [], []
        for s in range(steps):
            for group in opt.param_groups:
                group["lr"] = float(lr[s])
            x = torch.randn(16, 32, generator=data)
            with torch.no_grad():
                y = teacher(x) + 0.1 * torch.randn(16, 1, generator=data)
            loss = ((student(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (s + 1) % every == 0:
                with torch.no_grad():
                    at.append(s + 1)
                    losses.append(((student(xv) - yv) ** 2).mean().item())
        at = np.array(at)
        keep = at >= 10 * every  # the first steps are transients, not the law
        out[kind] = (Curve(at[keep], np.array(losses)[keep], lr, kind), losses[-1])
    return out


def bench_curves(curves: dict, label: str) -> list[dict]:
    rows = []
    steps = curves["cosine"][0].lr.size

    def row(task: str, pred, actual: float) -> dict:
        value, lo, hi = (float(np.ravel(v)[0]) for v in (pred.value, pred.lo, pred.hi))
        return {"curves": label, "task": task, "predicted": value, "actual": actual,
                "rel_error": value / actual - 1, "covered": bool(lo <= actual <= hi)}

    for train_on in (("cosine",), ("constant", "cosine")):
        fit = fit_annealing([curves[k][0] for k in train_on], bootstrap=100)
        for target in ("wsd", "constant", "cosine"):
            if target in train_on:
                continue
            cv, actual = curves[target]
            rows.append(row(f"fit {'+'.join(train_on)} -> final {target}", fit.prediction(cv.lr, [steps]), actual))
    for fraction in (0.3, 0.5, 0.7):
        cv, actual = curves["cosine"]
        pred, _ = predict_final(cv.upto(int(fraction * steps)), bootstrap=100)
        rows.append(row(f"cosine first {fraction:.0%} -> final", pred, actual))
    return rows


def bench_prefix_coverage(seeds: int) -> dict:
    errs, covered = [], 0
    for seed in range(seeds):
        cv, actual = law_curves(100 + seed)["cosine"]
        pred, _ = predict_final(cv.upto(cv.lr.size // 2), bootstrap=100, seed=seed)
        errs.append(float(pred.value[0]) / actual - 1)
        covered += float(pred.lo[0]) <= actual <= float(pred.hi[0])
    return {"seeds": seeds, "rms_rel_error": float(np.sqrt(np.mean(np.square(errs)))),
            "mean_rel_error": float(np.mean(errs)), "coverage_95": covered / seeds}


# -- 5. extrapolation by law form ----------------------------------------------------------------------
def interval_score(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, level: float = 0.9) -> np.ndarray:
    """The interval score (Gneiting and Raftery 2007) in log loss: the interval's width plus 2 / (1 - level)
    times how far the point falls outside it. Lower is better; it rewards narrow intervals and punishes misses,
    so a method cannot win by coverage alone (always wide) or by width alone (always narrow)."""
    lo, hi, y = (np.log(np.asarray(v, dtype=float)) for v in (lo, hi, y))
    return hi - lo + 2 / (1 - level) * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))


def _scores(rel: list[np.ndarray], covered: list[np.ndarray], scores: list[np.ndarray]) -> dict:
    rel_all, cov_all = np.abs(np.concatenate(rel)), np.concatenate(covered)
    return {"points": int(rel_all.size), "mean_abs_rel_error": float(rel_all.mean()),
            "worst_abs_rel_error": float(rel_all.max()), "coverage_90": float(cov_all.mean()),
            "interval_score_90": float(np.concatenate(scores).mean())}


def bench_forms_chinchilla(data: LawData, bootstrap: int = 100) -> list[dict]:
    rows = []
    for law, windows in (("chinchilla", ()), ("overtrain", ()), ("power", ()), ("auto", ()),
                         ("auto", WINDOW_SHARES)):
        t0 = time.perf_counter()
        out = backtest(data, law, None if law != "power" else "flops", count=3, bootstrap=bootstrap, level=0.9,
                       holdout_by="n", **({"windows": windows} if windows else {}))
        points = out["points"]
        rel = np.array([(p["predicted"] - p["loss"]) / p["loss"] for p in points])
        cov = np.array([p["interval"][0] <= p["loss"] <= p["interval"][1] for p in points])
        score = interval_score(*np.array([[*p["interval"], p["loss"]] for p in points]).T)
        form = law if law != "auto" else f"auto{' + windows' if windows else ''} -> {out['law']}"
        rows.append({"table": "chinchilla (3 largest N held out)", "form": form, **_scores([rel], [cov], [score]),
                     "s": round(time.perf_counter() - t0, 2)})
    return rows


def bench_chinchilla_cutoffs(data: LawData, counts=(1, 2, 3, 4, 6, 8, 10), bootstrap: int = 100) -> dict:
    """``auto``'s 90% intervals on the Chinchilla table at several cutoffs (the K largest sizes held out, for
    each K; the test sets overlap): 6 held-out points cannot tell 90% coverage from 100%, these 126 can
    better."""
    rel, cov, scores, per_cutoff = [], [], [], []
    for count in counts:
        out = backtest(data, "auto", count=count, bootstrap=bootstrap, level=0.9, holdout_by="n")
        lo, hi, y = np.array([[*p["interval"], p["loss"]] for p in out["points"]]).T
        pred = np.array([p["predicted"] for p in out["points"]])
        rel.append((pred - y) / y)
        cov.append((y >= lo) & (y <= hi))
        scores.append(interval_score(lo, hi, y))
        per_cutoff.append({"held_out": count, "law": out["law"], "points": len(y), "coverage_90": float(cov[-1].mean()),
                           "mean_log_width": float(np.mean(np.log(hi / lo)))})
    return {"pooled": _scores(rel, cov, scores), "cutoffs": per_cutoff}


def bench_form_floor(data: LawData, count: int = 3) -> list[dict]:
    """Each form fitted to every point, the held-out ones included: its error on those points is the least
    any extrapolation with that form can expect there (a floor, not a prediction)."""
    _, test = split_largest(data, "n", count)
    rows = []
    for law in ("chinchilla", "overtrain", "power"):
        fit = fit_law(data, law, "flops" if law == "power" else None, bootstrap=0)
        rel = np.abs(fit.predict(n=test.n, d=test.d, c=test.c) / test.loss - 1)
        rows.append({"form": law, "points": int(rel.size), "mean_abs_rel_error": float(rel.mean()),
                     "worst_abs_rel_error": float(rel.max())})
    return rows


CLI_TARGET_S = 2.0


def bench_cli_fit(repeats: int) -> dict:
    """Wall time of ``sweeper fit law --law auto`` on the Chinchilla table, one fresh process per run."""
    command = [sys.executable, "-c", "from sweeper.cli import main; main()", "fit", "law", "--from", str(CHINCHILLA),
               "--loss", "loss", "--n", "Model Size", "--c", "Training FLOP", "--drop-highest", "5", "--law", "auto"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"command": "sweeper " + " ".join(command[3:]), "runs": repeats, "wall_s": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "target_s": CLI_TARGET_S, "all_under_target": max(times) < CLI_TARGET_S}


def curve_points(rows, x: str, loss: str, name: str) -> LawData:
    """One learning curve's rows (a polars frame) as points in tokens ``d``, each its own run."""
    d = rows[x].to_numpy().astype(float)
    return LawData(loss=rows[loss].to_numpy().astype(float), d=d, run=np.arange(len(d)).astype(str), source=name,
                   columns={"d": x, "loss": loss})


def revisiting_curves() -> list[tuple[str, LawData, LawData]]:
    """(name, fitted part, held-out part) of every learning curve of the revisiting-laws benchmark."""
    import polars as pl

    frame = pl.read_csv(REVISITING).filter(pl.col("Loss") > 0)
    out = []
    for (domain, task, model), part in frame.group_by(["Domain", "Task", "Model"], maintain_order=True):
        part = part.sort("Seen Examples")
        fit, held = part.filter(pl.col("Training") == 1), part.filter(pl.col("Training") == 0)
        if fit.height < 5 or held.is_empty():
            continue
        name = f"{domain}/{task}/{model}"
        out.append((name, *(curve_points(rows, "Seen Examples", "Loss", name) for rows in (fit, held))))
    return out


def datablations_curves(fit_from: float = 0.1, fit_to: float = 0.5,
                        most: int = 60) -> list[tuple[str, LawData, LawData]]:
    """(name, fitted part, held-out part) of every training curve of Muennighoff et al. 2023: each curve's
    checkpoints from ``fit_from`` to ``fit_to`` of its tokens are fitted (the earliest skipped, as the
    Hitchhiker's Guide advises), the later ones predicted; each part thinned to at most ``most`` points."""
    import polars as pl

    frame = pl.read_csv(DATABLATIONS).filter(pl.col("loss") > 0)
    out = []
    for (data, epochs, size), part in frame.group_by(["data", "epochs", "num_params"], maintain_order=True):
        part = part.sort("token_num").unique("token_num", keep="last", maintain_order=True)
        last = float(part["token_num"].max())
        fit = part.filter((pl.col("token_num") >= fit_from * last) & (pl.col("token_num") <= fit_to * last))
        held = part.filter(pl.col("token_num") > fit_to * last)
        if fit.height < 5 or held.is_empty():
            continue
        name = f"{data}/{size}/{epochs} epochs"
        thinned = (rows.gather_every(max(1, -(-rows.height // most))) for rows in (fit, held))
        out.append((name, *(curve_points(rows, "token_num", "loss", name) for rows in thinned)))
    return out


def bench_forms_curves(label: str, curves: list[tuple[str, LawData, LawData]], bootstrap: int = 50) -> list[dict]:
    """Every curve's fitted part fitted by the power law in tokens and by ``auto`` (without and with fit
    windows), its held-out part predicted."""
    import warnings

    rows = []
    for law, windows in (("power", ()), ("auto", ()), ("auto", WINDOW_SHARES)):
        rel, cov, scores, failed, t0 = [], [], [], 0, time.perf_counter()
        for _, fit_part, held in curves:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = fit_law(fit_part, law, "tokens", bootstrap=bootstrap, level=0.9,
                                  **({"windows": windows} if windows else {}))
            except Exception:  # noqa: BLE001 - a curve no form can fit is counted, not fatal
                failed += 1
                continue
            pred = fit.prediction(d=held.d)
            rel.append((pred.value - held.loss) / held.loss)
            cov.append((held.loss >= pred.lo) & (held.loss <= pred.hi))
            scores.append(interval_score(pred.lo, pred.hi, held.loss))
        rows.append({"table": f"{label} ({len(curves)} curves, {failed} unfitted)",
                     "form": f"{law}(tokens)" if law == "power" else f"auto{' + windows' if windows else ''}",
                     **_scores(rel, cov, scores),
                     "s": round(time.perf_counter() - t0, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="also run the replication's 4,500-start grid")
    parser.add_argument("--reference-stride", type=int, default=1, help="run every K-th start of that grid")
    parser.add_argument("--datasets", type=int, default=10, help="synthetic datasets for coverage and backtests")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed repeats of the Chinchilla fit and of the fit-law command")
    args = parser.parse_args()
    payload: dict = {}

    if CHINCHILLA.is_file():
        data = chinchilla_table()
        ch = bench_chinchilla(data, args.repeats)
        payload["chinchilla"] = ch
        rows = [{"": "published (Besiroglu et al.)", **PUBLISHED, "objective": "", "fit s": ""}]
        rows.append({"": "replication 4,500-start grid", **REPLICATION_GRID, "objective": "", "fit s": ""})
        for opt in ("trf", "lbfgs"):
            r = ch[opt]
            rows.append({"": f"sweeper ({opt})", **{k: r["params"][k] for k in NAMES},
                         "objective": f"{r['objective']:.10g}", "fit s": r["fit_s_median"]})
        print_table(rows, f"Chinchilla table: {ch['n_points']} points (5 highest losses dropped)")
        print(f"trf fit within tolerance of the published values: {ch['trf']['within_tolerance']}; median "
              f"{ch['trf']['fit_s_median']:.3f} s (max {ch['trf']['fit_s_max']:.3f} s); 200-replicate bootstrap "
              f"{ch['bootstrap']['total_s']:.2f} s")
        if args.reference:
            ref = bench_reference_grid(data, args.reference_stride)
            payload["reference_grid"] = ref
            print(f"reference grid: {ref['starts']} L-BFGS starts in {ref['total_s']:.1f} s "
                  f"({ref['per_start_ms']:.0f} ms/start), best objective {ref['best_objective']:.10g}")
        holdouts = bench_chinchilla_holdouts(data)
        payload["chinchilla_holdout"] = holdouts
        print_table(holdouts, "Chinchilla table: --holdout-largest backtests")
    else:
        print(f"{CHINCHILLA} is absent: the Chinchilla-table sections are skipped")

    stress = bench_random_laws(20, 40)
    payload["random_laws"] = stress
    print(f"global optimum on {stress['laws']} random laws/designs/noise levels: worse than the best of "
          f"{stress['brute_force_starts']} random L-BFGS starts in {stress['ours_worse_by_1e-6']} (max relative gap "
          f"{stress['max_rel_gap']:.1e}; {stress['degenerate_fits_flagged']} degenerate fits flagged); "
          f"{stress['ours_mean_s']:.2f} s per fit vs {stress['brute_force_mean_s']:.2f} s for the multistart; "
          f"with L-BFGS refinement instead of TRF: {stress['with_lbfgs_refinement']}")

    recovery, holdout = bench_synthetic(args.datasets)
    payload["synthetic_recovery"] = recovery
    payload["synthetic_holdout"] = holdout
    print_table([{"param": k, "true": TRUE_PARAMS[k], "coverage of 95% interval": v}
                 for k, v in recovery["coverage_95"].items()],
                f"synthetic law: {recovery['datasets']} datasets of {recovery['runs_per_dataset']} runs")
    print_table([{"points": k, **v} for k, v in holdout.items()],
                "synthetic law: --holdout-largest (1e9 params held out, fit on 1e7..4e8), mean over datasets")

    forms = bench_forms_chinchilla(chinchilla_table()) if CHINCHILLA.is_file() else []
    forms += bench_forms_curves("revisiting_lang", revisiting_curves()) if REVISITING.is_file() else []
    forms += (bench_forms_curves("datablations, 10-50% -> rest", datablations_curves())
              if DATABLATIONS.is_file() else [])
    payload["extrapolation_by_form"] = forms
    if forms:
        print_table(forms, "extrapolation by law form: held-out points, error, 90% interval coverage and score")
    if CHINCHILLA.is_file():
        table = chinchilla_table()
        cutoffs = payload["chinchilla_auto_cutoffs"] = bench_chinchilla_cutoffs(table)
        print_table(cutoffs["cutoffs"], "Chinchilla table, auto at several cutoffs (K largest sizes held out)")
        print(f"pooled over the cutoffs: {cutoffs['pooled']}")
        floor = payload["chinchilla_form_floor"] = bench_form_floor(table)
        print_table(floor, f"Chinchilla table: each form fitted to all {len(table)} points, its error on the 3 "
                           "largest sizes")

    if CHINCHILLA.is_file():
        cli = payload["cli_fit_auto"] = bench_cli_fit(args.repeats)
        print(f"`{cli['command']}`: median {cli['median_s']:.2f} s, max {cli['max_s']:.2f} s over {cli['runs']} "
              f"runs (target under {cli['target_s']:.0f} s)")

    rows = bench_curves({k: v for k, v in law_curves(0).items()}, "drawn from the law")
    rows += bench_curves(mlp_curves(), "toy MLP training")
    payload["lr_annealing"] = rows
    payload["lr_annealing_prefix50_coverage"] = bench_prefix_coverage(args.datasets)
    print_table(rows, "LR-annealing law: predicted final losses")
    print(f"prefix 50% over {args.datasets} law-drawn curves: {payload['lr_annealing_prefix50_coverage']}")
    path = write_results("laws", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
