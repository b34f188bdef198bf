"""The live view: counts, best so far, ETA and cost on a terminal; plain lines otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from sweeper.fmt import fmt_duration
from sweeper.live import LiveView, plain_line, render
from sweeper.progress import StudyProgress, TrialRecord
from tests.helpers import run


def _progress() -> StudyProgress:
    progress = StudyProgress(name="demo", metric="loss", mode="min", total_trials=10, max_cost=1e18)
    progress.started -= 60  # a minute in
    specs = [("a", "done", 3.2), ("b", "pruned", 4.0), ("c", "error", None), ("d", "running", 3.9), ("e", "done", 2.9)]
    for i, (tid, status, loss) in enumerate(specs):
        rec = TrialRecord(tid, {"lr": 0.001 * (i + 1), "mix": {"code": 0.5, "prose": 0.5}}, status=status,
                          step=10, flops=1e16, wall_s=2.0, cost=1e16)
        if loss is not None:
            rec.metrics["m.loss"] = loss
        if status == "error":
            rec.error = "RuntimeError: diverged"
        progress.trials[tid] = rec
    return progress


def test_render_shows_counts_best_eta_and_cost():
    progress = _progress()
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(render(progress))
    text = console.export_text()
    for expected in ("study demo", "4/10 trials", "running 1", "done 2", "error 1", "pruned 1",
                     "best loss = 2.9", "[e]", "cost 5e+16 / 1e+18 (flops)", "ETA", "diverged"):
        assert expected in text, expected
    assert progress.best().trial_id == "e"
    # 4 finished in 60 s -> 6 left at 15 s each
    assert progress.eta_s() == pytest.approx(90, rel=0.05)
    assert fmt_duration(90) == "1:30"


def test_best_so_far_on_a_builtin_column():
    """A study whose first metric is a built-in column (``cost`` first in a multi-objective study) still has a
    best so far: the column comes from the trial's own fields, not from the workload's metrics."""
    progress = _progress()
    progress.metric = "cost"
    progress.trials["e"].cost = 5e15
    assert progress.best().trial_id == "e" and progress.best_value() == 5e15
    console = Console(record=True, width=140, file=io.StringIO())
    console.print(render(progress))
    assert "best cost = 5e+15" in console.export_text()


def test_plain_line_per_finished_trial():
    progress = _progress()
    line = plain_line(progress, progress.trials["c"])
    assert line.startswith("[4/10] c error") and "error=RuntimeError: diverged" in line and "best=2.9" in line


@pytest.mark.usefixtures("ray_session")
def test_plain_lines_when_not_a_terminal(tmp_path):
    outcome = run(tmp_path, budget={"trials": 3, "concurrent": 2})
    lines = (tmp_path / "live.log").read_text().strip().splitlines()
    assert len(lines) == 3 and all(" done loss=" in line for line in lines)
    assert outcome.counts["done"] == 3


@pytest.mark.usefixtures("ray_session")
def test_rich_view_draws_while_running(tmp_path):
    from sweeper.engine import run_study
    from sweeper.spec import parse_study
    from tests.helpers import study_data

    stream = io.StringIO()
    study = parse_study(study_data(budget={"trials": 3, "concurrent": 2}))
    run_study(study, tmp_path / "results", stream=stream, rich=True)
    out = stream.getvalue()
    assert "study t" in out and "3/3 trials" in out and "best loss" in out
    assert isinstance(LiveView(_progress(), stream=io.StringIO()).rich, bool)


def test_a_mixture_shows_its_domains_by_name_cut_to_the_width():
    from sweeper.live import _config_text

    mix = {"mix": {"code": 0.07, "docstrings": 0.06, "arith": 0.7, "records": 0.17}, "lr": 0.001}
    assert _config_text(mix, 120) == "mix=code .07 docstrings .06 arith .70 records .17 lr=0.001"
    assert _config_text({"mix": {"web": 1.0, "code": 0.0}}, 120) == "mix=web 1 code .00"
    short = _config_text(mix, 30)
    assert len(short) == 30 and short.endswith("…") and short.startswith("mix=code .07")
