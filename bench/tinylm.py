"""Training throughput of ``workloads.tinylm`` next to the fp32 matmul peak measured in the same run.

For a ladder of model sizes at batch 32 x context 128 it times the workload's own ``Trainer.step`` (mixture
sampling, forward, backward, clipping, fused AdamW) and prints tokens/s and achieved GFLOP/s from the
counted FLOPs (``workloads/tinylm/flops.py``: every matmul incl. attention and the tied head, x3 for
training), the same by 6N (N = all parameters) for comparison, and both as a share of the peak. The peak is
the best sustained fp32 ``torch.mm`` rate over square sizes (1 s windows, timed like the training rate),
measured before and after the ladder; the larger is used, so a busy machine lowers the percentages rather
than raising them. "gemm %peak" is the ceiling the model's shapes allow: its own weight matmuls (each linear
layer and the head, forward and both backward products, batch x context rows) timed alone, as a share of the
same peak; the gap between it and "%peak" is what attention, activations, norms and the optimiser cost.

Other people share this machine, so every window is timed twice: by the wall clock and by the process's
CPU time. On a quiet machine the two agree; under load the CPU-time rates (work per second actually spent
on a core, for training and peak alike) stay meaningful where the wall-clock ones mostly measure the load.
With 2 threads, CPU time includes OpenMP spin-waiting, so the CPU-time percentage is a lower bound.
Writes ``bench/results/tinylm.json``.

    python bench/tinylm.py                       # 2 threads, then 1 thread; eager
    python bench/tinylm.py --threads 1 --compile both
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from workloads.tinylm.train import open_run

# (d_model, n_layers, n_heads): about 0.12M, 0.44M, 0.64M, 0.84M, 3.2M and 10.8M parameters
LADDER = [(64, 2, 2), (128, 2, 2), (128, 3, 2), (128, 4, 2), (256, 4, 4), (384, 6, 6)]


def best_rates(work: Callable[[], float], windows: int, window_s: float) -> dict[str, float]:
    """Run ``work`` (returns units done) back to back in ``windows`` windows of about ``window_s``;
    the best window's units per wall second and per CPU second."""
    wall_best = cpu_best = 0.0
    for _ in range(windows):
        units, w0, c0 = 0.0, time.perf_counter(), time.process_time()
        while (wall := time.perf_counter() - w0) < window_s:
            units += work()
        cpu = max(time.process_time() - c0, 1e-9)
        wall_best, cpu_best = max(wall_best, units / wall), max(cpu_best, units / cpu)
    return {"wall": wall_best, "cpu": cpu_best}


def matmul_peak(threads: int, sizes: tuple[int, ...] = (1024, 2048)) -> dict[str, float]:
    """Best sustained fp32 square-matmul GFLOP/s per wall second and per CPU second, over ``sizes``."""
    torch.set_num_threads(threads)
    best = {"wall": 0.0, "cpu": 0.0}
    for n in sizes:
        a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)

        def mm(a=a, b=b, out=out, n=n) -> float:
            torch.mm(a, b, out=out)
            return 2 * n**3 / 1e9

        mm()
        rates = best_rates(mm, windows=3, window_s=1.0)
        best = {k: max(best[k], rates[k]) for k in best}
    return best


def gemm_ceiling(model: torch.nn.Module, tokens: int, threads: int, seconds: float) -> dict[str, float]:
    """GFLOP/s of the model's own weight matmuls alone (each ``nn.Linear`` and the tied head, forward and
    both backward products, at ``tokens`` rows), per wall and per CPU second: what the step could reach if
    everything but these matmuls (attention, activations, norms, optimiser) were free."""
    torch.set_num_threads(threads)
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    shapes.append(tuple(model.wte.weight.shape[::-1]))  # the tied head: d_model -> vocab
    operands = []
    for k, n in shapes:  # x (M,k) @ W^T (k,n); grad_x = g (M,n) @ W (n,k); grad_W = g^T (n,M) @ x (M,k)
        x, w, g = torch.randn(tokens, k), torch.randn(n, k), torch.randn(tokens, n)
        operands += [(x, w.t()), (g, w), (g.t(), x)]
    flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in operands) / 1e9

    def all_gemms() -> float:
        for a, b in operands:
            torch.mm(a, b)
        return flops

    all_gemms()
    return best_rates(all_gemms, windows=3, window_s=seconds / 3)


