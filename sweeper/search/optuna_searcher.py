"""A `Proposer` over Optuna's ask/tell interface (Ray Tune drives it through `sweeper.search.tune`).

The Optuna study lives in a ``JournalStorage`` file inside the results folder, so it survives a restart
and ``optuna-dashboard`` or ``optuna.load_study`` can open it. Trials stopped early by a scheduler are told
to Optuna as PRUNED (after their intermediate values were reported), failed ones as FAIL.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from sweeper import space as space_mod
from sweeper.plan import RunPlan
from sweeper.search.base import Proposer
from sweeper.space import Param
from sweeper.spec import is_finite_number

STORAGE_FILE = "optuna.journal"


class SyncLaterJournal(JournalFileBackend):
    """Optuna's journal file, appended without an fsync per record; ``sync()`` makes it durable.

    Optuna's own backend fsyncs every record (ask, each parameter, each report, tell): tens of
    milliseconds per trial on the driver's critical path. Records written here reach the operating
    system at once (a killed process loses nothing); the engine calls ``sync()`` every few seconds, with
    the Parquet flush, so a power failure loses at most those seconds. The file format is Optuna's, so
    ``optuna.load_study`` and optuna-dashboard read it as usual.
    """

    def __init__(self, file_path: str):
        self._write_lock = JournalFileOpenLock(file_path)
        super().__init__(file_path, lock_obj=self._write_lock)
        self._dirty = False

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        self._write_lock.acquire()
        try:
            with open(self._file_path, "ab") as fh:
                fh.write(text.encode("utf-8"))
        finally:
            self._write_lock.release()
        self._dirty = True

    def sync(self) -> None:
        """fsync the journal if records were appended since the last sync."""
        if self._dirty:
            with open(self._file_path, "rb") as fh:
                os.fsync(fh.fileno())
            self._dirty = False


def open_journal(results_dir: str | Path) -> tuple[JournalStorage, SyncLaterJournal]:
    """The study's Optuna storage (a journal file in the results folder) and its file backend."""
    path = Path(results_dir) / STORAGE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = SyncLaterJournal(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        return JournalStorage(backend), backend


class OptunaProposer(Proposer):
    """Propose configs with any Optuna sampler; tell Optuna what each trial reported.

    Optuna's journal in the results folder is the sampler's memory; the state this proposer saves is only
    which Tune trial is which Optuna trial. It pickles (Ray Tune saves its search algorithm with the
    experiment) without the live Optuna objects, some of which hold locks: unpickled, it reopens the
    journal and builds its sampler again with ``sampler_factory``.
    """

    def __init__(
        self,
        space: dict[str, Param],
        sampler_factory: Callable[[], optuna.samplers.BaseSampler],
        plan: RunPlan,
        results_dir: str | Path,
        study_name: str,
    ):
        self._space = space
        self._sampler_factory = sampler_factory
        self._plan = plan
        self._results_dir = Path(results_dir)
        self._study_name = study_name
        self._metrics = [o.metric for o in plan.objectives]
        self._directions = ["minimize" if o.mode == "min" else "maximize" for o in plan.objectives]
        self._keys = plan.objective_keys
        self._multi = len(self._keys) > 1
        self._live: dict[str, optuna.Trial] = {}
        self._steps_told: dict[str, set[int]] = {}
        self._open()

    def _open(self) -> None:
        storage, self._journal = open_journal(self._results_dir)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(study_name=self._study_name, storage=storage,
                                         sampler=self._sampler_factory(), directions=self._directions,
                                         load_if_exists=True)
        self.study.set_user_attr("metrics", self._metrics)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_live"] = {k: t.number for k, t in self._live.items()}
        for key in ("study", "_journal"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        live = state.pop("_live")
        self.__dict__.update(state)
        self._open()
        self._live = self._trials_by_number(live)

    def _trials_by_number(self, numbers: dict[str, int]) -> dict[str, optuna.Trial]:
        by_number = {t.number: t._trial_id for t in self.study.get_trials(deepcopy=False)}
        return {k: optuna.Trial(self.study, by_number[n]) for k, n in numbers.items() if n in by_number}

    def suggest(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask()
        trial.set_user_attr("tune_trial_id", trial_id)
        self._live[trial_id] = trial
        return space_mod.ask(trial, self._space)

    def observe(self, trial_id: str, result: Mapping[str, Any] | None, *, final: bool, error: bool = False) -> None:
        if final:
            self._complete(trial_id, result, error)
            return
        trial = self._live.get(trial_id)
        value = (result or {}).get(self._keys[0])
        if trial is None or self._multi or not is_finite_number(value):
            return
        step = int(result.get("step", result.get("training_iteration", 0)))
        told = self._steps_told.setdefault(trial_id, set())
        if step not in told:
            told.add(step)
            trial.report(float(value), step)

    def _complete(self, trial_id: str, result: Mapping[str, Any] | None, error: bool) -> None:
        trial = self._live.pop(trial_id, None)
        self._steps_told.pop(trial_id, None)
        if trial is None:
            return
        if error or not result:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        values = [result.get(k) for k in self._keys]
        if not all(is_finite_number(v) for v in values):
            self.study.tell(trial, state=TrialState.FAIL)
        elif self._plan.finished_run(dict(result)):
            self.study.tell(trial, [float(v) for v in values])
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

    def requeue_unfinished(self) -> int:
        """After a crash: fail the Optuna trials left RUNNING and enqueue their configs, so the next
        trials rerun them. Returns how many were requeued."""
        stale = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for trial in stale:
            self.study.tell(trial.number, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number})
        self._live, self._steps_told = {}, {}
        return len(stale)

    def sync(self) -> None:
        """Make the searcher's state durable (called by the engine with every Parquet sync)."""
        if self._journal is not None:
            self._journal.sync()

    def state_dict(self) -> dict[str, Any]:
        """Which Tune trial is which Optuna trial (the rest is in Optuna's journal)."""
        return {"live": {k: t.number for k, t in self._live.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._live = self._trials_by_number({str(k): int(v) for k, v in state.get("live", {}).items()})
