"""A loss that is a weighted sum of components (a mixture's domains), predicted as the sum of one law per
component (``laws.components``): the fit, its joint bootstrap and backtests, and the checks of the study block.
The ladder end to end runs real tinylm training through Ray Tune."""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
import pytest

from sweeper.errors import StudyError, UserError
from sweeper.laws.components import check_components, check_weighted_sum, fit_components
from sweeper.laws.data import LawData
from sweeper.laws.power import fit_law

K = 6.0
SIZES = (1e6, 2e6, 4e6, 8e6, 1.6e7)
BIG = (6.4e7, 40 * 6.4e7)  # 4x the largest size, 40 tokens per parameter


def slow_domain(n, d):
    return 1.2 + 60.0 / n ** 0.25 + 90.0 / d ** 0.25  # keeps improving: prose


def fast_domain(n, d):
    return 0.4 + 3e5 / n ** 0.9 + 3e6 / d ** 0.9  # nearly at its floor for the larger models: generated text


def ladder(noise=0.0, seed=0, multipliers=(10, 40)):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.asarray(SIZES), len(multipliers))
    d = n * np.tile(np.asarray(multipliers, dtype=float), len(SIZES))
    run = np.arange(n.size).astype(str)

    def data(loss):
        return LawData(loss=loss, n=n, d=d, c=K * n * d, run=run, source="ladder")

    slow = slow_domain(n, d) * np.exp(rng.normal(0, noise, n.size))
    fast = fast_domain(n, d) * np.exp(rng.normal(0, noise, n.size))
    return {"slow": data(slow), "fast": data(fast)}, data(0.5 * slow + 0.5 * fast)


def test_the_sum_of_per_component_laws_extrapolates_where_one_law_on_the_sum_cannot():
    parts, target = ladder()
    fit = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=0)
    n, d = BIG
    truth = 0.5 * slow_domain(n, d) + 0.5 * fast_domain(n, d)
    alone = fit_law(target, "chinchilla", bootstrap=0).predict(n=n, d=d)
    assert abs(fit.predict(n=n, d=d) / truth - 1) < 0.002  # each component is a chinchilla law
    assert abs(alone / truth - 1) > 3 * abs(fit.predict(n=n, d=d) / truth - 1)
    bt = fit.backtest  # the same nested backtests score both, and favour the sum here
    assert bt["holdouts"] == [1, 2] and bt["sum"]["points"] == bt["alone"]["points"] == 6
    assert bt["sum"]["mean_abs_rel_error"] < bt["alone"]["mean_abs_rel_error"]
    assert fit.misfit["by"] == "n" and fit.misfit["fitted_max"] == 1.6e7


def test_the_interval_is_the_joint_bootstrap_of_the_sum_widened_by_its_misfit(tmp_path):
    parts, target = ladder(noise=0.004, seed=3)
    fit = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=40, seed=1)
    # the components resampled the same runs: replicate by replicate, their sum is one bootstrap of the sum
    assert all(len(f.samples) == 40 for f in fit.fits.values())
    n, d = BIG
    pred = fit.prediction(n=n, d=d)
    assert pred.lo < pred.value < pred.hi
    fit.misfit, misfit = None, fit.misfit
    narrow = fit.prediction(n=n, d=d)  # the bootstrap alone
    assert narrow.lo >= pred.lo and narrow.hi <= pred.hi and narrow.hi > narrow.lo
    fit.misfit = misfit
    inside = fit.prediction(n=SIZES[2], d=10 * SIZES[2])  # no extrapolation, no misfit term
    fit.misfit = None
    assert fit.prediction(n=SIZES[2], d=10 * SIZES[2]).hi == inside.hi
    fit.misfit = misfit
    saved = json.loads(fit.save(tmp_path / "fit.json").read_text())
    assert saved["law"] == "components" and set(saved["components"]) == {"slow", "fast"}
    assert saved["weights"] == {"slow": 0.5, "fast": 0.5} and saved["backtest"]["sum"]["points"] == 6


