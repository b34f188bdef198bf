"""The one interface every search strategy implements, free of Ray.

A `Proposer` suggests a config for a trial, observes what the trial reported (intermediate reports and
its end), and can write its whole state as JSON-ready data and read it back. `sweeper.search.tune` adapts
any proposer to Ray Tune and keeps its state in the results folder by one path (``searcher-state.json``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any


class Proposer(ABC):
    """A search strategy: `suggest`, `observe`, `state_dict`, `load_state_dict`.

    The adapter counts suggestions against the study's budget; a proposer never has to. After a crash,
    a resumed study loads the saved state and calls `requeue_unfinished`: the proposer decides what
    becomes of the trials that were running (suggest them again, or forget them).
    """

    @abstractmethod
    def suggest(self, trial_id: str) -> dict[str, Any]:
        """The config for a new trial."""

    @abstractmethod
    def observe(self, trial_id: str, result: Mapping[str, Any] | None, *, final: bool, error: bool = False) -> None:
        """What a trial reported: an intermediate report (``final`` False), or its end (``final`` True; then
        ``result`` is its last report, None when it never ran, and ``error`` tells a failure)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The proposer's whole state as JSON-ready data."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state_dict` output."""

    def requeue_unfinished(self) -> int:
        """After a crash, decide what becomes of the trials that were running; returns how many there were."""
        return 0

    def sync(self) -> None:  # noqa: B027 - optional: most proposers keep no store of their own
        """Make durable a store the proposer keeps itself (Optuna's journal); its state_dict is saved for it."""
