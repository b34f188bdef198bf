"""`sweeper fit law` and `sweeper predict law`: study folders and tables in, FIT.json and PNGs out."""

from __future__ import annotations

import argparse
import json

import numpy as np
import polars as pl
import pytest

from sweeper.commands import fit_law, predict_law
from sweeper.errors import UserError
from tests.test_laws_data import write_study
from tests.test_laws_power import TRUE, synthetic

PNG = b"\x89PNG\r\n\x1a\n"


def cli(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return module.run(parser.parse_args(argv))


def test_fit_a_study_then_predict(tmp_path, capsys):
    study = write_study(tmp_path / "study", sizes=(1e6, 4e6, 1.6e7, 6.4e7), budgets=(2e7, 8e7, 3.2e8, 1.28e9))
    out = tmp_path / "fit.json"
    assert cli(fit_law, [str(study), "--law", "chinchilla", "--loss", "m.loss", "--bootstrap", "30", "-o", str(out),
                         "--plot", str(tmp_path / "fit.png"), "--holdout-largest"]) == 0
    printed = capsys.readouterr().out
    assert "alpha" in printed and "holdout" in printed and "compute-optimal" in printed
    raw = json.loads(out.read_text())
    assert raw["law"] == "chinchilla" and raw["n_points"] == 16
    assert set(raw["params"]) == set(raw["intervals"]) == {"E", "A", "B", "alpha", "beta"}
    # Noise-free points of the synthetic law: the fit is the law, the backtest is exact.
    for name, truth in TRUE.items():
        assert raw["params"][name] == pytest.approx(truth, rel=1e-3)
    assert raw["holdout"]["mean_abs_rel_error"] < 1e-4
    for png in ("fit.png", "fit-isoflops.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG
    assert cli(predict_law, [str(out), "--n", "1e9", "--d", "2e10", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    truth = TRUE["E"] + TRUE["A"] / 1e9 ** TRUE["alpha"] + TRUE["B"] / 2e10 ** TRUE["beta"]
    assert pred["loss"]["value"] == pytest.approx(truth, rel=1e-3)
    lo, hi = pred["loss"]["interval"]
    assert lo <= pred["loss"]["value"] <= hi
    assert cli(predict_law, [str(out), "--c", "1e21"]) == 0
    assert "D*/N*" in capsys.readouterr().out


def test_fit_power_law_on_intermediate_checkpoints(tmp_path, capsys):
    study = write_study(tmp_path / "study", steps=10)
    out = tmp_path / "power.json"
    assert cli(fit_law, [str(study), "--law", "power", "--x", "tokens", "--loss", "m.loss", "--intermediate",
                         "--bootstrap", "20", "-o", str(out), "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["law"] == "power" and raw["x"] == "tokens" and raw["n_points"] == 9 * 10
    assert raw["data"]["intermediate"] is True
    assert cli(predict_law, [str(out), "--d", "1e9"]) == 0
    assert "bootstrap interval, power law" in capsys.readouterr().out


def test_fit_an_external_table(tmp_path, capsys):
    data = synthetic(seed=2)
    table = tmp_path / "runs.csv"
    runs = [r.rsplit("-", 1)[0] for r in data.run]  # the two seeds of a config as one run
    pl.DataFrame({"params": data.n, "flops": 6 * data.n * data.d, "loss": data.loss, "run": runs}).write_csv(table)
    out = tmp_path / "t.json"
    assert cli(fit_law, ["--from", str(table), "--n", "params", "--c", "flops", "--loss", "loss", "--run", "run",
                         "--bootstrap", "20", "-o", str(out)]) == 0
    raw = json.loads(out.read_text())
    assert raw["data"]["source"] == str(table) and raw["n_points"] == 60 and raw["n_runs"] == 30
    assert len(raw["bootstrap"]["samples"]) == 20


def test_user_errors(tmp_path):
    study = write_study(tmp_path / "study")
    with pytest.raises(UserError, match="one of them"):
        cli(fit_law, [str(study), "--from", "x.csv", "--loss", "m.loss"])
    with pytest.raises(UserError, match="no such column"):
        cli(fit_law, [str(study), "--loss", "m.nope"])
    with pytest.raises(UserError, match="--windows: only with --law auto"):
        cli(fit_law, [str(study), "--loss", "m.loss", "--law", "power", "--windows"])
    with pytest.raises(UserError, match="needs at least 6"):
        cli(fit_law, [str(study), "--loss", "m.loss", "--drop-highest", "5"])
    with pytest.raises(UserError, match="no such file"):
        cli(predict_law, [str(tmp_path / "missing.json"), "--n", "1e9", "--d", "1e10"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"law": "chinchilla", "params": {"E": 1.0}}))
    with pytest.raises(UserError, match="params: missing A, B, alpha, beta"):
        cli(predict_law, [str(bad), "--n", "1e9", "--d", "1e10"])


def test_nan_losses_are_reported_on_stderr(tmp_path, capsys):
    study = write_study(tmp_path / "study", sizes=(1e6, 4e6, 1.6e7, 6.4e7), nan_trials=(0,))
    assert cli(fit_law, [str(study), "--loss", "m.loss", "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "sweeper: warning:" in err and "dropped 1 of 12 points" in err


@pytest.mark.slow
def test_end_to_end_on_a_real_synthetic_study(tmp_path, ray_session, capsys):
    """Run the synthetic workload with the engine (grid over N and D), then fit its checkpoints."""
    from sweeper.store import read_trials
    from tests.helpers import run
    from workloads.synthetic import expected_loss

    outcome = run(tmp_path, params={"steps": 8, "noise": 0.01, "lr": 3e-3},
                  space={"n_params": {"type": "log", "low": 1e6, "high": 1e8, "points": 3},
                         "tokens": {"type": "log", "low": 1e8, "high": 1e10, "points": 3}},
                  search={"algo": "grid", "metric": "loss", "mode": "min"}, budget={"trials": 9, "concurrent": 2})
    out = tmp_path / "fit.json"
    assert cli(fit_law, [str(outcome.results_dir), "--loss", "m.loss", "--intermediate", "--bootstrap", "20",
                         "-o", str(out)]) == 0
    raw = json.loads(out.read_text())
    done = read_trials(outcome.results_dir).filter(pl.col("status") == "done").height
    assert done >= 6 and raw["n_runs"] == done and raw["n_points"] == 8 * done  # every checkpoint >= 10%
    capsys.readouterr()
    # lr is fixed at lr*(1e8) while lr*(N) moves with N, so smaller models carry a small LR penalty that the
    # law absorbs; at N = 1e8 the prediction is still close to the true loss.
    assert cli(predict_law, [str(out), "--n", "1e8", "--d", "1e10", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert pred["loss"]["value"] == pytest.approx(expected_loss(1e8, 1e10, 3e-3), rel=0.03)


def test_fit_law_windows_leave_out_the_smallest_sizes_when_backtests_say_so(tmp_path, capsys):
    from tests.test_laws_select import bent_at_small_sizes, ladder

    data = ladder(bent_at_small_sizes, sizes=tuple(np.geomspace(1e6, 1.28e8, 8)), multipliers=(10, 40))
    table = tmp_path / "runs.csv"
    pl.DataFrame({"params": data.n, "tokens": data.d, "loss": data.loss}).write_csv(table)
    out = tmp_path / "w.json"
    assert cli(fit_law, ["--from", str(table), "--n", "params", "--d", "tokens", "--loss", "loss", "--windows",
                         "--bootstrap", "20", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "w/o smallest 25%" in printed and "fit window:" in printed
    raw = json.loads(out.read_text())
    window = raw["fit"]["window"]
    assert window["by"] == "n" and raw["n_points"] == 16 - window["points_dropped"]
    assert "w/o smallest" in raw["fit"]["auto"]["chosen"]