@pytest.mark.parametrize("law", ["chinchilla", "auto"])
def test_the_components_replicates_pair_run_by_run(law):
    """Two copies of one loss, weighted a half each, are that loss: the same point and, replicate by replicate,
    the same bootstrap, so the interval is the single law's to the last digit (a bootstrap that drew other
    runs for each component would give a narrower one)."""
    parts, target = ladder(noise=0.004, seed=5)
    copies = {"a": parts["slow"], "b": parts["slow"]}
    single = fit_law(parts["slow"], law, bootstrap=30, level=0.9, seed=2)
    fit = fit_components(copies, {"a": 0.5, "b": 0.5}, parts["slow"], law, bootstrap=30, level=0.9, seed=2)
    fit.misfit = single.misfit = None  # the bootstraps alone
    n, d = BIG
    one, both = single.prediction(n=n, d=d), fit.prediction(n=n, d=d)
    assert [float(both.value), float(both.lo), float(both.hi)] == pytest.approx(
        [float(one.value), float(one.lo), float(one.hi)], rel=1e-12)


def test_every_form_resamples_the_same_runs_for_one_seed(monkeypatch):
    """What the joint bootstrap rests on when ``auto`` gives components different forms: with one seed, the
    bootstrap of every form draws the same runs in the same order."""
    import sweeper.laws.power as power

    drawn = []
    original = power.resample
    monkeypatch.setattr(power, "resample", lambda units, rng: drawn.append(original(units, rng)) or drawn[-1])
    parts, _ = ladder(noise=0.004, seed=3)
    for law in ("chinchilla", "overtrain", "power"):
        fit_law(parts["slow"], law, bootstrap=6, seed=4)
    assert len(drawn) == 18
    assert all(np.array_equal(drawn[i], drawn[i + 6]) and np.array_equal(drawn[i], drawn[i + 12]) for i in range(6))
    assert len({tuple(a) for a in drawn[:6]}) > 1  # and the replicates themselves differ


def test_without_a_bootstrap_the_interval_is_the_misfit_alone_and_mismatched_replicates_are_refused():
    parts, target = ladder(noise=0.004, seed=3)
    fit = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=0)
    n, d = BIG
    pred = fit.prediction(n=n, d=d)
    assert pred.lo < pred.value < pred.hi  # the misfit term only
    inside = fit.prediction(n=SIZES[2], d=10 * SIZES[2])
    assert inside.lo == inside.hi == inside.value  # no bootstrap, no extrapolation: nothing to widen
    fit.misfit = None
    assert np.isnan(fit.prediction(n=n, d=d).lo)
    boot = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=8)
    boot.fits["fast"].samples = boot.fits["fast"].samples[:5]
    with pytest.raises(UserError, match=r"bootstraps have \[5, 8\] replicates"):
        boot.prediction(n=n, d=d)


def test_a_saved_fit_predicts_the_same_through_sweeper_predict_law(tmp_path, capsys):
    import argparse

    from sweeper.commands import predict_law
    from sweeper.laws.components import load_fit

    parts, target = ladder(noise=0.004, seed=3)
    fit = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "auto", bootstrap=20, seed=1)
    path = fit.save(tmp_path / "fit.json")
    again = load_fit(path)
    n, d = BIG
    before, after = fit.prediction(n=n, d=d), again.prediction(n=n, d=d)
    assert [float(after.value), float(after.lo), float(after.hi)] == pytest.approx(
        [float(before.value), float(before.lo), float(before.hi)], rel=1e-12)

    def predict(*argv):
        parser = argparse.ArgumentParser()
        predict_law.configure(parser)
        return predict_law.run(parser.parse_args([str(path), *argv]))

    assert predict("--n", str(n), "--d", str(d), "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["loss"]["value"] == pytest.approx(float(before.value))
    assert set(printed["components"]) == {"slow", "fast"}
    assert predict("--n", str(n), "--d", str(d)) == 0
    assert "joint bootstrap interval, widened by the sum's backtest" in capsys.readouterr().out
    with pytest.raises(UserError, match="--c: a fit of one law per component has no compute-optimal"):
        predict("--c", "1e20")
    raw = json.loads(path.read_text())
    raw["weights"]["fast"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="bad.json: weights: expected at least 2 component losses"):
        load_fit(tmp_path / "bad.json")


def test_components_measured_on_other_runs_are_refused():
    parts, target = ladder()
    other = parts["fast"].take(np.arange(len(parts["fast"]) - 1))
    with pytest.raises(UserError, match="fast: its points are not those of slow"):
        check_components({"slow": parts["slow"], "fast": other}, target)
    with pytest.raises(UserError, match="components: the loss: its points are not those of slow"):
        check_components(parts, target.take(np.arange(len(target) - 1)))
    with pytest.raises(UserError, match=r"components: \['slow'\]: weights for other losses"):
        fit_components(parts, {"slow": 1.0}, target, "chinchilla", bootstrap=0)
    with pytest.raises(UserError, match="by: a fit of one law per component resamples whole runs"):
        fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=0, by="size")
    with pytest.raises(UserError, match=r"components: the weighted sum .* on run 0, .* expected weights that make"):
        check_weighted_sum({"slow": 0.5, "fast": 0.25}, parts, target)


