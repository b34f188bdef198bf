"""The tinylm workload: real training on built-in and user domains, reports, mixtures, determinism, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweeper.errors import UserError
from workloads.tinylm import available_domains, describe, prepare, token_shares, train

TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "ctx": 64, "batch_size": 16, "lr": 1e-2,
        "warmup": 0.05, "eval_tokens": 2048}


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sweeper-cache")


@pytest.fixture(autouse=True)
def _cache(cache_root, monkeypatch):
    monkeypatch.setenv("SWEEPER_CACHE", str(cache_root))


def run(**config):
    rows: list[dict] = []
    final = train({**TINY, **config}, lambda **kw: rows.append(kw))
    return rows, final


def prose_lines(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["the", "model", "reads", "a", "long", "river", "of", "text", "and", "learns", "which", "byte",
             "comes", "next", "slowly", "every", "step", "brings", "it", "closer", "to", "data"]
    return [" ".join(rng.choice(words, size=12)) + "." for _ in range(n)]


def test_loss_falls_on_every_builtin_domain():
    names = available_domains()
    assert len(names) >= 5
    rows, final = run(tokens=200 * 16 * 64, eval_every=50, mix=dict.fromkeys(names, 1.0), seed=1)
    assert [r["step"] for r in rows] == [50, 100, 150, 200]
    uniform = math.log(256)
    for name in names:
        curve = [r[f"loss.valid.{name}"] for r in rows]
        assert curve[-1] < curve[0] < uniform, (name, curve)
        assert curve[-1] < 0.75 * uniform, (name, curve)
    assert final["loss.valid.target"] == pytest.approx(np.mean([final[f"loss.valid.{n}"] for n in names]))
    # top-1 next-token error: a share of tokens, falling as the model learns, averaged like the loss
    for name in names:
        error = [r[f"error.valid.{name}"] for r in rows]
        assert 0.0 <= error[-1] < error[0] <= 1.0, (name, error)
    assert final["error.valid.target"] == pytest.approx(np.mean([final[f"error.valid.{n}"] for n in names]))


def test_reports_carry_counts_curves_and_cumulative_flops():
    rows, final = run(tokens=40 * 16 * 64, eval_every=10, domains=["arith", "records"], target="records")
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    info = describe({**TINY, "tokens": 40 * 16 * 64})
    for r in rows:
        assert r["tokens"] == r["step"] * 16 * 64
        assert r["flops"] == pytest.approx(info["flops_per_token"] * r["tokens"])
        assert {"loss", "lr", "loss.valid.arith", "loss.valid.records", "loss.valid.target",
                "error.valid.arith", "error.valid.records", "error.valid.target"} <= set(r)
        assert r["loss.valid.target"] == r["loss.valid.records"]
        assert r["error.valid.target"] == r["error.valid.records"]
    assert rows[0]["n_params"] == info["n_params"] and "n_params" not in rows[1]
    assert rows[0]["n_params_nonembed"] == info["n_params_nonembed"] < info["n_params"]
    assert rows[0]["n_params_trainable"] == info["n_params"]
    assert final["loss.valid.records"] == rows[-1]["loss.valid.records"]
    assert rows[-1]["flops"] == pytest.approx(info["flops"])


def test_weighted_target_is_the_weighted_average():
    rows, _ = run(tokens=5 * 16 * 64, eval_every=5, domains=["arith", "manual"],
                  target={"arith": 1, "manual": 3})
    r = rows[-1]
    expected = 0.25 * r["loss.valid.arith"] + 0.75 * r["loss.valid.manual"]
    assert r["loss.valid.target"] == pytest.approx(expected)


def test_mixture_shares_are_honoured():
    mix = {"code": 0.5, "arith": 0.3, "records": 0.2, "manual": 0.0}
    rows, _ = run(tokens=40 * 16 * 64, eval_every=10, domains=list(mix), mix=mix)
    for r in rows:
        n_rows = r["step"] * 16
        for name, w in mix.items():
            assert abs(r[f"share.{name}"] - w) * n_rows < 1.0, (name, r[f"share.{name}"], w)
    assert rows[-1]["share.manual"] == 0.0
    assert "loss.valid.manual" in rows[-1]


def test_default_mix_follows_available_tokens():
    shares = token_shares(["arith", "records", "manual"])
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["manual"] < shares["arith"]
    rows, _ = run(tokens=30 * 16 * 64, eval_every=30, domains=["arith", "records", "manual"])
    for name, s in shares.items():
        assert rows[-1][f"share.{name}"] == pytest.approx(s, abs=1 / (30 * 16))


def test_same_seed_same_losses_other_seed_other_losses():
    kw = {"tokens": 20 * 16 * 64, "eval_every": 5, "domains": ["code", "arith"], "seed": 7}
    a, _ = run(**kw)
    b, _ = run(**kw)
    c, _ = run(**{**kw, "seed": 8})
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["loss.valid.code"] for r in a] == [r["loss.valid.code"] for r in b]
    assert [r["loss"] for r in a] != [r["loss"] for r in c]


@pytest.mark.parametrize("schedule", ["constant", "cosine", "wsd"])
def test_schedules_train(schedule):
    rows, _ = run(tokens=20 * 16 * 64, eval_every=20, domains=["arith"], schedule=schedule, warmup=0.1)
    assert math.isfinite(rows[-1]["loss"]) and rows[-1]["lr"] > 0


def test_user_domains_txt_jsonl_parquet(tmp_path):
    lines = prose_lines(1500)
    (tmp_path / "a.txt").write_text("\n".join(lines[:500]))
    (tmp_path / "b.txt").write_text("\n".join(lines[500:700]))
    with (tmp_path / "c.jsonl").open("w") as fh:
        for line in lines[700:1100]:
            fh.write(json.dumps({"id": 1, "content": line}) + "\n")
    pq.write_table(pa.table({"body": lines[1100:], "n": list(range(400))}), tmp_path / "d.parquet")
    domains = [{"name": "txt", "path": str(tmp_path / "*.txt")},
               {"name": "json", "path": str(tmp_path / "c.jsonl"), "field": "content"},
               {"name": "pq", "path": [str(tmp_path / "d.parquet")], "field": "body"}, "arith"]
    shares = token_shares(domains)
    assert set(shares) == {"txt", "json", "pq", "arith"}
    assert shares["txt"] == pytest.approx(shares["json"] * 700 / 400, rel=0.05)
    rows, _ = run(tokens=60 * 16 * 64, eval_every=30, domains=domains, mix={"txt": 1, "json": 1, "pq": 1})
    for name in ("txt", "json", "pq", "arith"):
        assert rows[-1][f"loss.valid.{name}"] < rows[0][f"loss.valid.{name}"] or name == "arith"
    assert rows[-1]["share.arith"] == 0.0


def test_user_file_change_invalidates_the_cache(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n".join(prose_lines(300, seed=1)))
    before = token_shares([{"name": "t", "path": str(path)}, "arith"])["t"]
    path.write_text("\n".join(prose_lines(600, seed=1)))
    assert token_shares([{"name": "t", "path": str(path)}, "arith"])["t"] > before


@pytest.mark.parametrize(("config", "message"), [
    ({"domains": ["code", "klingon"]}, "unknown domain 'klingon'"),
    ({"domains": [{"name": "x", "path": "/nonexistent/*.txt"}]}, "does not exist or matches no file"),
    ({"domains": [{"name": "x", "path": "/nonexistent.txt"}]}, "/nonexistent.txt"),
    ({"domains": [{"name": "x.y", "path": "/tmp"}]}, "name"),
    ({"mix": {"code": 1, "prose": 1}}, "mix: unknown domain 'prose'"),
    ({"mix": {"code": -1}}, "mix: code"),
    ({"target": "nope"}, "target: unknown domain"),
    ({"learning_rate": 1e-3}, "learning_rate: unknown key"),
    ({"d_model": 30, "n_heads": 4}, "n_heads"),
    ({"schedule": "linear"}, "schedule"),
    ({"tokens": 0}, "tokens"),
    ({"device": "tpu"}, "device"),
])
def test_bad_config_is_a_clear_user_error(config, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("*", r"\*")):
        run(**{"tokens": 16 * 64, **config})


def test_prepare_checks_a_study_before_any_trial(tmp_path):
    info = prepare({"domains": ["arith", "manual"], "mix": {"arith": 2}})
    assert info["arith"]["mix"] == 1.0 and info["manual"]["mix"] == 0.0
    assert info["manual"]["valid_tokens"] > 16_384 and info["arith"]["target"] == 0.5
    (tmp_path / "small.txt").write_text("\n".join(prose_lines(150)))
    with pytest.raises(UserError, match="validation split has .* fewer than ctx"):
        prepare({"domains": [{"name": "s", "path": str(tmp_path / "small.txt")}], "ctx": 2048})


def test_empty_user_file_is_a_clear_user_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "empty.jsonl").write_text("\n")
    for name in ("empty.txt", "empty.jsonl"):
        with pytest.raises(UserError, match="no text found"):
            run(tokens=16 * 64, domains=[{"name": "e", "path": str(tmp_path / name)}])


def test_bad_user_rows_are_clear_user_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"other": 1}\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: .*'text'"):
        token_shares([{"name": "b", "path": str(tmp_path / "bad.jsonl")}])
    pq.write_table(pa.table({"x": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(UserError, match="no column 'text'"):
        token_shares([{"name": "b", "path": str(tmp_path / "bad.parquet")}])
    (tmp_path / "tiny.txt").write_text("short")
    with pytest.raises(UserError, match="too few"):
        token_shares([{"name": "t", "path": str(tmp_path / "tiny.txt")}])
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(UserError, match="expected a .txt"):
        token_shares([{"name": "c", "path": str(tmp_path / "x.csv")}])


def test_smallest_model_trains_and_large_one_is_described():
    rows, _ = run(d_model=24, n_layers=2, n_heads=2, tokens=4 * 16 * 64, eval_every=4, domains=["manual"])
    assert 15_000 < rows[0]["n_params"] < 25_000
    big = describe({"d_model": 768, "n_layers": 12, "n_heads": 12, "ctx": 1024, "tokens": 2e9})
    assert 80e6 < big["n_params"] < 100e6
    assert big["flops_per_token"] > 6 * big["n_params_nonembed"]


def test_describe_says_how_many_times_a_run_reads_its_most_repeated_domain():
    """Without a mix every domain weighs its share of the data, so all repeat alike; with one, the domain whose
    share of the tokens is largest against its size repeats most."""
    tokens = 20 * 16 * 64
    sizes = {name: info["train_tokens"] for name, info in prepare({**TINY, "tokens": tokens}).items()}
    plain = describe({**TINY, "tokens": tokens})
    assert plain["epochs"] == pytest.approx(plain["tokens"] / sum(sizes.values()))
    mixed = describe({**TINY, "tokens": tokens, "mix": {"code": 0.5, "manual": 0.5}})
    assert sizes["manual"] < sizes["code"]
    assert mixed["epochs"] == pytest.approx(0.5 * mixed["tokens"] / sizes["manual"])
    with pytest.raises(UserError, match="nope"):  # it opens the data, so a bad domain is named before training
        describe({**TINY, "domains": ["nope"]})


def test_a_bad_domain_is_refused_before_any_trial_starts(tmp_path, capsys):
    """Through `sweeper run`: the workload's prepare() runs before Ray starts."""
    import yaml

    from sweeper.cli import main

    study = {"name": "badtl", "workload": "workloads.tinylm:train",
             "params": {"domains": ["code", {"name": "mine", "path": str(tmp_path / "missing" / "*.txt")}]},
             "space": {"lr": {"type": "log", "low": 1e-4, "high": 1e-2}}, "budget": {"trials": 1}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path), "--results", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "mine" in err and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "rows").exists()  # no trial ran
