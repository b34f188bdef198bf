"""The cost-aware proposer behind the Tune adapter: direct calls, and inside a real Tuner with ASHA off and on."""

from __future__ import annotations

import math

import pytest
from ray.tune.search import Searcher

from sweeper.errors import UserError
from sweeper.search.cost_aware import CostAwareProposer, Dimension
from sweeper.search.tune import TuneSearcher

DIMS = [Dimension("N", 1e7, 1e9, "log"), Dimension("D", 1e8, 1e10, "log"), Dimension("lr", 1e-4, 1e-1, "log")]


def cost_aware(dims, *, max_trials=None, state_path=None, resume=False, **options) -> TuneSearcher:
    """The cost-aware proposer as the engine hands it to Tune."""
    searcher = TuneSearcher(CostAwareProposer(dims, **options), max_trials=max_trials, state_path=state_path)
    if resume:
        searcher.resume()
    return searcher


def law_loss(N: float, D: float, lr: float) -> float:
    lr_star = 3e-3 * (N / 1e8) ** -0.25
    return 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28 + 0.05 * (math.log(lr) - math.log(lr_star)) ** 2


def result_of(config: dict, **extra) -> dict:
    return {"m.loss": law_loss(config["N"], config["D"], config["lr"]), "cost": 6 * config["N"] * config["D"], **extra}


def test_max_trials_errors_removed_trials_and_save_restore(tmp_path):
    searcher = cost_aware(DIMS, max_trials=12, seed=1, n_candidates=300)
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        if i == 3:
            searcher.on_trial_complete(f"t{i}", None, error=True)  # crashed before reporting
        elif i == 4:
            searcher.on_trial_complete(f"t{i}", None)  # removed before it ran: forgotten, not a failure
        else:
            searcher.on_trial_complete(f"t{i}", result_of(config))
    searcher.on_trial_complete("never-suggested", {"m.loss": 1.0, "cost": 1.0})  # ignored
    running = searcher.suggest("t8")
    assert [o["status"] for o in searcher.proposer.search.observations()].count("failed") == 1
    assert len(searcher.proposer.search.observations()) == 7

    path = tmp_path / "searcher-state.json"
    searcher.save(str(path))
    restored = cost_aware(DIMS, max_trials=12, seed=1, n_candidates=300)
    restored.restore(str(path))
    for s in (searcher, restored):  # the trial in flight at save time completes after the restore
        s.on_trial_complete("t8", result_of(running))
    suggestions = {id(s): [s.suggest(f"u{i}") for i in range(3)] for s in (searcher, restored)}
    assert suggestions[id(searcher)] == suggestions[id(restored)]
    assert searcher.suggest("u3") == Searcher.FINISHED  # 12 suggestions made


def test_state_path_sync_and_resume_as_a_new_run(tmp_path):
    path = tmp_path / "results" / "cost_aware.json"
    first = cost_aware(DIMS, max_trials=3, seed=0, state_path=path)
    configs = [first.suggest(f"a{i}") for i in range(3)]
    assert first.suggest("a3") == Searcher.FINISHED
    for i in range(2):
        first.on_trial_complete(f"a{i}", result_of(configs[i]))
    first.sync()  # a2 is still running when the process dies
    mtime = path.stat().st_mtime_ns
    first.sync()  # nothing changed: nothing written
    assert path.stat().st_mtime_ns == mtime

    second = cost_aware(DIMS, max_trials=2, seed=0, state_path=path, resume=True)
    assert len(second.proposer.search.observations()) == 2
    assert second.proposer.search.state_dict()["pending"] == {}  # a2 never reports to this process
    second.on_trial_complete("a2", result_of(configs[2]))  # unknown here: ignored
    assert second.suggest("b0") != Searcher.FINISHED and second.suggest("b1") != Searcher.FINISHED
    assert second.suggest("b2") == Searcher.FINISHED  # max_trials counts this run's suggestions
    fresh = cost_aware(DIMS, seed=0, state_path=tmp_path / "absent.json", resume=True)
    assert fresh.proposer.search.observations() == []


def test_complete_key_tells_scheduler_stopped_trials_from_finished_ones():
    searcher = cost_aware(DIMS, complete_key="done_training", seed=0)
    a, b, e = searcher.suggest("a"), searcher.suggest("b"), searcher.suggest("e")
    searcher.on_trial_complete("a", result_of(a, done_training=True))
    searcher.on_trial_complete("b", result_of(b))  # stopped by ASHA: no completion mark in its last result
    # A trial whose metric came in an earlier (evaluation) report than its last one keeps that value.
    searcher.on_trial_result("e", result_of(e))
    searcher.on_trial_complete("e", {"cost": 1e18, "step": 7})
    assert [o["status"] for o in searcher.proposer.search.observations()] == ["ok", "pruned", "pruned"]
    assert searcher.proposer.search.observations()[-1]["metric"] == result_of(e)["m.loss"]
    assert searcher.proposer.search.observations()[-1]["cost"] == 1e18
    searcher.suggest("c")
    with pytest.raises(UserError, match="'cost'"):
        searcher.on_trial_complete("c", {"m.loss": 3.0})
    with pytest.raises(UserError, match=r"search.options: cost_aware has no option\(s\) \['radious'\]"):
        cost_aware(DIMS, radious=0.2)


def trainable(config: dict) -> None:
    """A 'training run' whose loss falls towards the analytic law as tokens are consumed."""
    from ray import tune

    steps = 4
    for step in range(1, steps + 1):
        frac = step / steps
        loss = law_loss(config["N"], config["D"] * frac, config["lr"])
        cost = 6 * config["N"] * config["D"] * frac
        tune.report({"m.loss": loss, "cost": cost, "step": step, "final": step == steps})


@pytest.mark.slow
def test_inside_a_real_tuner_with_fifo_and_with_asha(ray_session, tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    asha = ASHAScheduler(time_attr="step", max_t=4, grace_period=1)
    for name, scheduler, n_trials in [("fifo", None, 6), ("asha", asha, 8)]:
        searcher = cost_aware(DIMS, max_trials=n_trials, complete_key="final", seed=0, n_candidates=300)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric="m.loss",
                mode="min",
                num_samples=20,  # more than max_trials: the searcher says when it is finished
                max_concurrent_trials=2,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
        )
        results = tuner.fit()
        assert len(results) == n_trials and not results.errors
        observed = searcher.proposer.search.observations()
        assert len(observed) == n_trials
        statuses = {o["status"] for o in observed}
        assert statuses == {"ok"} if scheduler is None else "pruned" in statuses
        for o in observed:
            assert 1e7 <= o["config"]["N"] <= 1e9 and 1e-4 <= o["config"]["lr"] <= 1e-1
        best = results.get_best_result(metric="m.loss", mode="min")
        assert best.metrics["m.loss"] == min(o["metric"] for o in observed)
        assert list((tmp_path / name).glob("searcher-state-*.pkl"))  # Tune checkpointed the searcher
