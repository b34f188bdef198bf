"""One Ray Tune ``Searcher`` for every `sweeper.search.base.Proposer`, and one way to persist it.

The adapter counts this run's suggestions against ``max_trials`` (then answers ``Searcher.FINISHED``),
hands every report and every end of a trial to the proposer, and writes ``{"asked": n, "proposer":
state_dict()}`` to ``state_path`` when `sync` is called and something changed (atomically, fsynced).
Tune's own experiment checkpoints use the same JSON through `save` and `restore`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from sweeper.atomic import write_text_atomic
from sweeper.errors import UserError
from sweeper.search.base import Proposer

STATE_FILE = "searcher-state.json"


class TuneSearcher(Searcher):
    """Ray Tune's face of a `Proposer`."""

    def __init__(self, proposer: Proposer, *, max_trials: int | None = None, state_path: str | Path | None = None,
                 metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.proposer = proposer
        self.max_trials = max_trials
        self.state_path = Path(state_path) if state_path is not None else None
        self.asked = 0  # suggestions in this run
        self._dirty = False

    def resume(self) -> int:
        """Continue a crashed or stopped study from ``state_path`` (when it exists): the proposer's state is
        loaded and its unfinished trials handled by `Proposer.requeue_unfinished`; this run's count of
        suggestions starts again at zero. Returns how many trials were unfinished."""
        if self.state_path is not None and self.state_path.exists():
            self.proposer.load_state_dict(_read_state(self.state_path)["proposer"])
        stale = self.proposer.requeue_unfinished()
        self.asked = 0
        self._dirty = True
        return stale

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        # The space and the objectives come from the study; constants in Tune's param_space are merged by Tune.
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.max_trials is not None and self.asked >= self.max_trials:
            return Searcher.FINISHED
        config = self.proposer.suggest(trial_id)
        self.asked += 1
        self._dirty = True
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.proposer.observe(trial_id, result, final=False)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self.proposer.observe(trial_id, result, final=True, error=error)
        self._dirty = True

    def state(self) -> dict[str, Any]:
        return {"asked": self.asked, "proposer": self.proposer.state_dict()}

    def save(self, checkpoint_path: str) -> None:
        write_text_atomic(Path(checkpoint_path), json.dumps(self.state()))

    def restore(self, checkpoint_path: str) -> None:
        state = _read_state(Path(checkpoint_path))
        self.proposer.load_state_dict(state["proposer"])
        self.asked = int(state.get("asked", 0))

    def sync(self) -> None:
        """Make the search durable: the proposer's own store, and its state at ``state_path`` if it changed
        (the engine calls this with each Parquet sync)."""
        self.proposer.sync()
        if self.state_path is not None and self._dirty:
            write_text_atomic(self.state_path, json.dumps(self.state()), fsync=True)
            self._dirty = False


def _read_state(path: Path) -> dict[str, Any]:
    """A saved searcher state; files written before the adapter hold the proposer's state at top level."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the searcher's state ({exc})") from None
    if not isinstance(state, Mapping):
        raise UserError(f"{path}: expected a JSON object with the searcher's state")
    return dict(state) if "proposer" in state else {"asked": 0, "proposer": dict(state)}
