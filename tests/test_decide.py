"""DataDecide analysis: the decision-accuracy arithmetic against hand-computed values, and the predictors on
synthetic power-law data whose true ranking is known."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from sweeper.errors import UserError
from sweeper.laws import decide as dd

# --------------------------------------------------------------------------------------------------
# Pairs, ties, directions
# --------------------------------------------------------------------------------------------------


def test_pairs_with_ties_by_hand():
    # target (lower is better): A 1.1, B 1.4, C 1.1, D 2.0 -> A = C < B < D; the pair A-C has no true order.
    # predicted: A 3.0, B 2.9, C 3.5, D 3.5
    #   A-B: predicts B, truth A -> wrong     A-D: predicts A -> right     B-C: predicts B, truth C -> wrong
    #   B-D: predicts B -> right               C-D: predicted tie -> 1/2
    # (2 + 0.5) / 5 = 0.5
    score = dd.decision_accuracy({"A": 3.0, "B": 2.9, "C": 3.5, "D": 3.5}, {"A": 1.1, "B": 1.4, "C": 1.1, "D": 2.0})
    assert (score.correct, score.wrong, score.predicted_ties, score.pairs, score.target_ties) == (2, 2, 1, 5, 1)
    assert score.accuracy == pytest.approx(0.5)


def test_directions_and_a_loss_predicting_an_accuracy():
    target_acc = [0.30, 0.50, 0.40]          # higher is better: 1 > 2 > 0
    proxy_loss = [3.0, 2.0, 2.5]             # lower is better: the same order
    assert dd.decision_accuracy(proxy_loss, target_acc, higher_is_better=True,
                                predicted_higher_is_better=False).accuracy == 1.0
    # read as an accuracy, the loss orders every pair the wrong way
    assert dd.decision_accuracy(proxy_loss, target_acc, higher_is_better=True).accuracy == 0.0
    # negating both values and both directions changes nothing
    a = dd.decision_accuracy([1.0, 3.0, 2.0, 5.0], [1.0, 2.0, 3.0, 4.0])
    b = dd.decision_accuracy([-1.0, -3.0, -2.0, -5.0], [-1.0, -2.0, -3.0, -4.0], higher_is_better=True)
    assert a == b and a.accuracy == pytest.approx(5 / 6)


def test_rank_correlations_and_degenerate_cases():
    rho, tau = dd.rank_correlations([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 40.0, 30.0])
    assert rho == pytest.approx(0.8) and tau == pytest.approx(4 / 6)
    assert all(math.isnan(v) for v in dd.rank_correlations([1.0, 1.0], [1.0, 2.0]))
    everything_tied = dd.pair_score([1.0, 2.0], [5.0, 5.0])
    assert everything_tied.pairs == 0 and math.isnan(everything_tied.accuracy)
    # relative tie tolerance: values equal up to floating-point dust are one value
    assert dd.pair_score([1.0, 1.0 + 1e-13], [1.0, 2.0]).predicted_ties == 1
    with pytest.raises(ValueError):
        dd.pair_score([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        dd.decision_accuracy({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})


# --------------------------------------------------------------------------------------------------
# Seeds and checkpoints through the whole analysis
# --------------------------------------------------------------------------------------------------

def seeds_table() -> pl.DataFrame:
    """3 recipes x 2 sizes x 2 seeds; the small runs also have a checkpoint at half their compute."""
    big = {"r1": (1.0, 1.2), "r2": (1.5, 1.3), "r3": (2.0, 2.2)}            # means 1.1, 1.4, 2.1: r1 < r2 < r3
    small = {"r1": (3.0, 2.0), "r2": (2.5, 2.6), "r3": (3.5, 2.6)}
    half = {"r1": (4.0, 4.0), "r2": (3.0, 3.0), "r3": (5.0, 5.0)}          # r2 < r1 < r3 at every seed
    rows = []
    for recipe in big:
        for seed in (0, 1):
            rows.append({"data": recipe, "size": "big", "seed": seed, "flops": 10.0, "loss": big[recipe][seed]})
            rows.append({"data": recipe, "size": "small", "seed": seed, "flops": 1.0, "loss": small[recipe][seed]})
            rows.append({"data": recipe, "size": "small", "seed": seed, "flops": 0.5, "loss": half[recipe][seed]})
    return pl.DataFrame(rows)


def test_seed_subsets_and_checkpoints_by_hand():
    runs = dd.from_frame(seeds_table(), recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    assert runs.sizes == ["small", "big"] and runs.target_size == "big"
    out = dd.evaluate(runs, predictors=["single-scale"], checkpoints=[0.5, 1.0])
    assert out.target["recipe"].to_list() == ["r1", "r2", "r3"]
    assert out.target["value"].to_list() == pytest.approx([1.1, 1.4, 2.1])
    assert out.info["pairs"] == 3
    rows = {(r["seeds"], r["checkpoint"]): r for r in out.table.iter_rows(named=True)}
    # one seed, final: seed 0 gets r1-r2 wrong (2/3); seed 1 ties r2 and r3 (2.5/3); the mean is 0.75
    one = rows[(1, 1.0)]
    assert one["decision_accuracy"] == pytest.approx(0.75)
    assert one["accuracy_sd"] == pytest.approx(np.std([2 / 3, 2.5 / 3], ddof=1))
    assert one["subsets"] == 2 and one["pairs"] == 3
    assert one["compute"] == pytest.approx(3.0) and one["compute_vs_target"] == pytest.approx(0.1)
    # both seeds: means 2.5, 2.55, 3.05 order every pair right
    both = rows[(2, 1.0)]
    assert both["decision_accuracy"] == 1.0 and both["spearman"] == 1.0 and both["kendall"] == 1.0
    assert both["compute"] == pytest.approx(6.0) and both["accuracy_sd"] is None
    # half-way checkpoint: r2 < r1 < r3 at every seed -> 2/3, at half the compute
    for k in (1, 2):
        early = rows[(k, 0.5)]
        assert early["decision_accuracy"] == pytest.approx(2 / 3)
        assert early["fraction"] == pytest.approx(0.5) and early["compute"] == pytest.approx(1.5 * k)
    # frontier: 0.5-checkpoint 1 seed (cost 1.5) then final 1 seed (cost 3) then 2 seeds (cost 6)
    front = out.frontier("loss").sort("compute")
    assert [(r["seeds"], r["checkpoint"]) for r in front.iter_rows(named=True)] == [(1, 0.5), (1, 1.0), (2, 1.0)]
    base = out.baseline("loss")
    assert base.height == 1 and base["seeds"][0] == 2 and base["decision_accuracy"][0] == 1.0


def test_target_ties_are_left_out_of_every_predictor():
    frame = pl.DataFrame({"data": ["a", "b", "c", "a", "b", "c"], "size": [1, 1, 1, 2, 2, 2],
                          "loss": [3.0, 2.0, 4.0, 1.0, 1.0, 2.0]})
    runs = dd.from_frame(frame, recipe="data", size="size", metrics=["loss"])
    out = dd.evaluate(runs, predictors=["single-scale"])
    row = out.table.row(0, named=True)
    assert out.info["pairs"] == 2 and out.info["target_ties"] == 1
    assert row["pairs"] == 2 and row["decision_accuracy"] == 1.0  # a-c and b-c right; a-b has no answer
    assert runs.compute_unit.startswith("size")  # numeric sizes stand in for compute


# --------------------------------------------------------------------------------------------------
# Predictors on synthetic power laws with a crossover
# --------------------------------------------------------------------------------------------------
PROXY_C = {"xs": 1e6, "s": 4e6, "m": 1.6e7, "l": 6.4e7}
TARGET_C = 1e11
# L = E + A * C^-alpha: the recipes with the lower floor E have the steeper, higher curve, so at every proxy
# size the order is the reverse of the order at the target.
LAWS = {"steep": (1.8, 400.0, 0.33), "mid": (2.0, 120.0, 0.31), "flat": (2.2, 40.0, 0.30)}


def law_table(noise: float = 0.001, seeds: int = 3, proxies: dict[str, float] = PROXY_C) -> pl.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for recipe, (e, a, alpha) in LAWS.items():
        for size, c in [*proxies.items(), ("target", TARGET_C)]:
            for seed in range(seeds):
                for f in (0.5, 1.0):
                    loss = (e + a * (c * f) ** -alpha) * np.exp(rng.normal(0.0, noise))
                    rows.append({"recipe": recipe, "size": size, "seed": seed, "flops": c * f, "loss": loss,
                                 "task": 0.5 * loss ** 2})
    return pl.DataFrame(rows)


def test_the_synthetic_crossover_is_real():
    for c in PROXY_C.values():
        at = {r: e + a * c ** -alpha for r, (e, a, alpha) in LAWS.items()}
        assert at["flat"] < at["mid"] < at["steep"]
    at = {r: e + a * TARGET_C ** -alpha for r, (e, a, alpha) in LAWS.items()}
    assert at["steep"] < at["mid"] < at["flat"]


def test_power_law_extrapolation_beats_single_scale_across_a_crossover():
    runs = dd.from_frame(law_table(), recipe="recipe", size="size", metrics=["loss"], seed="seed", compute="flops")
    out = dd.evaluate(runs, predictors=["single-scale", "power law"], checkpoints=[1.0], law_seeds="all")
    single = dd.baseline_rows(out.table)
    assert single["size"].to_list() == ["xs", "s", "m", "l"]
    assert (single["decision_accuracy"] == 0.0).all() and (single["spearman"] == -1.0).all()
    laws = out.table.filter(pl.col("predictor") == "power law").sort("compute")
    assert laws["sizes"].to_list() == ["xs,s,m", "xs,s,m,l"]
    assert (laws["decision_accuracy"] == 1.0).all() and (laws["kendall"] == 1.0).all()
    # a law's cost is every run it fits: all recipes, seeds and sizes of its ladder
    assert laws["compute"][1] == pytest.approx(3 * 3 * sum(PROXY_C.values()))
    assert laws["compute_vs_target"][1] == pytest.approx(3 * sum(PROXY_C.values()) / TARGET_C)
    assert laws["on_frontier"].to_list() == [True, False]
    best = out.proxies.row(0, named=True)
    assert best["best_accuracy"] == 1.0 and best["best_predictor"] == "power law xs..m, 3 seeds"


def test_power_law_with_one_seed_needs_enough_points():
    runs = dd.from_frame(law_table(), recipe="recipe", size="size", metrics=["loss"], seed="seed", compute="flops")
    out = dd.evaluate(runs, predictors=["power law"], law_seeds="each", max_subsets=2)
    laws = out.table
    # xs..m with one seed: 3 points for a 3-parameter law -> skipped with the reason; xs..l: 4 points, fits
    assert {(r["sizes"], r["seeds"]) for r in laws.iter_rows(named=True)} == {
        ("xs,s,m", 2), ("xs,s,m", 3), ("xs,s,m,l", 1), ("xs,s,m,l", 2), ("xs,s,m,l", 3)}
    assert laws.filter(pl.col("seeds") < 3)["subsets"].to_list() == [2, 2, 2]  # capped by max_subsets
    skipped = out.skipped[0]
    assert (skipped["sizes"], skipped["seeds"]) == ("xs,s,m", 1) and "needs at least 4" in skipped["reason"]


def test_two_step_predicts_the_judged_metric_through_a_proxy_loss():
    proxies = {k: PROXY_C[k] for k in ("xs", "s", "m")}
    runs = dd.from_frame(law_table(seeds=2, proxies=proxies), recipe="recipe", size="size",
                         metrics=["task", "loss"], seed="seed", compute="flops")
    out = dd.evaluate(runs, predictors=["two-step"])
    row = out.table.row(0, named=True)
    assert out.table.height == 1
    assert (row["metric"], row["predictor"], row["sizes"], row["seeds"]) == ("loss", "two-step", "xs,s,m", 2)
    assert row["decision_accuracy"] == 1.0
    # the judged metric is not its own two-step proxy
    assert out.table.filter(pl.col("metric") == "task").is_empty()


def test_higher_is_better_metrics_skip_the_power_law():
    frame = law_table(seeds=1).with_columns(acc=1.0 / pl.col("loss"))
    runs = dd.from_frame(frame, recipe="recipe", size="size", metrics=["acc"], seed="seed", compute="flops",
                         higher_is_better=True)
    out = dd.evaluate(runs, predictors=["single-scale", "power law"], checkpoints=[1.0])
    assert set(out.table["predictor"]) == {"single-scale"}
    assert all("higher-is-better" in s["reason"] for s in out.skipped)
    assert (dd.baseline_rows(out.table)["decision_accuracy"] == 0.0).all()  # the crossover, read as accuracy


def test_json_is_strict_and_names_compute_and_accuracy(tmp_path):
    import json

    runs = dd.from_frame(seeds_table(), recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    path = dd.evaluate(runs, predictors=["single-scale"]).save_json(tmp_path / "d.json")
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["format"] == dd.FORMAT and data["metric"] == "loss" and data["target_size"] == "big"
    assert {"predictor", "size", "seeds", "checkpoint", "compute", "decision_accuracy"} <= set(data["predictors"][0])
    assert data["best_proxy_metric"] == "loss"


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metrics": ["nope"]}, "metrics: no column 'nope'"),
    ({"recipe": "missing"}, "recipe: no column 'missing'"),
    ({"metrics": ["data"]}, "metrics: column 'data' is not numeric"),
    ({"target_size": "huge"}, "target_size: 'huge' is not one of the sizes (small, big)"),
    ({"target_size": "small"}, "is the smallest size"),
    ({"seed": None}, "name the seed column with --seed"),
    ({"higher_is_better": ["acc"]}, "higher_is_better: acc not among the metrics"),
    ({"compute": None}, "sizes in 'size' are not numeric"),
])
def test_bad_tables_are_user_errors(kwargs, message):
    args = {"recipe": "data", "size": "size", "metrics": ["loss"], "seed": "seed", "compute": "flops", **kwargs}
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dd.from_frame(seeds_table(), **args)


def test_one_recipe_at_the_target_is_a_user_error():
    frame = seeds_table().filter((pl.col("size") == "small") | (pl.col("data") == "r1"))
    with pytest.raises(UserError, match="1 recipe"):
        dd.from_frame(frame, recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")


def test_recipes_missing_at_the_target_are_left_out_with_a_note():
    frame = seeds_table().filter((pl.col("size") == "small") | (pl.col("data") != "r3"))
    runs = dd.from_frame(frame, recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    assert runs.recipes == ["r1", "r2"] and "left out: r3" in runs.notes[0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"predictors": ["magic"]}, "^predictors: magic"),
    ({"checkpoints": [0.0]}, "^checkpoints: "),
    ({"max_subsets": 0}, "^max_subsets: "),
    ({"law_seeds": "some"}, "^law_seeds: "),
])
def test_bad_options_are_user_errors(kwargs, message):
    runs = dd.from_frame(seeds_table(), recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    with pytest.raises(UserError, match=message):
        dd.evaluate(runs, **kwargs)


@pytest.mark.parametrize(("early", "counted"), [(0.26, True), (0.3, False)])
def test_a_checkpoint_just_past_a_fraction_counts_as_it(early, counted):
    frame = seeds_table().with_columns(flops=pl.when(pl.col("flops") == 0.5).then(early).otherwise(pl.col("flops")))
    runs = dd.from_frame(frame, recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    out = dd.evaluate(runs, predictors=["single-scale"], checkpoints=[0.25, 1.0])
    quarter = out.table.filter(pl.col("checkpoint") == 0.25)
    assert quarter.height == (2 if counted else 0)
    if counted:
        assert quarter["fraction"].to_list() == pytest.approx([early, early])


def test_nan_metrics_are_missing_values_not_crashes():
    frame = seeds_table().with_columns(
        loss=pl.when((pl.col("data") == "r3") & (pl.col("size") == "small") & (pl.col("seed") == 1))
        .then(float("nan")).otherwise(pl.col("loss")))
    runs = dd.from_frame(frame, recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    assert "2 NaN or infinite values" in runs.notes[0]
    out = dd.evaluate(runs, predictors=["single-scale"], checkpoints=[1.0])
    rows = {r["seeds"]: r for r in out.table.iter_rows(named=True)}
    # seed 1 alone ranks r1 and r2 only (1 pair, right); seed 0 alone gets 2 of 3; both seeds: r3 from seed 0
    assert rows[1]["decision_accuracy"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert rows[2]["decision_accuracy"] == 1.0


def test_law_fits_that_warn_are_counted_not_printed(recwarn):
    # a pure power law without a floor: the fitted E runs to the bound of the search, and the library warns
    frame = law_table(seeds=2).with_columns(
        loss=30.0 * pl.col("flops") ** -0.2 * pl.col("recipe").rank("dense") * (1 + pl.col("seed") * 1e-3))
    runs = dd.from_frame(frame, recipe="recipe", size="size", metrics=["loss"], seed="seed", compute="flops")
    out = dd.evaluate(runs, predictors=["power law"], law_seeds="all")
    assert out.table["warned_fits"].sum() > 0
    assert any("at a bound" in w for w in out.info["fit_warnings"])
    assert not [w for w in recwarn if "at a bound" in str(w.message)]
    assert (out.table["decision_accuracy"] == 1.0).all()


def test_all_recipes_tied_at_the_target_is_a_user_error():
    frame = seeds_table().with_columns(loss=pl.when(pl.col("size") == "big").then(1.0).otherwise(pl.col("loss")))
    runs = dd.from_frame(frame, recipe="data", size="size", metrics=["loss"], seed="seed", compute="flops")
    with pytest.raises(UserError, match="every recipe ties at the target"):
        dd.evaluate(runs)
