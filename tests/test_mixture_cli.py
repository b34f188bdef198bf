"""``sweeper fit mixture``: on a study's Parquet results, on external tables, and on the RegMix paper's data."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from sweeper.commands import fit_mixture
from sweeper.errors import UserError
from sweeper.laws.mixture import spearman
from sweeper.maths.simplex import sample_mixtures
from sweeper.regmix_fit import weight_columns

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REGMIX = SHARED / "regmix"
PNG = b"\x89PNG\r\n\x1a\n"
DOMAINS = ["web", "code", "math"]


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    fit_mixture.configure(parser)
    return fit_mixture.run(parser.parse_args([str(a) for a in argv]))


def loss(w: np.ndarray) -> np.ndarray:
    return 2.0 + 1.5 * (w[:, 0] - 0.5) ** 2 + 1.0 * (w[:, 1] - 0.3) ** 2 + 0.5 * w[:, 2] ** 2


def write_study(study_dir: Path, n: int = 40) -> np.ndarray:
    """A study's rows as the store writes them: report and summary rows, a retried and a failed trial."""
    w = sample_mixtures({"web": 0.5, "code": 0.3, "math": 0.2}, n, seed=0)
    y = loss(w)
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        base = {"study": "mixes", "phase": "search", "trial_id": f"t{i:03d}", "seed": 0, "node": "local",
                "time": now, "error": None, "cfg.lr": 1e-3,
                **{f"mix.{d}": float(w[i, j]) for j, d in enumerate(DOMAINS)}}
        for k, frac in enumerate((0.5, 1.0)):
            rows.append({**base, "row_kind": "report", "status": "running", "attempt": 0, "report_index": k,
                         "step": 100 * (k + 1), "tokens": 1000 * (k + 1), "flops": 1e9 * (k + 1),
                         "wall_s": float(k + 1), "cost": 1e9 * (k + 1), "m.loss.valid.target": y[i] + 1 - frac})
        rows.append({**base, "row_kind": "summary", "status": "done", "attempt": 0, "report_index": 2,
                     "step": 200, "tokens": 2000, "flops": 2e9, "wall_s": 2.0, "cost": 2e9,
                     "m.loss.valid.target": float(y[i])})
    stale = {**rows[-1], "trial_id": "t000", "status": "error", "attempt": -1, "error": "OOM",
             "m.loss.valid.target": None}  # an earlier, failed attempt of t000: superseded by attempt 0
    failed = {**rows[-1], "trial_id": "t999", "status": "error", "error": "boom", "m.loss.valid.target": None}
    validate = {**rows[-1], "trial_id": "v000", "phase": "validate", "m.loss.valid.target": 0.1}
    rows_dir = study_dir / "rows"
    rows_dir.mkdir(parents=True)
    frame = pl.DataFrame(rows + [stale, failed, validate], infer_schema_length=None)
    frame.write_parquet(rows_dir / "part-00000001-00000001.parquet")
    return w


