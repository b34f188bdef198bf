"""``sweeper decide`` on an external table and on a study folder written with the real ResultStore."""

from __future__ import annotations

import argparse
import json

import polars as pl
import pytest
import yaml

from sweeper.commands import decide as cmd
from sweeper.errors import UserError
from sweeper.store import ResultStore
from tests.test_decide import seeds_table


def invoke(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cmd.configure(parser)
    return cmd.run(parser.parse_args(argv))


def test_table_to_json_with_the_hand_computed_accuracies(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    table = tmp_path / "runs.csv"
    seeds_table().write_csv(table)
    out = tmp_path / "out.json"
    code = invoke(["--from", str(table), "--recipe", "data", "--size", "size", "--seed", "seed", "--compute",
                   "flops", "--metric", "loss", "--checkpoints", "0.5,1", "--json", str(out), "-o",
                   str(tmp_path / "d")])
    assert code == 0
    data = json.loads(out.read_text())
    got = {(p["predictor"], p["size"], p["seeds"], p["checkpoint"]): (p["compute"], p["decision_accuracy"])
           for p in data["predictors"]}
    assert got[("single-scale", "small", 1, 1.0)] == (pytest.approx(3.0), pytest.approx(0.75))
    assert got[("single-scale", "small", 2, 1.0)] == (pytest.approx(6.0), 1.0)
    assert got[("single-scale", "small", 1, 0.5)] == (pytest.approx(1.5), pytest.approx(2 / 3))
    assert data["skipped"][0]["reason"].startswith("1 proxy sizes")
    assert (tmp_path / "d" / "decisions.csv").is_file() and (tmp_path / "d" / "frontier.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "loss (judged): 3 pairs of 3 recipes" in printed
    assert any(line.split()[:4] == ["single-scale", "small", "2", "final"] and "100.0%" in line
               for line in printed.splitlines())


def test_parquet_table_and_json_on_stdout(tmp_path, capsys):
    table = tmp_path / "runs.parquet"
    seeds_table().write_parquet(table)
    code = invoke(["--from", str(table), "--recipe", "data", "--size", "size", "--seed", "seed", "--compute",
                   "flops", "--metric", "loss", "--target-size", "big", "--json", "-", "-o", str(tmp_path / "d")])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target_size"] == "big" and [t["recipe"] for t in data["target"]] == ["r1", "r2", "r3"]


def test_an_accuracy_judged_with_a_loss_proxy(tmp_path):
    table = tmp_path / "runs.csv"
    seeds_table().with_columns(acc=1.0 / pl.col("loss")).write_csv(table)
    out = tmp_path / "o.json"
    assert invoke(["--from", str(table), "--recipe", "data", "--size", "size", "--seed", "seed", "--compute",
                   "flops", "--metric", "acc", "--metric", "loss", "--maximize", "acc", "--checkpoints", "1",
                   "--predictors", "single-scale", "--json", str(out), "-o", str(tmp_path / "d")]) == 0
    data = json.loads(out.read_text())
    assert data["higher_is_better"] == {"acc": True, "loss": False}
    assert [t["recipe"] for t in data["target"]] == ["r1", "r2", "r3"]  # the highest accuracy first
    got = {(p["metric"], p["seeds"]): p["decision_accuracy"] for p in data["predictors"]}
    assert got == {("acc", 1): pytest.approx(0.75), ("acc", 2): 1.0, ("loss", 1): pytest.approx(0.75),
                   ("loss", 2): 1.0}


def write_study(path, decide: dict | None = None) -> None:
    """A finished DataDecide study: recipes a, b, c at sizes s1, s2 (proxies) and big (target), seeds 0 and 1,
    each trial with a report at half its compute, its final report and its summary row, written with the
    real ResultStore. At the target a < b < c on loss.valid.target; loss.valid.target at the proxies ranks
    them the same way, loss.valid.code the reverse way."""
    store = ResultStore(path, "dd")
    flops = {"s1": 1e9, "s2": 4e9, "big": 1.6e10}
    base = {"s1": 3.0, "s2": 2.5, "big": 2.0}
    offset = {"a": 0.0, "b": 0.1, "c": 0.2}
    n = 0
    for recipe in "abc":
        for size in flops:
            for seed in (0, 1):
                n += 1
                trial = f"t{n:03d}"
                common = {"trial_id": trial, "attempt": 0, "seed": seed, "node": "local",
                          "cfg.recipe": recipe, "cfg.size": size, "cfg.d_model": 16}
                target = base[size] + offset[recipe] + 0.01 * seed
                code = base[size] + 0.3 - offset[recipe]
                for i, frac in enumerate((0.5, 1.0)):
                    store.append({**common, "row_kind": "report", "status": "running", "report_index": i,
                                  "step": 10 * (i + 1), "tokens": 1000 * (i + 1), "flops": flops[size] * frac,
                                  "m.loss.valid.target": target + (1 - frac), "m.loss.valid.code": code + (1 - frac),
                                  "m.loss": target - 0.5})
                store.append({**common, "row_kind": "summary", "status": "done", "report_index": 2, "step": 20,
                              "tokens": 2000, "flops": flops[size], "m.loss.valid.target": target,
                              "m.loss.valid.code": code, "m.loss": target - 0.5})
    # a failed trial is ignored
    store.append({"trial_id": "t999", "attempt": 0, "row_kind": "summary", "status": "error", "seed": 0,
                  "cfg.recipe": "a", "cfg.size": "big", "flops": 1.0, "error": "RuntimeError: boom"})
    store.flush()
    study = {"name": "dd", "workload": "workloads.tinylm:train"}
    if decide is not None:
        study["decide"] = decide
    (path / "study.yaml").write_text(yaml.safe_dump(study))


def test_study_folder_with_a_decide_block(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    results = tmp_path / "results" / "dd"
    write_study(results, {"target_size": "big", "metrics": ["loss.valid.target", "loss.valid.code"]})
    assert invoke([str(results)]) == 0
    out = results / "decide"
    data = json.loads((out / "decide.json").read_text())
    assert data["metric"] == "m.loss.valid.target" and data["metrics"] == ["m.loss.valid.target", "m.loss.valid.code"]
    assert data["recipes"] == ["a", "b", "c"] and data["proxy_sizes"] == ["s1", "s2"]
    base = [p for p in data["predictors"] if p["predictor"] == "single-scale" and p["seeds"] == 2
            and p["checkpoint"] == 1.0]
    by_metric = {(p["metric"], p["size"]): p["decision_accuracy"] for p in base}
    assert by_metric == {("m.loss.valid.target", "s1"): 1.0, ("m.loss.valid.target", "s2"): 1.0,
                         ("m.loss.valid.code", "s1"): 0.0, ("m.loss.valid.code", "s2"): 0.0}
    # compute from Parquet: 3 recipes x 2 seeds x 1e9 FLOPs at s1; one target run per recipe is 1.6e10
    s1 = next(p for p in base if p["metric"] == "m.loss.valid.target" and p["size"] == "s1")
    assert s1["compute"] == pytest.approx(6e9) and s1["compute_vs_target"] == pytest.approx(6e9 / 4.8e10)
    # the half-way reports are checkpoints
    assert any(p["checkpoint"] == 0.5 and p["fraction"] == pytest.approx(0.5) for p in data["predictors"])
    assert data["best_proxy_metric"] == "m.loss.valid.target"
    assert (out / "frontier.png").is_file() and pl.read_csv(out / "decisions.csv").height == len(data["predictors"])
    printed = capsys.readouterr().out
    assert "best proxy metric: m.loss.valid.target" in printed


def test_study_folder_flags_override_the_block(tmp_path):
    results = tmp_path / "dd"
    write_study(results)  # no decide: block -> m.loss.valid.target, largest size
    out = tmp_path / "o.json"
    assert invoke([str(results), "--metric", "m.loss", "--target-size", "s2", "--json", str(out),
                   "--predictors", "single-scale"]) == 0
    data = json.loads(out.read_text())
    assert data["metric"] == "m.loss" and data["target_size"] == "s2" and data["proxy_sizes"] == ["s1"]
    assert any("larger than the target" in n for n in data["notes"])


@pytest.mark.parametrize(("argv", "message"), [
    ([], "give either a study results folder DIR or --from TABLE"),
    (["--from", "x.csv"], "--from: also name --recipe, --size, --metric"),
    (["DIR", "--recipe", "r"], "--recipe: only with --from TABLE"),
    (["--from", "TABLE", "--recipe", "data", "--size", "size", "--metric", "loss", "--checkpoints", "half"],
     "--checkpoints: 'half'"),
    (["--from", "TABLE", "--recipe", "data", "--size", "size", "--metric", "loss", "--phase", "search"],
     "--phase: only with a study folder"),
    (["--from", "missing.csv", "--recipe", "data", "--size", "size", "--metric", "loss"], "no such file"),
    (["--from", "TABLE", "--recipe", "data", "--size", "size", "--metric", "loss"], "sizes in 'size' are not numeric"),
    (["DIR", "--predictors", "single-scale,oracle"], "--predictors: oracle"),
    (["DIR", "--higher-is-better", "--maximize", "m.acc"], "not both"),
    (["EMPTY"], "not a study results folder"),
])
def test_bad_input_is_a_user_error(tmp_path, argv, message):
    table = tmp_path / "runs.csv"
    seeds_table().write_csv(table)
    (tmp_path / "empty").mkdir()
    argv = [{"TABLE": str(table), "DIR": str(tmp_path), "EMPTY": str(tmp_path / "empty")}.get(a, a) for a in argv]
    with pytest.raises(UserError, match=message):
        invoke(argv)


def test_a_study_without_recipe_and_size_is_a_user_error(tmp_path):
    store = ResultStore(tmp_path, "plain")
    store.append({"trial_id": "t1", "attempt": 0, "row_kind": "summary", "status": "done", "seed": 0,
                  "flops": 1.0, "m.loss.valid.target": 2.0, "cfg.lr": 0.1})
    store.flush()
    with pytest.raises(UserError, match="cfg.recipe: no such column"):
        invoke([str(tmp_path)])


def test_a_bad_decide_block_is_a_user_error(tmp_path):
    write_study(tmp_path, {"metrics": "loss.valid.target"})
    with pytest.raises(UserError, match="study.yaml: decide.metrics: input should be a valid list"):
        invoke([str(tmp_path)])
