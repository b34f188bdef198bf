"""Study -> Ray Tune ``Tuner``: local embedded Ray or an existing cluster, callbacks for Parquet and the view."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from sweeper.atomic import write_text_atomic
from sweeper.errors import UserError
from sweeper.folder import STUDY_COPY, check_results_path
from sweeper.interrupt import StopSignals
from sweeper.plan import RunPlan
from sweeper.progress import StudyProgress
from sweeper.spec import Study
from sweeper.store import ResultStore


@dataclass
class Outcome:
    """What a finished study run returns."""

    results_dir: Path
    progress: StudyProgress
    rows_written: int
    regmix: dict | None = None
    ladder: dict | None = None

    @property
    def counts(self) -> dict[str, int]:
        return self.progress.counts()


def default_results_dir(study: Study) -> Path:
    return Path("results") / study.name


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join ``address`` or start a quiet embedded Ray; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    cwd = os.getcwd()
    path = os.environ.get("PYTHONPATH", "")
    if cwd not in path.split(os.pathsep):  # workloads in the user's folder import in workers too
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, path) if p)
    kwargs = dict(
        include_dashboard=False if address is None else None,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        target = f"the Ray cluster at {address!r}" if address else "an embedded Ray"
        raise UserError(f"--address: cannot start or join {target}: {exc}") from None
    return True


def build_scheduler(study: Study, plan: RunPlan):
    """The trial scheduler the study asks for (early stopping on the first metric)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler


    spec = study.scheduler
    metric, mode = plan.primary.key, plan.primary.mode
    if spec.type == "asha":
        return ASHAScheduler(time_attr=spec.time_attr, metric=metric, mode=mode, max_t=spec.max_t,
                             grace_period=spec.grace, reduction_factor=spec.reduction, brackets=spec.brackets,
                             stop_last_trials=False)
    if spec.type == "hyperband":
        return HyperBandScheduler(time_attr=spec.time_attr, metric=metric, mode=mode, max_t=spec.max_t,
                                  reduction_factor=spec.reduction, stop_last_trials=False)
    return FIFOScheduler()


def _single_node() -> bool:
    """Whether Ray runs on one node, where trials may reuse each other's actors (faster for many short trials).
    On a cluster they do not: after a worker node dies, Tune can hand a trial's retries to cached actors that
    lived there, and the trial uses up its ``max_failures`` without ever running."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive")) <= 1


def _cost_stopper(progress: StudyProgress, max_cost: float | None):
    from ray import tune

    class CostBudget(tune.Stopper):
        """Stops the study once the cost spent reaches the budget's ``max_cost``."""

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return max_cost is not None and progress.cost_spent >= max_cost

    return CostBudget()


class _Quiet:
    """Silences Ray Tune's console logging (trial tracebacks, tables) while a study runs: failures are
    recorded in Parquet and shown by the live view instead."""

    LOGGERS = ("ray.tune", "ray.train", "ray.air")

    def __init__(self) -> None:
        self._levels = {name: logging.getLogger(name).level for name in self.LOGGERS}
        for name in self.LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def restore(self) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)


def run_study(
    study: Study,
    results_dir: str | Path | None = None,
    address: str | None = None,
    stream: TextIO | None = None,
    rich: bool | None = None,
    source: str = "<study>",
    resume: bool = False,
    fresh: bool = False,
    force: bool = False,
) -> Outcome:
    """Run a study with Ray Tune; every report lands in Parquet under ``results_dir``.

    A folder that already holds results is refused unless ``resume`` (continue: finished trials are
    kept, interrupted ones rerun, the searcher's state restored) or ``fresh`` (start over: sweeper's own
    files are deleted, and a folder of another study's results only with ``force``). SIGINT and SIGTERM
    stop the run at a safe point and raise ``Interrupted``; the embedded Ray is shut down however the run
    ends.
    """
    from sweeper.interrupt import Interrupted
    from sweeper.resume import StudyLock

    results = Path(results_dir) if results_dir is not None else default_results_dir(study)
    check_results_path(results)
    try:
        with StopSignals() as signals, StudyLock(results):
            return _run_locked(study, results, address, stream, rich, source, resume, fresh, force, signals)
    except Interrupted as exc:
        exc.results_dir = results
        raise


def _prepare_folder(study: Study, results: Path, resume: bool, fresh: bool, force: bool = False) -> list[str]:
    """Make ``results`` ready for this run: refuse a folder of earlier results unless resuming (checked
    against the study as first run) or starting over; write the study's copy and fingerprint."""
    from sweeper.folder import check_resumable, clear_own_files, write_fingerprint
    from sweeper.resume import has_results

    data = study.model_dump(mode="json", by_alias=True)
    notes: list[str] = []
    continuing = has_results(results) and resume
    if has_results(results):
        if fresh:
            clear_own_files(results, study.name, other_study=force)
        elif resume:
            notes = check_resumable(results, data)
        else:
            raise UserError(
                f"{results}: already holds results of a study; continue it with --resume (or `sweeper resume "
                f"{results}`), start over with --fresh, or write elsewhere with --results DIR"
            )
    elif fresh:  # a folder with no rows may still hold an earlier run's other files
        clear_own_files(results, study.name, other_study=force)
    results.mkdir(parents=True, exist_ok=True)
    if not continuing:  # the fingerprint is of the study that ran the folder's trials
        write_fingerprint(results, data)
    write_text_atomic(results / STUDY_COPY, yaml.safe_dump(data, sort_keys=False))
    return notes


