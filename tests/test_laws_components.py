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
from sweeper.laws.components import check_components, fit_components
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
    assert inside.hi - inside.lo < pred.hi - pred.lo
    saved = json.loads(fit.save(tmp_path / "fit.json").read_text())
    assert saved["law"] == "components" and set(saved["components"]) == {"slow", "fast"}
    assert saved["weights"] == {"slow": 0.5, "fast": 0.5} and saved["backtest"]["sum"]["points"] == 6


def test_components_measured_on_other_runs_are_refused():
    parts, target = ladder()
    other = parts["fast"].take(np.arange(len(parts["fast"]) - 1))
    with pytest.raises(UserError, match="fast: its points are not those of slow"):
        check_components({"slow": parts["slow"], "fast": other}, target)
    with pytest.raises(UserError, match="name different losses"):
        fit_components(parts, {"slow": 1.0}, target, "chinchilla", bootstrap=0)


def test_the_study_block_checks_its_components_before_anything_runs():
    from sweeper.spec import parse_study
    from tests.helpers import study_data

    def study(components):
        return parse_study(study_data(laws={"components": components}))

    assert study({"loss.a": 0.5, "loss.b": 0.5}).laws.components == {"loss.a": 0.5, "loss.b": 0.5}
    with pytest.raises(StudyError, match="laws.components.*at least 2 component"):
        study({"loss.a": 1.0})
    with pytest.raises(StudyError, match="laws.components.*loss.b: expected a positive weight"):
        study({"loss.a": 1.0, "loss.b": -1.0})


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
def test_a_tinylm_ladder_predicts_its_mean_loss_from_one_law_per_domain(tmp_path):
    from sweeper.engine import run_study

    out = io.StringIO()
    outcome = run_study(tinylm_ladder([1 / 3, 1 / 3, 1 / 3]), tmp_path / "r", stream=out, rich=False)
    folder = outcome.results_dir / "laws"
    assert outcome.ladder["law"] == "components" and set(outcome.ladder["components"]) == {
        "loss.valid.code", "loss.valid.arith", "loss.valid.records"}
    saved = json.loads((folder / "fit.json").read_text())
    assert saved["weights"]["loss.valid.code"] == pytest.approx(1 / 3)
    row = pl.read_csv(folder / "validation.csv").row(0, named=True)
    assert row["run"] == "big" and row["measured"] > 0 and row["lower"] <= row["predicted"] <= row["upper"]
    assert "one law per component" in out.getvalue() and "the loss fitted alone" in out.getvalue()
    from sweeper.report import build_report

    page = build_report(outcome.results_dir)  # the report names the sum and charts each component's law
    assert "one law per component" in page and "fit.json, loss.valid.code" in page
    from sweeper.ladder import fit_ladder

    with pytest.raises(UserError, match=r"laws.components: the weighted sum .* expected weights that make "
                                         r"m.loss.valid.target"):  # weights that do not make the loss
        fit_ladder(tinylm_ladder([0.5, 0.25, 0.25]), outcome.results_dir)
    unknown = tinylm_ladder([1 / 3, 1 / 3, 1 / 3]).model_copy(deep=True)
    unknown.laws.components = {"loss.valid.prose": 0.5, "loss.valid.code": 0.5}
    with pytest.raises(UserError, match="laws.components: loss.valid.prose: no such metric"):
        fit_ladder(unknown, outcome.results_dir)
