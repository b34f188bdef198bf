"""The training loop: the workload contract ``train(config, report)``, plus ``describe`` and ``token_shares``.

One run: resolve the config, open the cached domains, build the model from the seed, then AdamW
(PyTorch's fused kernel where the device has one) with a warmup + constant / cosine / WSD schedule and
gradient clipping, drawing each batch from the mixture. Every ``eval_every`` steps and at the end it
measures validation loss and top-1 next-token error on every domain and reports the curve point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweeper.errors import UserError

from .config import TinyLMConfig, resolve
from .data import Domain, MixtureSampler, eval_windows, load_domains, parse_domains, resolve_weights
from .flops import flops_per_token, param_counts, shape_counts
from .model import GPT, GPTConfig
from .optim import FusedAdamW, fused_kernel_available
from .tokenizer import get_tokenizer


@dataclass(frozen=True)
class RunData:
    """A run's resolved config, its opened domains and its normalised mixture and target weights."""

    cfg: TinyLMConfig
    vocab_size: int
    domains: list[Domain]
    mix: dict[str, float]
    target: dict[str, float]


def lr_schedule(cfg: TinyLMConfig, steps: int) -> Callable[[int], float]:
    """Learning rate at step ``s`` (0-based): linear warmup to ``lr``, then constant, cosine down to
    ``min_lr_ratio * lr``, or warmup-stable-decay (constant, then a linear decay over the last ``decay``)."""
    warm = int(round(cfg.warmup * steps))
    floor = cfg.min_lr_ratio * cfg.lr
    decay_start = steps - int(round(cfg.decay * steps))

    def at(s: int) -> float:
        if s < warm:
            return cfg.lr * (s + 1) / warm
        if cfg.schedule == "constant":
            return cfg.lr
        if cfg.schedule == "cosine":
            progress = (s - warm) / max(1, steps - warm)
            return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if s < decay_start:
            return cfg.lr
        return cfg.lr + (floor - cfg.lr) * (s - decay_start + 1) / max(1, steps - decay_start)

    return at


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU. Asking for CUDA without one is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("tinylm config: device: 'cuda' requested but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def make_optimizer(model: GPT, cfg: TinyLMConfig, device: torch.device) -> FusedAdamW | torch.optim.AdamW:
    """AdamW with weight decay on matrices only, through the fused kernel (one call per group) where the
    device has one, else ``torch.optim.AdamW`` with its multi-tensor path."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    betas = (cfg.beta1, cfg.beta2)
    if fused_kernel_available(device):
        return FusedAdamW(groups, lr=cfg.lr, betas=betas, eps=1e-8)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=1e-8, foreach=True)


def _model_config(cfg: TinyLMConfig, vocab_size: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, ctx=cfg.ctx, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads)


def describe(config: dict[str, Any]) -> dict[str, Any]:
    """Sizes and costs of the run ``config`` describes, without training: ``n_params``,
    ``n_params_nonembed``, ``n_params_trainable``, ``flops_per_token`` (training), ``flops_per_token_forward``,
    ``steps``, ``tokens`` (what the run will see), ``flops`` (its total) and ``epochs`` (how many times it reads
    the training split of its most repeated domain; this opens the data, preparing its cache on first use)."""
    data = open_data(config)
    cfg = data.cfg
    counts = shape_counts(_model_config(cfg, data.vocab_size))
    tokens = cfg.steps * cfg.tokens_per_step
    flops = float(counts["flops_per_token"] * tokens)
    return {**counts, "steps": cfg.steps, "tokens": tokens, "flops": flops, "epochs": epochs(data, tokens)}


def epochs(data: RunData, tokens: int) -> float:
    """How many times ``tokens`` of training read the training split of the run's most repeated domain (its
    share of the tokens over the domain's size). Beyond 1 the run sees tokens again, and repeated tokens are
    worth less than fresh ones (Muennighoff et al. 2023; README.md measures it on tinylm)."""
    return max(tokens * data.mix[d.name] / len(d.train) for d in data.domains if data.mix[d.name] > 0)


def token_shares(domains: Any = None, tokenizer: str = "bytes") -> dict[str, float]:
    """Each domain's share of the available training tokens (the default mixture and RegMix's prior).
    ``domains`` as in the config: None for all built-ins, or names and ``{name, path}`` entries."""
    loaded = load_domains(parse_domains(domains), get_tokenizer(tokenizer))
    total = sum(len(d.train) for d in loaded)
    return {d.name: len(d.train) / total for d in loaded}


class _Evaluator:
    """Validation loss and top-1 next-token error per domain on fixed windows (the same for every step and
    every trial)."""

    def __init__(self, domains, cfg: TinyLMConfig, device: torch.device):
        self.windows = {}
        self.batch_size = max(cfg.batch_size, 64)
        for d in domains:
            win = torch.from_numpy(np.ascontiguousarray(eval_windows(d.valid, cfg.ctx, cfg.eval_tokens)))
            self.windows[d.name] = win.to(device=device, dtype=torch.long)

    @torch.inference_mode()
    def __call__(self, model: GPT, autocast) -> tuple[dict[str, float], dict[str, float]]:
        """Per domain: the mean loss, and the share of tokens whose most likely prediction is wrong."""
        # keep the logits of one chunk under 2**26 floats whatever the vocabulary
        chunk = max(1, min(self.batch_size, (1 << 26) // (model.cfg.ctx * model.cfg.vocab_size)))
        loss, error = {}, {}
        for name, windows in self.windows.items():
            total = torch.zeros((), dtype=torch.float64, device=windows.device)
            wrong = torch.zeros((), dtype=torch.int64, device=windows.device)
            for part in windows.split(chunk):
                with autocast:
                    logits = model.logits(part[:, :-1])
                target = part[:, 1:]
                total += F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="sum")
                wrong += (logits.argmax(dim=-1) != target).sum()
            loss[name] = total.item() / windows[:, 1:].numel()
            error[name] = wrong.item() / windows[:, 1:].numel()
        return loss, error


class Trainer:
    """Model, optimiser, schedule and mixture sampler of one run; ``step()`` takes one optimiser step.
    (The benchmark times this same object, so its numbers are the workload's numbers.)"""

    def __init__(self, data: RunData, device: torch.device):
        cfg = data.cfg
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed)
        self.model = GPT(_model_config(cfg, data.vocab_size)).to(device)
        self.counts = param_counts(self.model)
        self.flops_per_token = flops_per_token(self.model)["flops_per_token"]
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.params = list(self.model.parameters())
        self.lr_at = lr_schedule(cfg, cfg.steps)
        self.sampler = MixtureSampler([d.train for d in data.domains],
                                      [data.mix[d.name] for d in data.domains], cfg.batch_size, cfg.ctx,
                                      cfg.seed, names=[d.name for d in data.domains])
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
        compiled = cfg.compile is True or (cfg.compile == "auto" and cuda)
        self.step_model = torch.compile(self.model) if compiled else self.model
        self.loss_sum = torch.zeros((), device=device)
        self.loss_n = self.n_steps = 0
        self.lr = 0.0

    def step(self) -> None:
        """One optimiser step on the next mixture batch."""
        self.lr = self.lr_at(self.n_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        batch = torch.from_numpy(self.sampler.next_batch())
        batch = batch.to(self.device, dtype=torch.long, non_blocking=True)
        with self.autocast:
            loss = self.step_model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_sum += loss.detach()
        self.loss_n += 1
        self.n_steps += 1

    def take_train_loss(self) -> float:
        """Mean training loss since the last call."""
        value = self.loss_sum.item() / max(1, self.loss_n)
        self.loss_sum.zero_()
        self.loss_n = 0
        return value


def open_data(config: dict[str, Any]) -> RunData:
    """Resolve the config and open its domains (preparing the cache on first use); check the mixture, the
    target and that every split holds a window of ``ctx + 1`` tokens."""
    cfg = resolve(config)
    tok = get_tokenizer(cfg.tokenizer)
    domains = load_domains(parse_domains(cfg.domains), tok)
    names = [d.name for d in domains]
    available = {d.name: len(d.train) for d in domains}
    mix = resolve_weights("mix", cfg.mix if cfg.mix is not None else available, names)
    uniform = dict.fromkeys(names, 1.0)
    target = resolve_weights("target", cfg.target if cfg.target is not None else uniform, names)
    for d in domains:
        for split, tokens in (("train", d.train), ("validation", d.valid)):
            if len(tokens) < cfg.ctx + 1 and (split == "validation" or mix[d.name] > 0):
                raise UserError(f"tinylm domain {d.name!r}: {split} split has {len(tokens)} tokens, "
                                f"fewer than ctx + 1 = {cfg.ctx + 1}; use a smaller ctx or more text")
    return RunData(cfg, tok.vocab_size, domains, mix, target)


def prepare(config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Check a config and prepare its data before any trial starts (a missing path, an empty domain or a
    bad mixture raises a UserError here); returns per domain ``train_tokens``, ``valid_tokens``, ``mix``
    and ``target`` weights."""
    data = open_data(config)
    return {d.name: {"train_tokens": len(d.train), "valid_tokens": len(d.valid), "mix": data.mix[d.name],
                     "target": data.target[d.name]} for d in data.domains}


def open_run(config: dict[str, Any]) -> tuple[RunData, Trainer]:
    """The run's data and its trainer (threads set, device picked)."""
    data = open_data(config)
    torch.set_num_threads(data.cfg.threads)
    return data, Trainer(data, pick_device(data.cfg.device))


def train(config: dict[str, Any], report: Callable[..., None]) -> dict[str, float]:
    """Train one GPT on a mixture of domains; report ``step``, ``tokens``, ``flops``, ``loss``, ``lr``,
    ``loss.valid.<domain>``, ``loss.valid.target``, ``error.valid.<domain>``, ``error.valid.target`` (top-1
    next-token error), ``share.<domain>`` every ``eval_every`` steps and at the end (the first report also
    carries ``n_params``, ``n_params_nonembed``, ``n_params_trainable``)."""
    data, trainer = open_run(config)
    cfg, target = data.cfg, data.target
    evaluate = _Evaluator(data.domains, cfg, trainer.device)
    names = [d.name for d in data.domains]
    metrics: dict[str, float] = {}
    first = True
    for step in range(1, cfg.steps + 1):
        trainer.step()
        if step % cfg.eval_every and step != cfg.steps:
            continue
        train_loss = trainer.take_train_loss()
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"tinylm: training loss is {train_loss} at step {step}: the run "
                                     f"diverged (lr {cfg.lr:g} may be too high)")
        valid, error = evaluate(trainer.model, trainer.autocast)
        metrics = {"loss": train_loss, "lr": trainer.lr, **{f"loss.valid.{n}": v for n, v in valid.items()},
                   "loss.valid.target": sum(target[n] * valid[n] for n in names),
                   **{f"error.valid.{n}": v for n, v in error.items()},
                   "error.valid.target": sum(target[n] * error[n] for n in names),
                   **{f"share.{n}": float(s) for n, s in zip(names, trainer.sampler.shares(), strict=True)}}
        tokens = step * cfg.tokens_per_step
        report(step=step, tokens=tokens, flops=float(trainer.flops_per_token * tokens),
               **metrics, **(trainer.counts if first else {}))
        first = False
    return {**metrics, **trainer.counts}
