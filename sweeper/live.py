"""The live view of a running study: Rich on a terminal, one plain line per finished trial otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray import tune
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sweeper.fmt import fmt_duration, fmt_num
from sweeper.progress import StudyProgress, TrialRecord

_STATUS_STYLE = {"running": "cyan", "done": "green", "error": "red", "pruned": "yellow"}


def _config_text(config: dict[str, Any], width: int = 60) -> str:
    """``key=value`` pairs cut to ``width``; a mixture shows its domains by name (``mix=code .07 docs .93``)."""
    parts = []
    for key, value in config.items():
        if isinstance(value, dict):
            value = " ".join(f"{name} {_share(w)}" for name, w in value.items())
        parts.append(f"{key}={fmt_num(value)}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def render(progress: StudyProgress, rows: int = 12) -> Group:
    """The live view as a Rich renderable: header, counts, best so far, and the latest trials."""
    counts = progress.counts()
    metric_key = f"m.{progress.metric}"
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text(f"study {progress.name}", style="bold"),
        Text(f"{progress.finished}/{progress.total_trials} trials"),
        Text(f"elapsed {fmt_duration(progress.elapsed)}"),
        Text(f"ETA {fmt_duration(progress.eta_s())}"),
    )
    head.add_row(*(Text(f"{s} {counts[s]}", style=_STATUS_STYLE[s]) for s in ("running", "done", "error", "pruned")))
    cost_cap = f" / {fmt_num(progress.max_cost)}" if progress.max_cost else ""
    head.add_row(
        Text(f"cost {fmt_num(progress.cost_spent)}{cost_cap} ({progress.cost_unit})"),
        Text(f"FLOPs {fmt_num(progress.flops_spent)}"),
        Text(f"trial time {fmt_duration(progress.wall_spent)}"),
        Text(""),
    )
    best = progress.best()
    best_text = (
        Text(f"best {progress.metric} = {fmt_num(progress.best_value())}  [{best.trial_id}]  "
             f"{_config_text(best.config, 90)}", style="bold green")
        if best else Text("best: none finished yet", style="dim")
    )
    table = Table(expand=True, show_edge=False, pad_edge=False)
    for col in ("trial", "status", "config", "step", progress.metric, "cost"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    latest = sorted(progress.trials.values(), key=lambda t: t.started)[-rows:]
    for t in latest:
        table.add_row(
            t.trial_id,
            Text(t.status + (f" ({t.error[:30]})" if t.error and t.status == "error" else ""),
                 style=_STATUS_STYLE.get(t.status, "")),
            _config_text(t.config),
            fmt_num(t.step),
            fmt_num(t.metrics.get(metric_key)),
            fmt_num(t.cost),
        )
    parts = [Panel(head, title="sweeper", border_style="blue"), best_text]
    if progress.warning:
        parts.append(Text(progress.warning, style="bold red"))
    return Group(*parts, table)


def _share(weight: Any) -> str:
    """A mixture weight in two decimals without the leading zero (``.07``, ``1``)."""
    w = float(weight)
    return "1" if w >= 0.995 else f"{w:.2f}".lstrip("0")


def plain_line(progress: StudyProgress, trial: TrialRecord) -> str:
    """One line for a finished trial, for logs and pipes."""
    value = trial.metrics.get(f"m.{progress.metric}")
    parts = [
        f"[{progress.finished}/{progress.total_trials}]",
        trial.trial_id,
        trial.status,
        f"{progress.metric}={fmt_num(value)}",
        f"step={fmt_num(trial.step)}",
        f"cost={fmt_num(trial.cost)}",
        f"wall_s={trial.wall_s:.2f}",
        _config_text(trial.config, 120),
    ]
    if trial.error:
        parts.append(f"error={trial.error}")
    best = progress.best_value()
    if best is not None:
        parts.append(f"best={fmt_num(best)}")
    return " ".join(parts)


class LiveView(tune.Callback):
    """Shows a study's progress; Rich ``Live`` on a terminal, plain lines when ``stream`` is not one."""

    def __init__(self, progress: StudyProgress, stream: TextIO | None = None, refresh_s: float = 0.25,
                 rich: bool | None = None):
        self.progress = progress
        self.stream = stream or sys.stdout
        self.rich = self.stream.isatty() if rich is None else rich
        self.refresh_s = refresh_s
        self._live: Live | None = None
        self._last = 0.0
        self._printed: set[str] = set()
        self._warned: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; streams and the Live display stay behind.
        state = self.__dict__.copy()
        state.update(stream=None, _live=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stream = sys.stdout

    def start(self) -> None:
        if self.rich:
            console = Console(file=self.stream)
            self._live = Live(render(self.progress), console=console, auto_refresh=False, transient=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(render(self.progress), refresh=True)
            self._live.stop()
            self._live = None

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._live is not None and (force or now - self._last >= self.refresh_s):
            self._live.update(render(self.progress), refresh=True)
            self._last = now

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._refresh()
        warning = self.progress.warning
        if not self.rich and warning and warning != self._warned:
            print(f"[{self.progress.name}] {warning}", file=self.stream, flush=True)
        self._warned = warning

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial.trial_id)

    def _finished(self, trial_id: str) -> None:
        if self.rich:
            self._refresh(force=True)
            return
        record = self.progress.trials.get(trial_id)
        if record is not None and trial_id not in self._printed:
            self._printed.add(trial_id)
            print(plain_line(self.progress, record), file=self.stream, flush=True)