def prepare_workload(study: Study) -> None:
    """Let the workload check the study's params and build its data once, before any trial starts: a
    workload module may define ``prepare(config)`` (e.g. tinylm builds its token caches there and turns a
    missing file or an empty domain into a clear error)."""
    prepare = getattr(study.workload_module(), "prepare", None)
    if callable(prepare):
        prepare(dict(study.params))


def _run_locked(study: Study, results: Path, address: str | None, stream: TextIO | None, rich: bool | None,
                source: str, resume: bool, fresh: bool, force: bool, signals: StopSignals) -> Outcome:
    from sweeper.guard import check_resources

    if study.regmix is not None:
        from sweeper.regmix import check_scale

        check_scale(study, source)
    if study.laws is not None:
        from sweeper.ladder import check_ladder

        check_ladder(study, source)
    _prepare_folder(study, results, resume, fresh, force)
    prepare_workload(study)
    out = stream or sys.stdout
    started_ray = False
    try:
        started_ray = start_ray(address)
        signals.reinstall()
        check_resources(study.resources.cpu, study.resources.gpu, source)
        outcome = run_phase(study, results, out, rich, source, resume, phase="search", signals=signals)

        def run_follow_up(follow_up: Study, phase: str) -> Outcome:
            return run_phase(follow_up, results, out, rich, source, True, phase=phase, signals=signals)

        if study.regmix is not None:
            from sweeper.regmix import run_regmix

            outcome.regmix = run_regmix(study, results, out, run_phase=run_follow_up)
        if study.laws is not None:
            from sweeper.ladder import run_ladder

            outcome.ladder = run_ladder(study, results, out, run_phase=run_follow_up)
        return outcome
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def run_phase(study: Study, results: Path, out: TextIO, rich: bool | None, source: str, resume: bool,
              phase: str = "search", signals: StopSignals | None = None) -> Outcome:
    """Run one phase of a study (the sweep, or a follow-up such as RegMix validation) in ``results``,
    on a Ray that is already up; rows carry ``phase``. A signal noted by ``signals`` stops the phase at
    the next step of the Tune loop, after every reported row is written."""
    from ray import tune

    from sweeper.guard import RunGuard
    from sweeper.live import LiveView
    from sweeper.recorder import Recorder
    from sweeper.resume import close_interrupted
    from sweeper.search.build import build_searcher, default_trials
    from sweeper.trial import make_trainable

    store = ResultStore(results, study.name, phase=phase)
    prior = close_interrupted(results, store, phase=phase)
    total = default_trials(study)
    remaining = max(total - prior.n_finished, 0)
    progress = StudyProgress(
        name=study.name if phase == "search" else f"{study.name} ({phase})", metric=study.search.metrics[0],
        mode=study.search.modes[0], total_trials=total, max_cost=study.budget.max_cost, cost_unit=study.budget.cost,
    )
    progress.add_finished(prior.finished)
    if remaining == 0 or (study.budget.max_cost is not None and progress.cost_spent >= study.budget.max_cost):
        print(f"{progress.name}: nothing left to run ({prior.n_finished}/{total} trials finished)", file=out)
        return Outcome(results, progress, 0)

    plan = RunPlan.from_study(study)
    searcher = build_searcher(study, results, source, max_trials=remaining, resume=resume,
                              study_name=None if phase == "search" else f"{study.name}.{phase}", plan=plan)
    syncs = [searcher.sync]
    recorder = Recorder(progress, store, plan, syncs=syncs)
    view = LiveView(progress, stream=out, rich=rich)
    signals = signals or StopSignals()
    guard = RunGuard(signals, progress, study.resources.cpu, study.resources.gpu, recorder)

    trainable = make_trainable(plan)
    trainable = tune.with_resources(trainable, {"cpu": study.resources.cpu, "gpu": study.resources.gpu})
    ray_dir = results / "ray"
    run_name = f"{phase}-{len(list(ray_dir.glob(f'{phase}-*'))) + 1}" if ray_dir.exists() else f"{phase}-1"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=build_scheduler(study, plan),
            num_samples=remaining,
            max_concurrent_trials=study.budget.concurrent,
            time_budget_s=study.budget.max_wall_s,
            reuse_actors=_single_node(),
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=str(ray_dir.resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            stop=_cost_stopper(progress, study.budget.max_cost),
            callbacks=[recorder, view, guard],
        ),
    )
    quiet = _Quiet()
    view.start()
    try:
        with signals.deferred():
            tuner.fit()
    finally:
        view.stop()
        quiet.restore()
        recorder.flush(sync=True)
        store.compact()
    return Outcome(results, progress, store.rows_written)
