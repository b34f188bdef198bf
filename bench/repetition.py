"""What repeating its data costs a tinylm run: the ladder's largest rung trained on all of its data and on a
third and a sixth of it, so that the same tokens read it 0.58, 1.75 and 3.5 times.

A law fitted to a ladder whose runs never repeat data knows nothing of repetition, and repeated tokens are
worth less than fresh ones (Muennighoff et al. 2023). tinylm's built-in corpus holds about 10M training tokens,
so a validation run past that reads some of it twice (``describe(config)["epochs"]``; the ladder warns).

The subsets keep every k-th stretch of 8,192 tokens of each domain's training split, spread through it as the
validation blocks are, so a subset is as varied as the whole. A run on less data can lose for two reasons:
it repeats, and it has seen fewer different documents even before it repeats. A short control (the same
rung at a third of the tokens, so a third of the data is read 0.58 times) measures the second. Each case
reports the validation loss (``loss.valid.target``), the loss on fixed windows of the training split it read,
and their gap (memorisation: the gap grows as the run learns its own training text).

    python bench/repetition.py [--jobs 2] [--validation xxl]     (about 6 minutes on 2 cores; --validation
                                                                 adds a validation run of the study on all
                                                                 of its data and on half, about 20 more)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, write_results  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "studies" / "ladder.yaml"
RUNG = "xl_40"
STRETCH = 8192
EVERY = (1, 3, 6)
SHORT_EVERY = (1, 3)


def _every_kth_stretch(tokens: np.ndarray, k: int) -> np.ndarray:
    return tokens if k == 1 else np.concatenate([tokens[i:i + STRETCH] for i in range(0, len(tokens), STRETCH * k)])


def train_case(case: dict[str, Any]) -> dict[str, Any]:
    """Train one config on every ``every``-th stretch of each domain; the final losses on validation and on
    training windows."""
    import importlib

    import torch

    from workloads.tinylm.data import eval_windows

    tinylm = importlib.import_module("workloads.tinylm.train")  # the module (the package exports its train function)

    data = tinylm.open_data(case["config"])
    k = case["every"]
    data = dataclasses.replace(data, domains=[dataclasses.replace(d, train=_every_kth_stretch(d.train, k))
                                              for d in data.domains])
    torch.set_num_threads(1)
    trainer = tinylm.Trainer(data, torch.device("cpu"))
    valid = tinylm._Evaluator(data.domains, data.cfg, trainer.device)
    seen = tinylm._Evaluator(data.domains, data.cfg, trainer.device)
    seen.windows = {d.name: torch.from_numpy(np.ascontiguousarray(eval_windows(d.train, data.cfg.ctx,
                                                                                 data.cfg.eval_tokens))).long()
                    for d in data.domains}
    start = time.perf_counter()
    for _ in range(data.cfg.steps):
        trainer.step()
    v, _ = valid(trainer.model, trainer.autocast)
    t, _ = seen(trainer.model, trainer.autocast)
    tokens = data.cfg.steps * data.cfg.tokens_per_step
    target = sum(data.target[n] * v[n] for n in v)
    on_train = sum(data.target[n] * t[n] for n in t)
    return {"case": case["name"], "seed": case["seed"], "n_params": trainer.counts["n_params"], "tokens": tokens,
            "data_share": round(1 / k, 4), "epochs": tinylm.epochs(data, tokens), "valid": target,
            "train_windows": on_train, "gap": target - on_train, "wall_s": time.perf_counter() - start,
            "by_domain": v}


def cases(validation: str | None, seeds: list[int]) -> list[dict[str, Any]]:
    """The rung at all of its tokens and at a third (the control), on each share of the data; with
    ``validation``, that validation run of the study on all of its data and on half; each at every seed."""
    from sweeper.space import presets_of
    from sweeper.spec import load_study

    study = load_study(str(STUDY))
    base = {**study.params, "seed": study.seed}
    rung = {**base, **presets_of(study.space)["run"][RUNG]}
    per_step = rung["batch_size"] * rung["ctx"]
    short = {**rung, "tokens": round(rung["tokens"] / 3 / per_step) * per_step}
    out = [{"name": f"{RUNG}, 1/{k} of the data", "config": rung, "every": k} for k in EVERY]
    out += [{"name": f"{RUNG} at 1/3 of its tokens, 1/{k} of the data", "config": short, "every": k}
            for k in SHORT_EVERY]
    if validation:
        config = {**base, **study.laws.validate_.runs[validation]}
        out += [{"name": f"{validation}, 1/{k} of the data", "config": config, "every": k} for k in (1, 2)]
    return [{**case, "config": {**case["config"], "seed": seed}, "seed": seed} for case in out for seed in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each (default 2)")
    parser.add_argument("--validation", default=None, help="also a validation run of the study, by name")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per case (default 2)")
    args = parser.parse_args()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(train_case, cases(args.validation, list(range(args.seeds)))))
    summary = summarise(runs)
    print_table(summary, "tinylm: the same run on less data, read more times (mean over seeds; the change "
                         "against all of its data, paired by seed)")
    path = write_results("repetition", {"study": str(STUDY.name), "rung": RUNG, "stretch": STRETCH,
                                        "summary": summary, "runs": runs})
    print(f"wrote {path}")


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per case: its mean over seeds, and the change of its validation loss against the same config
    on all of its data at the same seed (mean and its standard error)."""
    rows = []
    for name in dict.fromkeys(r["case"] for r in runs):
        mine = [r for r in runs if r["case"] == name]
        config = name.split(", 1/")[0]
        full = {r["seed"]: r["valid"] for r in runs if r["case"] == f"{config}, 1/1 of the data"}
        change = np.array([r["valid"] / full[r["seed"]] - 1 for r in mine if r["seed"] in full])
        rows.append({"case": name, "seeds": len(mine), "epochs": mine[0]["epochs"],
                     "valid": float(np.mean([r["valid"] for r in mine])),
                     "gap": float(np.mean([r["gap"] for r in mine])),
                     "change": float(change.mean()) if change.size else float("nan"),
                     "change_se": (float(change.std(ddof=1) / np.sqrt(change.size)) if change.size > 1
                                   else float("nan"))})
    return rows


if __name__ == "__main__":
    main()
