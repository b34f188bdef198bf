"""``sweeper report``: the page of a real tiny study, drawn by a real headless Chromium when one is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from sweeper.cli import main
from sweeper.store import ResultStore
from tests.helpers import study_data

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


def _render(page) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and the browser's console log, from headless Chromium."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error|error", line)]


@pytest.fixture(scope="module")
def cost_aware_study(tmp_path_factory, ray_session):
    """A real study run through the CLI, which writes its report at the end."""
    folder = tmp_path_factory.mktemp("report")
    data = study_data(search={"algo": "cost_aware", "metric": "loss", "mode": "min", "cost": "flops"},
                      budget={"trials": 10, "concurrent": 2})
    (folder / "study.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(folder / "study.yaml"), "--results", str(folder / "results"), "--plain"]) == 0
    return folder / "results"


def test_run_writes_the_report_with_every_section_its_folder_supports(cost_aware_study, capsys):
    page = cost_aware_study / "report.html"
    assert page.is_file()
    text = page.read_text()
    assert 1e6 < len(text) < 8e6  # plotly.js inline: a few MB, nothing fetched at view time
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in text
    page_itself = text.replace(get_plotlyjs(), "")
    assert "<script src=" not in page_itself and "http" not in page_itself.replace("http://www.w3.org", "")
    for key in ("study", "curves", "parameters", "pareto"):
        assert f'<section id="{key}">' in text
    for key in ("regmix", "laws", "decide"):  # this folder holds none of their outputs
        assert f'<section id="{key}">' not in text
    assert main(["report", str(cost_aware_study), "-o", str(cost_aware_study / "again.html")]) == 0
    assert "wrote" in capsys.readouterr().out and (cost_aware_study / "again.html").is_file()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (CI installs Debian's chromium)")
def test_the_page_loads_in_a_browser_without_errors_and_draws_every_chart(cost_aware_study):
    dom, log = _render(cost_aware_study / "report.html")
    assert not _console_errors(log), _console_errors(log)
    charts = re.findall(r'data-chart="([\w-]+)"', dom)
    assert {"curves-0", "parameters-0", "parameters-1", "pareto-0"} <= set(charts)
    for chart in charts:  # plotly drew each one: its div holds the rendered SVG
        start = dom.index(f'data-chart="{chart}"')
        end = dom.find('data-chart="', start + 1)
        assert 'class="main-svg"' in dom[start:end if end > 0 else None], chart


def test_a_failed_study_still_has_a_page_that_says_what_is_missing(tmp_path):
    store = ResultStore(tmp_path, "broken")
    store.append({"trial_id": "t1", "row_kind": "summary", "status": "error", "attempt": 0,
                  "error": "RuntimeError: out of memory"})
    store.flush()
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "out of memory" in text and "No reports of m.loss yet." in text
    assert "Needs at least 3 finished trials" in text
    if CHROMIUM is not None:
        dom, log = _render(tmp_path / "report.html")
        assert not _console_errors(log) and "out of memory" in dom


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a study results folder" in err
    store = ResultStore(tmp_path, "s")
    store.append({"trial_id": "t1", "row_kind": "summary", "status": "done", "attempt": 0, "m.loss": 1.0})
    store.flush()
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "missing" / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such directory" in err


def test_the_laws_section_charts_a_law_in_n_and_d_and_a_power_law_in_compute(tmp_path):
    import numpy as np

    from sweeper.laws.data import LawData
    from sweeper.laws.power import fit_law
    from sweeper.report.sections import laws

    n = np.repeat(np.geomspace(1e6, 1e8, 5), 3)
    d = n * np.tile([10.0, 20.0, 40.0], 5)
    loss = 1.7 + 400 / n ** 0.34 + 410 / d ** 0.28
    data = LawData(loss=loss, n=n, d=d, c=6 * n * d, run=np.array([f"r{i}" for i in range(n.size)]))
    (tmp_path / "analysis").mkdir()
    fit_law(data, "chinchilla", bootstrap=10).save(tmp_path / "analysis" / "nd.json")
    fit_law(data, "power", bootstrap=10).save(tmp_path / "analysis" / "compute.json")
    fit_law(data, "power", "tokens", bootstrap=10).save(tmp_path / "analysis" / "tokens.json")
    section = laws(tmp_path)
    titles = [chart.layout.title.text for chart in section.charts]
    assert titles == ["compute.json: L = E + A * flops^-alpha with its bootstrap band",  # files in name order
                      "nd.json: the compute-optimal loss L*(C) with its bootstrap band"]  # tokens: no compute axis
    band, line = (np.array(trace.y) for trace in section.charts[0].data[:2])
    hi, lo = band[:60], band[60:][::-1]  # the band is drawn up its upper bound and back down its lower
    assert np.all(lo <= line) and np.all(line <= hi) and np.all(hi > lo)


def test_the_laws_section_says_which_points_a_fit_window_left_out(tmp_path):
    import numpy as np

    from sweeper.laws.data import LawData
    from sweeper.laws.power import fit_law
    from sweeper.report.sections import laws

    n = np.repeat(np.geomspace(1e6, 1e8, 5), 2)
    d = n * np.tile([10.0, 40.0], 5)
    data = LawData(loss=1.7 + 400 / n ** 0.34 + 410 / d ** 0.28, n=n, d=d, c=6 * n * d,
                   run=np.array([f"r{i}" for i in range(n.size)]))
    (tmp_path / "analysis").mkdir()
    fit_law(data, "chinchilla", bootstrap=5, window={"by": "n", "from": 1e6 * 10 ** 0.5, "share": 0.25,
                                                     "points_dropped": 2}).save(tmp_path / "analysis" / "w.json")
    text = " ".join(laws(tmp_path).paragraphs)
    assert "(8 points, 8 runs; 2 points below n 3.162e+06 left out by backtest)" in text
