"""tinylm pieces: FLOP and parameter counting, the mixture sampler, schedules, splits, the tokenizer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sweeper.errors import UserError
from workloads.tinylm.config import resolve
from workloads.tinylm.data import MixtureSampler, eval_windows, load_domain, parse_domains, split_stream
from workloads.tinylm.flops import flops_per_token, param_counts, shape_counts
from workloads.tinylm.model import GPT, GPTConfig
from workloads.tinylm.optim import FusedAdamW
from workloads.tinylm.tokenizer import ByteTokenizer, get_tokenizer
from workloads.tinylm.train import lr_schedule


@pytest.mark.parametrize(("d", "layers", "heads", "ctx", "vocab"),
                         [(16, 1, 1, 8, 256), (48, 3, 4, 32, 256), (64, 2, 2, 128, 1000)])
def test_counts_from_modules_shapes_and_flop_counter_agree(d, layers, heads, ctx, vocab):
    cfg = GPTConfig(vocab_size=vocab, ctx=ctx, d_model=d, n_layers=layers, n_heads=heads)
    model = GPT(cfg)
    from_model = {**param_counts(model), **flops_per_token(model)}
    assert from_model == shape_counts(cfg)
    assert from_model["n_params"] == sum(p.numel() for p in model.parameters())  # tied head counted once
    x = torch.randint(0, vocab, (2, ctx))
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):  # the CPU flash kernel has no FLOP formula; MATH runs bmm
        model(x, x).backward()
    assert counter.get_total_flops() == from_model["flops_per_token"] * x.numel()


def test_sampler_tracks_weights_within_one_row():
    arrays = [np.arange(1000, dtype=np.uint8) for _ in range(4)]
    w = [0.37, 0.0, 0.5, 0.13]
    s = MixtureSampler(arrays, w, batch_size=7, ctx=16, seed=0)
    for step in range(1, 200):
        batch = s.next_batch()
        assert batch.shape == (7, 17)
        assert np.all(np.abs(s.counts - np.asarray(w) * 7 * step) < 1.0)
    assert s.counts[1] == 0


def test_sampler_windows_are_contiguous_and_seeded():
    arrays = [np.arange(100_000, dtype=np.int64) % 251]
    a = MixtureSampler(arrays, [1.0], batch_size=4, ctx=8, seed=3).next_batch()
    b = MixtureSampler(arrays, [1.0], batch_size=4, ctx=8, seed=3).next_batch()
    np.testing.assert_array_equal(a, b)
    assert np.all((np.diff(a, axis=1) % 251) == 1)


def test_sampler_reads_each_domain_in_the_same_order_whatever_the_mixture():
    """Common random numbers: with one seed, two mixtures draw each domain's windows in the same order, so
    their difference in loss is the mixtures', not the luck of their draws."""
    names = ["code", "prose", "math"]
    arrays = [np.arange(50_000, dtype=np.int64) + 100_000 * i for i in range(3)]

    def drawn(weights: list[float], seed: int, steps: int = 30) -> list[np.ndarray]:
        s = MixtureSampler(arrays, weights, batch_size=8, ctx=4, seed=seed, names=names)
        starts = np.concatenate([s.next_batch()[:, 0] for _ in range(steps)])
        return [starts[(starts // 100_000) == i] for i in range(3)]  # each domain's windows, in drawn order

    a, b = drawn([0.6, 0.3, 0.1], seed=7), drawn([0.2, 0.2, 0.6], seed=7)
    for first, second in zip(a, b, strict=True):
        n = min(len(first), len(second))
        assert n > 0 and np.array_equal(first[:n], second[:n])
    other = drawn([0.6, 0.3, 0.1], seed=8)
    assert not np.array_equal(a[0][:20], other[0][:20])
    # keyed by the domain's name, not its position: listing the domains in another order changes nothing
    s = MixtureSampler(arrays[::-1], [0.1, 0.3, 0.6], batch_size=8, ctx=4, seed=7, names=names[::-1])
    starts = np.concatenate([s.next_batch()[:, 0] for _ in range(30)])
    assert np.array_equal(starts[(starts // 100_000) == 0], a[0])


def test_split_holds_out_spread_blocks_and_keeps_every_token():
    stream = np.arange(400_000, dtype=np.int64)
    train, valid = split_stream(stream)
    assert len(train) + len(valid) == len(stream)
    assert 0.04 < len(valid) / len(stream) < 0.06
    assert valid.min() > 0 and valid.max() > 0.9 * len(stream)  # blocks spread over the whole domain
    assert not np.intersect1d(train, valid).size
    w = eval_windows(valid, ctx=32, n_tokens=320)
    assert w.shape == (10, 33)


def test_schedules():
    cfg = resolve({"lr": 1.0, "warmup": 0.1, "min_lr_ratio": 0.1, "schedule": "cosine"})
    at = lr_schedule(cfg, 100)
    assert at(0) == pytest.approx(0.1) and at(9) == pytest.approx(1.0)
    assert at(10) == pytest.approx(1.0) and at(99) == pytest.approx(0.1, abs=1e-3)
    assert all(at(s) >= at(s + 1) for s in range(10, 99))
    wsd = lr_schedule(resolve({"lr": 1.0, "warmup": 0.1, "decay": 0.2, "schedule": "wsd"}), 100)
    assert [wsd(s) for s in (10, 50, 79)] == [1.0, 1.0, 1.0]
    assert wsd(80) < 1.0 and wsd(99) == pytest.approx(0.1)
    const = lr_schedule(resolve({"lr": 1.0, "warmup": 0.0, "schedule": "constant"}), 100)
    assert {const(s) for s in range(100)} == {1.0}


def test_tokenizer_is_pluggable():
    tok = get_tokenizer("bytes")
    assert isinstance(tok, ByteTokenizer) and tok.decode(tok.encode("héllo")) == "héllo"
    assert get_tokenizer("workloads.tinylm.tokenizer:ByteTokenizer").vocab_size == 256
    with pytest.raises(UserError, match="tokenizer"):
        get_tokenizer("nope")
    with pytest.raises(UserError, match="cannot import"):
        get_tokenizer("no.such.module:factory")


def test_fused_adamw_matches_torch_optim_bit_for_bit():
    torch.manual_seed(0)
    a = GPT(GPTConfig(vocab_size=256, ctx=16, d_model=32, n_layers=1, n_heads=2))
    b = GPT(a.cfg)
    b.load_state_dict(a.state_dict())

    def groups(m):
        return [{"params": [p for p in m.parameters() if p.dim() >= 2], "weight_decay": 0.1},
                {"params": [p for p in m.parameters() if p.dim() < 2], "weight_decay": 0.0}]

    ours = FusedAdamW(groups(a), lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ref = torch.optim.AdamW(groups(b), lr=1e-2, betas=(0.9, 0.95), eps=1e-8, fused=True)
    x = torch.randint(0, 256, (4, 17))
    for lr in (1e-2, 5e-3, 1e-3):
        for opt, m in ((ours, a), (ref, b)):
            for g in opt.param_groups:
                g["lr"] = lr
            m(x[:, :-1], x[:, 1:]).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_concurrent_preparation_leaves_whole_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPER_CACHE", str(tmp_path))
    spec = parse_domains(["records"])[0]
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: load_domain(spec, ByteTokenizer()), range(2))
    np.testing.assert_array_equal(a.train, b.train)
    assert a.meta == b.meta and a.meta["n_train"] == len(a.train)
    assert not list(tmp_path.rglob("*.tmp"))