def test_fit_on_a_study_writes_predictions_yaml_and_figures(tmp_path, capsys):
    study = tmp_path / "results" / "mixes"
    w = write_study(study)
    (study / "study.yaml").write_text(yaml.safe_dump(
        {"name": "mixes", "workload": "workloads.synthetic:train",
         "space": {"mix": {"type": "simplex", "domains": DOMAINS,
                                            "prior": {"web": 5, "code": 3, "math": 2}}}}))
    assert cli(study, "--samples", 5000, "--top-k", 32) == 0
    out = study / "mixture"
    printed = capsys.readouterr().out
    assert "40 mixtures x 3 domains -> m.loss.valid.target" in printed and "-> using" in printed

    preds = pl.read_csv(out / "mixture_predictions.csv")
    assert preds.height == 40  # done trials of the search phase only
    assert preds.columns == ["trial_id", "mix.web", "mix.code", "mix.math", "m.loss.valid.target",
                             "predicted_cv", "predicted"]
    fitted_weights = preds.select("mix.web", "mix.code", "mix.math").to_numpy()  # rows come ordered by mixture
    assert spearman(preds["predicted_cv"].to_numpy(), loss(fitted_weights)) > 0.8

    best = yaml.safe_load((out / "best_mixture.yaml").read_text())
    assert list(best["mix"]) == DOMAINS
    assert sum(best["mix"].values()) == pytest.approx(1.0)
    assert "# predicted m.loss.valid.target:" in (out / "best_mixture.yaml").read_text()
    found = np.array(list(best["mix"].values()))
    assert loss(found[None])[0] < np.quantile(loss(w), 0.1)

    for png in ("mixture_predicted_vs_measured.png", "mixture_weights.png"):
        assert (out / png).read_bytes()[:8] == PNG
    summary = json.loads((out / "mixture_fit.json").read_text())
    assert summary["model"] in summary["cv_spearman"]
    assert set(summary["baselines"]) == {"RegMix pick", "uniform", "prior", "best fitted mixture"}
    assert summary["pick"]["prior"] == pytest.approx({"web": 0.5, "code": 0.3, "math": 0.2})


def test_fit_on_external_tables_joined_and_scored(tmp_path, capsys):
    w = sample_mixtures([0.5, 0.3, 0.2], 80, seed=1)
    ids = np.arange(80)
    mixtures = pl.DataFrame({"id": ids, **{f"w_{d}": w[:, j] for j, d in enumerate(DOMAINS)}})
    losses = pl.DataFrame({"id": ids[::-1], "val/loss": loss(w)[::-1], "other": np.zeros(80)})
    mixtures[:60].write_csv(tmp_path / "mix.csv")
    losses.write_parquet(tmp_path / "loss.parquet")
    mixtures[60:].drop("id").write_parquet(tmp_path / "new.parquet")  # no target: prediction only

    out = tmp_path / "scored.csv"
    assert cli("--from", tmp_path / "mix.csv", tmp_path / "loss.parquet", "--weights", "w_*", "--target",
               "val/loss", "--score", tmp_path / "new.parquet", "-o", out, "--samples", 3000) == 0
    printed = capsys.readouterr().out
    assert "60 mixtures x 3 domains" in printed and "no val/loss to compare" in printed
    scored = pl.read_csv(out)
    assert scored.columns == ["w_web", "w_code", "w_math", "predicted"]
    assert spearman(scored["predicted"].to_numpy(), loss(w[60:])) > 0.8
    assert list(yaml.safe_load((tmp_path / "best_mixture.yaml").read_text())["mix"]) == DOMAINS
    fitted = pl.read_csv(tmp_path / "mixture_predictions.csv")
    assert fitted.height == 60 and {"id", "other", "predicted_cv", "predicted"} <= set(fitted.columns)


@pytest.mark.parametrize(("argv", "match"), [
    (["--from", "{t}"], "--weights"),
    (["{dir}", "--from", "{t}", "--weights", "w_*", "--target", "y"], "either"),
    ([], "either"),
    (["--from", "{t}", "--weights", "z_*", "--target", "y"], "z_\\*"),
    (["--from", "{t}", "--weights", "w_*", "--target", "nope"], "nope"),
    (["--from", "{t}", "{t2}", "--weights", "w_*", "--target", "y"], "share no column"),
    (["--from", "{missing}", "--weights", "w_*", "--target", "y"], "no such file"),
    (["--from", "{t}", "--weights", "w_*", "--target", "y", "--models", "lightgbm,gp"], "gp"),
    (["--from", "{t}", "--weights", "w_*", "--target", "y", "--prior", "w_a=1,zzz=2"], "zzz"),
    (["{dir}"], "not a study results folder"),
])
def test_bad_arguments_are_user_errors(tmp_path, argv, match):
    rng = np.random.default_rng(0)
    pl.DataFrame({"w_a": rng.random(20), "w_b": rng.random(20), "y": rng.random(20)}).write_csv(tmp_path / "t.csv")
    pl.DataFrame({"q": [1]}).write_csv(tmp_path / "t2.csv")
    paths = {"t": tmp_path / "t.csv", "t2": tmp_path / "t2.csv", "missing": tmp_path / "no.csv", "dir": tmp_path}
    with pytest.raises(UserError, match=match):
        cli(*[a.format(**paths) for a in argv], "-o", tmp_path / "out")