def time_size(d: int, layers: int, heads: int, threads: int, compile_: bool, seconds: float,
              repeats: int) -> dict:
    """Tokens per wall and per CPU second of the workload's training step for one model size."""
    config = {"d_model": d, "n_layers": layers, "n_heads": heads, "ctx": 128, "batch_size": 32,
              "tokens": 10**12, "threads": threads, "compile": compile_, "seed": 0}
    t0 = time.perf_counter()
    data, trainer = open_run(config)
    trainer.step()
    first_step_s = time.perf_counter() - t0
    for _ in range(2):
        trainer.step()

    def steps(n: int = 2) -> float:
        for _ in range(n):
            trainer.step()
        trainer.take_train_loss()  # a sync point, as in the real loop
        return n * data.cfg.tokens_per_step

    rates = best_rates(steps, windows=repeats, window_s=seconds / repeats)
    ceiling = gemm_ceiling(trainer.model, data.cfg.tokens_per_step, threads, seconds / 2)
    return {"gemm_gflops": ceiling["wall"], "gemm_gflops_per_cpu_s": ceiling["cpu"],
            "d_model": d, "n_layers": layers, "n_heads": heads, "compile": compile_, **trainer.counts,
            "flops_per_token": trainer.flops_per_token, "first_step_s": first_step_s,
            "tokens_per_s": rates["wall"], "tokens_per_cpu_s": rates["cpu"]}


def run_ladder(threads: int, modes: list[bool], args: argparse.Namespace) -> dict:
    """Peak, the ladder, peak again; print the table and return the run's record."""
    load_before = os.getloadavg()
    peak_before = matmul_peak(threads)
    rows = [time_size(d, layers, heads, threads, mode, args.seconds, args.repeats)
            for d, layers, heads in LADDER if 12 * layers * d * d + 384 * d <= args.max_params
            for mode in modes]
    peak_after = matmul_peak(threads)
    peak = {k: max(peak_before[k], peak_after[k]) for k in peak_before}
    load_after = os.getloadavg()

    print(f"\n{threads} thread(s): fp32 matmul peak {peak['wall']:.1f} GFLOP/s by the wall clock (before "
          f"{peak_before['wall']:.1f}, after {peak_after['wall']:.1f}), {peak['cpu']:.1f} per CPU second; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'params':>8} {'d':>4} {'L':>2} {'H':>2} {'compile':>7} {'tok/s':>8} {'GFLOP/s':>8} "
          f"{'%peak':>6} {'%peak6N':>7} {'%peak cpu':>9} {'gemm %peak':>10} {'1st step s':>10}")
    for r in rows:
        r["gflops"] = r["tokens_per_s"] * r["flops_per_token"] / 1e9
        r["pct_peak"] = 100 * r["gflops"] / peak["wall"]
        r["pct_peak_6n"] = 100 * r["tokens_per_s"] * 6 * r["n_params"] / 1e9 / peak["wall"]
        r["pct_peak_cpu"] = 100 * r["tokens_per_cpu_s"] * r["flops_per_token"] / 1e9 / peak["cpu"]
        r["gemm_pct_peak"] = 100 * r["gemm_gflops"] / peak["wall"]
        print(f"{r['n_params'] / 1e6:7.2f}M {r['d_model']:>4} {r['n_layers']:>2} {r['n_heads']:>2} "
              f"{'on' if r['compile'] else 'off':>7} {r['tokens_per_s']:8.0f} {r['gflops']:8.1f} "
              f"{r['pct_peak']:6.1f} {r['pct_peak_6n']:7.1f} {r['pct_peak_cpu']:9.1f} {r['gemm_pct_peak']:10.1f} "
              f"{r['first_step_s']:10.2f}")
    return {"threads": threads, "peak_gflops": peak["wall"], "peak_gflops_per_cpu_s": peak["cpu"],
            "peak_before": peak_before, "peak_after": peak_after, "load_before": load_before,
            "load_after": load_after, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="2,1", help="comma-separated thread counts, one ladder each")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per size and mode")
    parser.add_argument("--repeats", type=int, default=5, help="timing windows per size (the best counts)")
    parser.add_argument("--max-params", type=float, default=4e6, help="skip larger sizes (10.8M: 2e7)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tinylm.json"))
    args = parser.parse_args()
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    runs = [run_ladder(int(t), modes, args) for t in args.threads.split(",")]
    result = {"bench": "tinylm", "batch_size": 32, "ctx": 128, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
