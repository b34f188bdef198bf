"""Signal and noise in RegMix (issue 13): replicates measure the seed noise, the validation compares every
candidate with the pick paired by seed, and bad settings are refused before anything trains."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import polars as pl
import pytest

from sweeper.cli import main
from sweeper.engine import run_study
from sweeper.errors import StudyError
from sweeper.laws.noise import compare_paired, estimate_noise
from sweeper.spec import parse_study
from sweeper.store import read_trials
from tests.helpers import write_study

DOMAINS = ["a", "b", "c", "d"]


def _data(**regmix):
    return {
        "name": "rmn", "workload": "workloads.synthetic:train",
        "params": {"steps": 2, "noise": 0.01, "n_params": 1e6, "tokens": 1e8},
        "space": {"mix": {"type": "simplex", "domains": DOMAINS}},
        "search": {"algo": "dirichlet", "metric": "loss", "mode": "min"},
        "budget": {"trials": 24, "concurrent": 2},
        "regmix": {"samples": 5000, "top_k": 16, **regmix},
    }


def test_two_way_noise_removes_the_shared_seed_shift():
    rng = np.random.default_rng(0)
    truth = np.linspace(2.0, 2.5, 8)  # spread sd ~0.16
    shift = np.array([0.0, 0.3, -0.2, 0.1])  # large, shared by every config of a seed
    table = truth[:, None] + shift[None, :] + 0.01 * rng.standard_normal((8, 4))
    spread = truth + 0.01 * rng.standard_normal(8)
    est = estimate_noise(table, spread)
    assert est.seed_sd > 0.15  # across seeds the shared shift dominates
    assert est.paired_sd == pytest.approx(0.01, rel=0.5)  # but it cancels between configs of one seed
    assert est.snr == pytest.approx(est.spread_sd / est.paired_sd) and est.snr > 8 and not est.too_noisy
    noisy = estimate_noise(truth[:, None] + 0.3 * rng.standard_normal((8, 3)), truth + 0.3 * rng.standard_normal(8))
    assert noisy.too_noisy and "too noisy" in noisy.describe()
    assert estimate_noise(np.array([[1.0, np.nan]]), spread) is None  # no config with two seeds
    # Two configs far worse than the rest (mostly-arithmetic proxies) do not inflate the spread, or the SNR.
    corners = estimate_noise(table, np.concatenate([spread, [5.0, 6.0]]))
    assert corners.spread_sd == pytest.approx(est.spread_sd, rel=0.35) and corners.spread_sd < 0.3
    assert corners.spread_sd_plain > 1.0 and corners.summary()["spread_sd_plain"] == corners.spread_sd_plain


def test_paired_comparison_counts_standard_errors():
    pick = {0: 2.00, 1: 2.10, 2: 1.95}
    worse = {s: v + 0.05 + 0.001 * s for s, v in pick.items()}  # consistently worse: significant
    noisy = {0: 2.30, 1: 1.90, 2: 1.95}  # worse on average, inconsistently
    c = compare_paired(worse, pick)
    assert c.diff == pytest.approx(0.051) and c.significant and c.seeds == 3
    assert c.sem == pytest.approx(np.std(list(worse.values()), ddof=1) / math.sqrt(3))
    assert not compare_paired(noisy, pick).significant


@pytest.mark.usefixtures("ray_session")
def test_replicates_and_seeded_validation_end_to_end(tmp_path):
    study = parse_study(_data(replicates={"mixtures": 4, "seeds": 3}, validate={
        "params": {"n_params": 1e7, "tokens": 1e9}, "seeds": 3, "baselines": ["uniform", "prior"]}))
    out = io.StringIO()
    outcome = run_study(study, tmp_path / "rmn", stream=out, rich=False)
    results = outcome.results_dir

    replicates = read_trials(results, phase="replicate")
    assert replicates.height == 4 * 2 and set(replicates["seed"]) == {1, 2}  # seed 0 is the proxy itself
    summary = json.loads((results / "mixture" / "regmix.json").read_text())
    fit = summary["fit"]
    for key in ("snr", "seed_sd", "spread_sd"):
        assert fit[key] > 0
    assert 0.3 * 0.01 * 2 < fit["seed_sd"] < 3 * 0.01 * 4  # the synthetic noise: sd 1% of a loss near 2-4
    assert fit["rows"] == 24  # replicated mixtures are averaged, not added as rows
    printed = out.getvalue()
    assert "signal and noise: SNR" in printed

    rows = {r["candidate"]: r for r in summary["validation"]}
    assert set(rows) == {"regmix", "uniform", "prior"}
    for name, row in rows.items():
        assert row["seeds"] == 3 and row["sem"] >= 0
        assert (row["significant"] is None) == (name == "regmix")
    assert "vs the pick" in printed and "standard errors" in printed
    table = pl.read_csv(results / "mixture" / "validation.csv")
    assert {"sem", "significant", "diff_se"} <= set(table.columns)


@pytest.mark.parametrize(("regmix", "field"), [
    ({"replicates": {"mixtures": 0}}, "regmix.replicates.mixtures"),
    ({"replicates": {"seeds": -1}}, "regmix.replicates.seeds"),
    ({"validate": {"seeds": 0}}, "regmix.validate.seeds"),
    ({"validate": {"seeds": -3}}, "regmix.validate.seeds"),
    ({"validate": {"seeds": [0, -1]}}, "regmix.validate.seeds"),
])
def test_bad_replicates_and_seeds_are_refused(regmix, field):
    with pytest.raises(StudyError, match=field.replace(".", r"\.")):
        parse_study(_data(**regmix))


def test_a_validation_scale_smaller_than_the_proxies_is_refused_before_training(tmp_path, capsys):
    path = write_study(tmp_path, _data(validate={"params": {"n_params": 1e5}}))
    assert main(["run", str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "regmix.validate.params: the validation scale is smaller" in err
    assert "n_params 1e+05 < 1e+06" in err and not (tmp_path / "r" / "rows").exists()