def test_the_study_block_checks_its_components_before_anything_runs():
    from sweeper.spec import parse_study
    from tests.helpers import study_data

    def study(components):
        return parse_study(study_data(laws={"components": components}))

    assert study({"loss.a": 0.5, "loss.b": 0.5}).laws.components == {"loss.a": 0.5, "loss.b": 0.5}
    with pytest.raises(StudyError, match="laws.components.*at least 2 component"):
        study({"loss.a": 1.0})
    for weight in (-1.0, True, "0.5", float("nan")):
        with pytest.raises(StudyError, match="laws.components.*loss.b: expected a positive number as the weight"):
            study({"loss.a": 1.0, "loss.b": weight})
    with pytest.raises(StudyError, match="laws.components.*expected metric names"):
        study({"loss.a": 1.0, " ": 1.0})


TINY = {"d_model": 8, "n_layers": 1, "n_heads": 1, "batch_size": 4, "eval_every": 1000}


def tinylm_ladder(weights):
    from sweeper.spec import parse_study

    presets = {}
    for name, width in (("a", 8), ("b", 12), ("c", 16), ("d", 20)):
        for budget in (8192, 24576):  # tokens grow with the width: four sizes, eight token counts
            presets[f"{name}{budget}"] = {**TINY, "d_model": width, "tokens": budget * width // 8}
    domains = ["code", "arith", "records"]
    return parse_study({
        "name": "ladder", "workload": "workloads.tinylm:train",
        "params": {"ctx": 32, "eval_tokens": 512, "threads": 1, "mix": {d: 1.0 for d in domains},
                   "target": {d: 1.0 for d in domains}, "lr": 1e-2},
        "space": {"run": {"type": "choice", "values": list(presets), "presets": presets}},
        "search": {"algo": "grid", "metric": "loss.valid.target", "mode": "min"}, "budget": {"concurrent": 2},
        "resources": {"cpu": 1, "gpu": 0},
        "laws": {"law": "chinchilla", "bootstrap": 10, "components": {f"loss.valid.{d}": w for d, w in
                                                                      zip(domains, weights, strict=True)},
                 "validate": {"runs": {"big": {**TINY, "d_model": 32, "tokens": 196608}}}}})


@pytest.mark.usefixtures("ray_session")
def test_a_tinylm_ladder_predicts_its_mean_loss_from_one_law_per_domain(tmp_path, capsys):
    from sweeper.engine import run_study

    out = io.StringIO()
    outcome = run_study(tinylm_ladder([1 / 3, 1 / 3, 1 / 3]), tmp_path / "r", stream=out, rich=False)
    folder = outcome.results_dir / "laws"
    assert outcome.ladder["law"] == "components" and set(outcome.ladder["components"]) == {
        "loss.valid.code", "loss.valid.arith", "loss.valid.records"}
    saved = json.loads((folder / "fit.json").read_text())
    assert saved["weights"]["loss.valid.code"] == pytest.approx(1 / 3)
    row = pl.read_csv(folder / "validation.csv").row(0, named=True)
    parts = pl.read_csv(folder / "validation_components.csv")  # which component's law missed, and by how much
    assert parts.columns == ["run", "component", "weight", "predicted", "lower", "upper", "measured", "seeds",
                             "rel_error"]
    assert (parts["lower"] <= parts["predicted"]).all() and (parts["predicted"] <= parts["upper"]).all()
    assert parts["component"].to_list() == ["loss.valid.code", "loss.valid.arith", "loss.valid.records"]
    assert (parts["weight"] * parts["measured"]).sum() == pytest.approx(row["measured"], rel=1e-6)
    assert "big: loss.valid.code" in out.getvalue()
    assert row["run"] == "big" and row["measured"] > 0 and row["lower"] <= row["predicted"] <= row["upper"]
    assert "one law per component" in out.getvalue() and "the loss fitted alone" in out.getvalue()
    from sweeper.report import build_report

    page = build_report(outcome.results_dir)  # the report names the sum and charts each component's law
    assert "one law per component" in page and "fit.json, loss.valid.code" in page and "By component" in page
    from sweeper.ladder import fit_ladder

    with pytest.raises(UserError, match=r"laws.components: the weighted sum .* expected weights that make "
                                         r"m.loss.valid.target"):  # weights that do not make the loss
        fit_ladder(tinylm_ladder([0.5, 0.25, 0.25]), outcome.results_dir)
    # the same fit from the command line, then a prediction from its file
    import argparse

    from sweeper.commands import fit_law as fit_law_command

    def cli(*argv):
        parser = argparse.ArgumentParser()
        fit_law_command.configure(parser)
        return fit_law_command.run(parser.parse_args([str(outcome.results_dir), *argv]))

    columns = [f"m.loss.valid.{d}=0.33333" for d in ("code", "arith", "records")]
    saved = tmp_path / "cli.json"
    assert cli("--n", "m.n_params", "--loss", "m.loss.valid.target", "--law", "chinchilla", "--bootstrap", "10",
               "--components", *columns, "-o", str(saved)) == 0
    assert "one law per component" in capsys.readouterr().out
    assert json.loads(saved.read_text())["n_points"] == 9  # the sweep's 8 runs and the validation run
    assert cli("--n", "m.n_params", "--loss", "m.loss.valid.target", "--law", "chinchilla", "--bootstrap", "10",
               "--components", *columns, "--phase", "search", "-o", str(saved)) == 0
    assert json.loads(saved.read_text())["n_points"] == 8 and json.loads(saved.read_text())["law"] == "components"
    with pytest.raises(UserError, match=r"no finished runs in phase 'sweep' \(its phases: search, validate\)"):
        cli("--n", "m.n_params", "--loss", "m.loss.valid.target", "--phase", "sweep")
    with pytest.raises(UserError, match="--components: 'm.loss.valid.code': expected COL=WEIGHT"):
        cli("--n", "m.n_params", "--loss", "m.loss.valid.target", "--components", "m.loss.valid.code", *columns[1:])
    with pytest.raises(UserError, match="--components: not with --plot"):
        cli("--n", "m.n_params", "--loss", "m.loss.valid.target", "--components", *columns, "--plot", "x.png")
    unknown = tinylm_ladder([1 / 3, 1 / 3, 1 / 3]).model_copy(deep=True)
    unknown.laws.components = {"loss.valid.prose": 0.5, "loss.valid.code": 0.5}
    with pytest.raises(UserError, match="laws.components: loss.valid.prose: no such metric"):
        fit_ladder(unknown, outcome.results_dir)


def test_with_too_few_sizes_to_backtest_the_fit_says_so_and_adds_no_misfit():
    parts, target = ladder()
    keep = np.flatnonzero(target.n <= SIZES[2])  # three sizes: nothing left to fit once the largest is out
    fit = fit_components({k: v.take(keep) for k, v in parts.items()}, {"slow": 0.5, "fast": 0.5}, target.take(keep),
                         "chinchilla", bootstrap=0)
    assert fit.misfit is None and fit.backtest["holdouts"] == []
    assert fit.backtest_summary().startswith("no backtest: too few sizes")
    full = fit_components(parts, {"slow": 0.5, "fast": 0.5}, target, "chinchilla", bootstrap=0)
    assert full.backtest_summary().startswith("backtests (fit without the 1, 2 largest sizes")
    signed = full.backtest["sum"]["mean_rel_error"]  # and which way the misses leaned
    assert f"(on average {abs(signed):.2%} {'low' if signed < 0 else 'high'})" in full.backtest_summary()
