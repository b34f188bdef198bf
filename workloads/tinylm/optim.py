"""AdamW on PyTorch's fused kernel, without ``torch.optim``'s wrapper.

``torch.optim.AdamW(fused=True)`` runs ``torch._fused_adamw_``: one kernel call updates every tensor of a
group. Constructing any ``torch.optim`` optimizer also imports ``torch._dynamo`` (its methods are wrapped in
``torch._disable_dynamo``), which takes 1.5-2 s here: most of a small proxy trial's start-up. This class
calls the same kernel the same way (the tests check the updates are bit-identical), and the workload falls
back to ``torch.optim.AdamW`` where the kernel is missing or the device has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def fused_kernel_available(device: torch.device) -> bool:
    """Whether ``torch._fused_adamw_`` exists and supports ``device``."""
    return hasattr(torch, "_fused_adamw_") and device.type in ("cpu", "cuda")


class FusedAdamW:
    """Decoupled-weight-decay Adam over parameter groups ``{"params", "weight_decay"[, "lr"]}``; the same
    interface the training loop uses from ``torch.optim``: ``param_groups``, ``step()``, ``zero_grad()``."""

    def __init__(self, groups: Iterable[dict[str, Any]], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.param_groups = [{"lr": lr, "weight_decay": 0.0, **g, "params": list(g["params"])}
                             for g in groups]
        self.betas, self.eps = betas, eps
        self.state = {}
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = (torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros_like(p, memory_format=torch.preserve_format),
                                 torch.zeros((), dtype=torch.float32, device=p.device))

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            exp_avgs, exp_avg_sqs, steps = ([s[i] for s in states] for i in range(3))
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
                                lr=float(group["lr"]), beta1=self.betas[0], beta2=self.betas[1],
                                weight_decay=float(group["weight_decay"]), eps=self.eps, amsgrad=False,
                                maximize=False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()
