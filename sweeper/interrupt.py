"""Ctrl-C and SIGTERM during a run: stop at a safe point, keep every reported row, exit 130 (or 143).

Ray Tune's own SIGINT handler ends the run quietly and returns as if it had finished, so a script
`sweeper run s.yaml && sweeper fit ...` would carry on with half a study. Here the signal is noted and
raised as ``Interrupted`` at the next safe point of the Tune loop (between events, never inside a
Parquet write); outside the loop, and on a second signal, at once. Everything above it (the recorder's
flush, the embedded Ray's shutdown) runs in ``finally`` blocks.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``exit_code`` is 128 + the signal's number."""

    def __init__(self, signum: int, results_dir: Path | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.results_dir = results_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Installs handlers for SIGINT and SIGTERM for the life of a run (main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reinstall(self) -> None:
        """Take the signals back after a library replaced the handlers (Ray's core installs its own
        SIGTERM handler, which exits at once, when a driver connects)."""
        if self._previous:
            for sig in SIGNALS:
                signal.signal(sig, self._handle)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune pickles callbacks that refer to this
        return {"signum": self.signum, "_deferred": False, "_previous": {}}

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deferred and self.signum is None:
            self.signum = signum
            return
        raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside this block a first signal only sets ``signum``; ``check()`` raises it."""
        # Tune would install its own SIGINT handler (which swallows the interrupt); keep ours.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal arrived (call at a safe point)."""
        if self.signum is not None:
            raise Interrupted(self.signum)
