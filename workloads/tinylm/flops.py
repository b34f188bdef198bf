"""Parameter counts (total, non-embedding, trainable) and FLOPs per token, from a model or from its shape.

FLOPs count the matrix multiplications the model performs, from the actual shapes: every ``nn.Linear``
(2 * in * out per token), attention scores ``q @ k^T`` and the weighted sum ``softmax @ v`` over the full
``ctx x ctx`` score matrix (4 * ctx * d_model per token per layer, the convention of Kaplan et al. 2020 and
Hoffmann et al. 2022: the causal mask is not subtracted) and the tied output head (2 * d_model * vocab).
Embedding lookups, norms, activations and the softmax are not matmuls and are left out. Training costs
three forward passes (the backward pass computes gradients for inputs and weights: 2x forward), which is
what ``torch.utils.flop_counter.FlopCounterMode`` measures on this model (the tests check it).

Non-embedding parameters leave out the token and position embeddings (Kaplan et al.); the tied head
shares the token embedding's matrix and is counted once.
"""

from __future__ import annotations

from torch import nn

from .model import GPT, GPTConfig, SelfAttention


def param_counts(model: GPT) -> dict[str, int]:
    """``n_params`` (unique parameters), ``n_params_nonembed`` and ``n_params_trainable`` of a model."""
    params = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in params)
    embed = model.wte.weight.numel() + model.wpe.weight.numel()
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"n_params": total, "n_params_nonembed": total - embed, "n_params_trainable": trainable}


def forward_flops_per_token(model: GPT) -> int:
    """Matmul FLOPs of one forward pass per token, walking the model's modules."""
    ctx = model.cfg.ctx
    flops = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            flops += 2 * module.in_features * module.out_features
        elif isinstance(module, SelfAttention):
            flops += 2 * 2 * ctx * module.proj.in_features
    vocab, d_model = model.wte.weight.shape
    return flops + 2 * d_model * vocab


def flops_per_token(model: GPT) -> dict[str, int]:
    """``flops_per_token`` (training: forward + backward) and ``flops_per_token_forward``."""
    fwd = forward_flops_per_token(model)
    return {"flops_per_token": 3 * fwd, "flops_per_token_forward": fwd}


def shape_counts(cfg: GPTConfig) -> dict[str, int]:
    """The same numbers from the shape alone (no model built; instant even at 100M parameters)."""
    d, f = cfg.d_model, cfg.mlp_ratio * cfg.d_model
    per_layer_params = 3 * d * d + d * d + 2 * d * f + 2 * d  # qkv, proj, mlp, two LayerNorm weights
    nonembed = cfg.n_layers * per_layer_params + d  # + final LayerNorm
    total = nonembed + cfg.vocab_size * d + cfg.ctx * d
    per_layer_flops = 2 * (4 * d * d + 2 * d * f) + 4 * cfg.ctx * d
    fwd = cfg.n_layers * per_layer_flops + 2 * d * cfg.vocab_size
    return {"n_params": total, "n_params_nonembed": nonembed, "n_params_trainable": total,
            "flops_per_token": 3 * fwd, "flops_per_token_forward": fwd}
