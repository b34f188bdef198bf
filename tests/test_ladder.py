"""A model ladder (``laws:`` in a study): the law is fitted and its predictions written before the larger
validation runs train; they are then compared. Real Ray Tune runs of the synthetic workload, whose law is known."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from sweeper.engine import run_study
from sweeper.errors import UserError
from sweeper.spec import parse_study
from tests.helpers import study_data
from workloads.synthetic import DOWNSTREAM, expected_error, expected_loss, optimal_lr

SIZES = {"xs": 1e6, "s": 4e6, "m": 1.6e7, "l": 6.4e7}


def ladder_study(sizes=SIZES, validate=None, **laws):
    presets = {name: {"n_params": n, "lr": optimal_lr(n)} for name, n in sizes.items()}
    big = 2.56e8
    return parse_study(study_data(
        name="ladder", params={"steps": 5, "noise": 0.0},
        space={"size": {"type": "choice", "values": list(sizes), "presets": presets},
               "tokens": {"type": "choice", "values": [2e7, 8e7, 3.2e8]}},
        search={"algo": "grid", "metric": "loss", "mode": "min"}, budget={"concurrent": 2},
        laws={"law": "chinchilla", "bootstrap": 20, **laws,
              "validate": validate or {"runs": {"big": {"n_params": big, "lr": optimal_lr(big), "tokens": 2e9}}}}))


@pytest.mark.usefixtures("ray_session")
def test_the_ladder_predicts_its_validation_run_before_training_it(tmp_path):
    out = io.StringIO()
    outcome = run_study(ladder_study(), tmp_path / "r", stream=out, rich=False)
    folder = outcome.results_dir / "laws"
    predictions = json.loads((folder / "predictions.json").read_text())
    assert predictions[0]["run"] == "big" and predictions[0]["n_params"] == 2.56e8
    table = pl.read_csv(folder / "validation.csv")
    assert table.columns[:9] == ["run", "n_params", "tokens", "flops", "predicted", "lower", "upper", "measured",
                                 "seeds"] and "rel_error" in table.columns
    row = table.row(0, named=True)
    truth = expected_loss(2.56e8, 2e9, optimal_lr(2.56e8))
    assert row["measured"] == pytest.approx(truth, rel=1e-6)  # the validation run really trained
    assert abs(row["rel_error"]) < 0.01  # noise-free points of the synthetic law: the law extrapolates
    assert row["lower"] <= row["predicted"] <= row["upper"]
    assert row["epochs"] is None and "epochs" not in out.getvalue()  # the synthetic workload does not say
    assert "ladder validation" in out.getvalue() and "inside the interval" in out.getvalue()
    assert outcome.ladder["law"] == "chinchilla"
    assert (folder / "fit.json").is_file()
    from sweeper.report import build_report

    page = build_report(outcome.results_dir)  # the report shows the law and the ladder's validation
    assert '<section id="laws">' in page and "The ladder's validation" in page and 'data-chart="laws-1"' in page


@pytest.mark.usefixtures("ray_session")
def test_the_ladder_predicts_a_downstream_error_through_the_link_of_gadre_et_al(tmp_path, capsys):
    out = io.StringIO()
    study = ladder_study(downstream={"metric": "error", "form": "exponential"})
    outcome = run_study(study, tmp_path / "r", stream=out, rich=False)
    folder = outcome.results_dir / "laws"
    link = json.loads((folder / "downstream.json").read_text())
    assert link["metric"] == "error" and link["form"] == "exponential"
    # noise-free points of the synthetic workload's own link: the fit recovers it
    assert [link["params"][k] for k in ("epsilon", "k", "gamma")] == pytest.approx(
        [DOWNSTREAM["epsilon"], DOWNSTREAM["k"], DOWNSTREAM["gamma"]], rel=1e-3)
    # 12 runs x 5 reports, less those before 10% of their tokens (none: the first is at 20%)
    assert link["points"] == 60
    predictions = json.loads((folder / "predictions.json").read_text())
    assert set(predictions[0]["downstream"]) == {"predicted", "lower", "upper"}
    table = pl.read_csv(folder / "validation_downstream.csv")
    row = table.row(0, named=True)
    truth = expected_error(expected_loss(2.56e8, 2e9, optimal_lr(2.56e8)))
    assert row["measured"] == pytest.approx(truth, rel=1e-6)
    assert abs(row["error"]) < 0.01 and row["rel_error"] == pytest.approx(row["error"] / row["measured"])
    assert row["lower"] <= row["predicted"] <= row["upper"]
    assert "downstream error (predicted from the predicted loss" in out.getvalue()
    # the link is backtested as the law is (the largest sizes' final points from the rest)
    assert link["backtest"]["holdouts"] == [1, 2] and "link backtests" in out.getvalue()
    assert outcome.ladder["validation_downstream"][0]["run"] == "big"
    # the saved fit and link predict the same elsewhere (`sweeper predict law ... --downstream`)
    import argparse

    from sweeper.commands import predict_law

    parser = argparse.ArgumentParser()
    predict_law.configure(parser)
    args = parser.parse_args([str(folder / "fit.json"), "--n", "2.56e8", "--d", "2e9", "--downstream",
                              str(folder / "downstream.json"), "--json"])
    capsys.readouterr()
    assert predict_law.run(args) == 0
    again = json.loads(capsys.readouterr().out)["downstream"]
    assert again["metric"] == "error" and again["value"] == pytest.approx(row["predicted"], rel=1e-9)
    from sweeper.report import build_report

    assert "The downstream metric (laws.downstream)" in build_report(outcome.results_dir)


@pytest.mark.usefixtures("ray_session")
def test_a_downstream_link_on_final_points_only_and_one_for_another_loss_refused(tmp_path, capsys):
    study = ladder_study(downstream={"metric": "error", "form": "exponential", "min_fraction": 1})
    outcome = run_study(study, tmp_path / "r", stream=io.StringIO(), rich=False)
    folder = outcome.results_dir / "laws"
    link = json.loads((folder / "downstream.json").read_text())
    assert link["points"] == 12 and link["loss"] == "m.loss"  # the 12 runs' final points, Gadre et al.'s recipe
    # a law of another loss cannot be chained through this link
    import argparse

    from sweeper.commands import predict_law

    other = json.loads((folder / "fit.json").read_text())
    other["data"]["columns"]["loss"] = "m.loss.valid.code"
    (tmp_path / "other.json").write_text(json.dumps(other))
    parser = argparse.ArgumentParser()
    predict_law.configure(parser)
    args = parser.parse_args([str(tmp_path / "other.json"), "--n", "2.56e8", "--d", "2e9", "--downstream",
                              str(folder / "downstream.json")])
    with pytest.raises(UserError, match="the link was fitted on m.loss, the law on m.loss.valid.code"):
        predict_law.run(args)


def test_a_downstream_prediction_without_an_interval_says_so():
    from sweeper.ladder import _print_downstream

    table = pl.DataFrame({"run": ["big"], "predicted": [0.40], "lower": [float("nan")], "upper": [float("nan")],
                          "measured": [0.41], "error": [-0.01], "rel_error": [-0.01 / 0.41]})
    out = io.StringIO()
    _print_downstream(out, table, "error", 0.9)
    assert "no interval: the law or the link has no bootstrap" in out.getvalue()
    assert "outside" not in out.getvalue() and "nan" not in out.getvalue()


@pytest.mark.usefixtures("ray_session")
def test_a_downstream_metric_the_workload_does_not_report_is_named(tmp_path):
    study = ladder_study(downstream={"metric": "accuracy"})
    with pytest.raises(UserError, match="laws.downstream.metric: accuracy: no such metric .*m.error"):
        run_study(study, tmp_path / "r", stream=io.StringIO(), rich=False)


def test_a_ladder_too_short_or_a_validation_too_small_is_refused_before_training(tmp_path):
    with pytest.raises(UserError, match="laws: the ladder has 2 model size"):
        run_study(ladder_study(sizes={"xs": 1e6, "s": 4e6}), tmp_path / "a", stream=io.StringIO(), rich=False)
    small = {"runs": {"tiny": {"n_params": 1e6, "tokens": 2e7}}}
    with pytest.raises(UserError, match="laws.validate.runs.tiny: .* no larger than the ladder's largest run"):
        run_study(ladder_study(validate=small), tmp_path / "b", stream=io.StringIO(), rich=False)
    with pytest.raises(UserError, match="laws: .*windows: only with law auto .*not chinchilla"):
        ladder_study(windows=True)
    with pytest.raises(UserError, match="laws.downstream.form"):
        ladder_study(downstream={"metric": "error", "form": "logistic"})
    assert not (tmp_path / "a" / "rows").exists() and not (tmp_path / "b" / "rows").exists()


def test_a_validation_run_that_repeats_its_data_beyond_the_ladder_is_named():
    """The shipped ladder: tinylm's describe says how many times each run reads its data. Its rungs read it at
    most 0.6 times; xxl and xxl30 more than once, xxl10 and xxl20 less."""
    from sweeper.ladder import ladder_runs, repetition_warnings
    from sweeper.phases import run_size
    from sweeper.spec import load_study

    study = load_study("studies/ladder.yaml")
    rungs = ladder_runs(study)
    assert len(rungs) == 14 and max(r["epochs"] for r in rungs) < 0.6
    runs = [{"run": name, **run_size(study, {**study.params, **params})}
            for name, params in study.laws.validate_.runs.items()]
    warned = repetition_warnings(rungs, runs)
    assert [w.split()[0] for w in warned] == ["laws.validate.runs.xxl", "laws.validate.runs.xxl30"]
    assert "reads its training data 1.24 times, the ladder's runs at most 0.58" in warned[0]
    # a workload that does not say (the synthetic one), or a ladder that repeated as much: nothing to say
    assert repetition_warnings([{"n_params": 1e6}], runs) == []
    assert repetition_warnings([{"epochs": 2.0}], [{"run": "big", "epochs": 1.5}]) == []
    assert repetition_warnings([{"epochs": 0.5}], [{"run": "big", "epochs": 0.9}]) == []


def test_the_report_shows_each_validation_runs_epochs_where_the_table_has_them(tmp_path):
    from sweeper.report.sections import laws

    (tmp_path / "laws").mkdir()
    row = {"run": "big", "n_params": 4e5, "tokens": 1.7e7, "flops": 4.8e13, "predicted": 1.26, "lower": 1.2,
           "upper": 1.33, "measured": 1.28, "seeds": 2, "epochs": 1.72, "rel_error": -0.0156}
    pl.DataFrame([row]).write_csv(tmp_path / "laws" / "validation.csv")
    table = laws(tmp_path).tables[0]
    assert "<th>epochs</th>" in table and "<td>1.72</td>" in table
    pl.DataFrame([{k: v for k, v in row.items() if k != "epochs"}]).write_csv(tmp_path / "laws" / "validation.csv")
    assert "epochs" not in laws(tmp_path).tables[0]  # a table written before the column existed
