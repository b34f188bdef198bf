"""The RegMix mixture sampler as a `Proposer`: its i-th random suggestion depends only on (seed, i), so a
study and its seed always give the same mixtures, and a restored proposer continues where the saved one
stopped. The sampling itself is `sweeper.maths.simplex`; Ray Tune drives it through `sweeper.search.tune`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from sweeper.errors import UserError
from sweeper.maths.simplex import DirichletOptions, as_mixture, make_options, normalize_prior, sample_mixtures
from sweeper.search.base import Proposer

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 also held max_trials and n_suggested, now counted by the Tune adapter


class DirichletProposer(Proposer):
    """Suggests ``{param: {domain: weight, ...}}`` from `sample_mixtures`.

    The prior (e.g. each domain's share of the available tokens) fixes the domains and their order.
    Fixed points (``points_to_evaluate`` or `add_points`: mixtures, or configs holding one under ``param``)
    are suggested first, in order; then random draws, the i-th of which depends only on (seed, i).
    It does not adapt to results; it keeps each finished trial's ``metric`` (when one is set) in
    ``results`` so that a driver can inspect them.
    """

    def __init__(self, prior: Mapping[str, float], param: str = "mix", *, seed: int = 0,
                 points_to_evaluate: Sequence[Mapping[str, Any]] = (), metric: str | None = None,
                 options: DirichletOptions | None = None, **option_values: Any):
        if not isinstance(prior, Mapping) or not prior:
            raise UserError("dirichlet: prior: expected a mapping {domain: share}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserError(f"dirichlet: seed: expected a non-negative integer, got {seed!r}")
        self.param = param
        self.domains: tuple[str, ...] = tuple(str(d) for d in prior)
        self.prior = dict(zip(self.domains, normalize_prior(prior).tolist(), strict=True))
        self.options = options if options is not None else make_options(option_values, "dirichlet")
        self.seed = int(seed)
        self.metric = metric
        self.n_random = 0
        self._queue: list[dict[str, float]] = []
        self._live: dict[str, dict[str, float]] = {}
        self.results: dict[str, float | None] = {}
        self.add_points(points_to_evaluate)

    def add_points(self, points: Sequence[Mapping[str, Any]]) -> None:
        """Queue fixed mixtures to evaluate before any further random draw (e.g. a hand-picked one)."""
        for i, point in enumerate(points):
            if not isinstance(point, Mapping):
                raise UserError(f"points_to_evaluate[{i}]: expected a mapping {{domain: weight}}, got {point!r}")
            inner = point.get(self.param, point)
            if not isinstance(inner, Mapping):
                raise UserError(f"points_to_evaluate[{i}].{self.param}: expected a mapping {{domain: weight}}")
            self._queue.append(as_mixture(inner, self.domains, f"points_to_evaluate[{i}]"))

    def draw(self, index: int) -> dict[str, float]:
        """The ``index``-th random mixture of this seed (pure: same seed and index, same mixture)."""
        row = sample_mixtures(self.prior_vector, 1, seed=(self.seed, index), options=self.options)[0]
        return dict(zip(self.domains, row.tolist(), strict=True))

    @property
    def prior_vector(self) -> np.ndarray:
        return np.array([self.prior[d] for d in self.domains])

    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self._queue:
            mixture = self._queue.pop(0)
        else:
            mixture = self.draw(self.n_random)
            self.n_random += 1
        self._live[trial_id] = mixture
        return {self.param: dict(mixture)}

    def observe(self, trial_id: str, result: Mapping[str, Any] | None, *, final: bool, error: bool = False) -> None:
        if not final or self._live.pop(trial_id, None) is None:
            return
        value = None
        if result and not error and self.metric and self.metric in result:
            value = float(result[self.metric])
        self.results[trial_id] = value

    def state_dict(self) -> dict[str, Any]:
        """The searcher's whole state as JSON-ready data."""
        return {"version": STATE_VERSION, "param": self.param, "prior": self.prior, "seed": self.seed,
                "options": asdict(self.options), "n_random": self.n_random,
                "queue": self._queue, "live": self._live, "results": self.results, "metric": self.metric}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state_dict` output (the prior and options saved there replace the current ones)."""
        if state.get("version") not in READABLE_VERSIONS:
            raise UserError(f"dirichlet searcher state: expected version {STATE_VERSION}, got {state.get('version')}")
        self.param = state["param"]
        self.domains = tuple(state["prior"])
        self.prior = {d: float(w) for d, w in state["prior"].items()}
        self.seed = int(state["seed"])
        self.options = DirichletOptions(**state["options"])
        self.n_random = int(state["n_random"])
        self._queue = [dict(m) for m in state["queue"]]
        self._live = {str(k): dict(v) for k, v in state["live"].items()}
        self.results = dict(state["results"])
        self.metric = state.get("metric")

    def requeue_unfinished(self) -> int:
        """After a crash: suggest the mixtures of trials that never finished again, first. Returns how many."""
        stale = list(self._live.values())
        self._queue = stale + self._queue
        self._live = {}
        return len(stale)