def test_weight_columns_take_domain_names_from_the_glob():
    names = ["index", "train_the_pile_arxiv", "train_the_pile_github", "loss"]
    assert weight_columns(names, "train_the_pile_*", "t") == (
        ["train_the_pile_arxiv", "train_the_pile_github"], ["arxiv", "github"])
    assert weight_columns(["mix.a", "mix.b", "m.loss"], "mix.*", "t")[1] == ["a", "b"]
    assert weight_columns(["a_w", "b_w"], "*_w", "t")[1] == ["a", "b"]


@pytest.mark.skipif(not REGMIX.is_dir(), reason="../shared/data/regmix not available")
def test_regmix_paper_heldout_rank_correlation_out_of_the_box(tmp_path, capsys):
    """The paper's 512 1M-parameter proxies -> its 256 held-out mixtures, Pile-CC validation loss.

    The paper's recipe (LightGBM, early-stopped on the held-out set itself) reaches Spearman 0.990;
    the default `sweeper fit mixture` must do at least as well without looking at the held-out losses.
    """
    target = "metric/the_pile_pile_cc_val_loss"
    out = tmp_path / "test_predictions.csv"
    assert cli("--from", REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv",
               "--weights", "train_the_pile_*", "--target", target,
               "--score", REGMIX / "test_mixture_1m.csv", REGMIX / "test_pile_loss_1m.csv", "-o", out) == 0
    scored = pl.read_csv(out)
    assert scored.height == 256
    rho = spearman(scored["predicted"].to_numpy(), scored[target].to_numpy())
    assert rho >= 0.990
    assert f"Spearman rho {rho:.4f}" in capsys.readouterr().out
    best = yaml.safe_load((tmp_path / "best_mixture.yaml").read_text())["mix"]
    assert len(best) == 17 and max(best, key=best.get) == "pile_cc"


def test_note_when_the_averaged_pick_is_predicted_worse_than_a_baseline(tmp_path, capsys):
    """Two good corners far apart: the best draws split between them and their mean lands in between, which
    the model itself predicts worse than the best measured mixture; the command says so instead of staying
    silent. On a smooth single-optimum law (the test above) the note does not appear."""
    w = sample_mixtures([1 / 3, 1 / 3, 1 / 3], 80, seed=2)
    corners = np.stack([((w - np.eye(3)[k]) ** 2).sum(axis=1) for k in (0, 2)])
    pl.DataFrame({**{f"w_{d}": w[:, j] for j, d in enumerate(DOMAINS)},
                  "y": 2.0 + corners.min(axis=0)}).write_csv(tmp_path / "t.csv")
    assert cli("--from", tmp_path / "t.csv", "--weights", "w_*", "--target", "y", "--models", "lightgbm",
               "--samples", 3000, "-o", tmp_path / "out") == 0
    printed = capsys.readouterr().out
    assert "better than the averaged pick itself" in printed and "best fitted mixture" in printed.split("note:")[1]

    w = sample_mixtures([0.5, 0.3, 0.2], 60, seed=1)
    pl.DataFrame({**{f"w_{d}": w[:, j] for j, d in enumerate(DOMAINS)}, "y": loss(w)}).write_csv(tmp_path / "s.csv")
    assert cli("--from", tmp_path / "s.csv", "--weights", "w_*", "--target", "y", "--samples", 3000,
               "-o", tmp_path / "out2") == 0
    assert "note:" not in capsys.readouterr().out
