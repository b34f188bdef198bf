"""The report page: every section's charts and tables in one HTML file, plotly.js inline (no network)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path

from sweeper.errors import UserError
from sweeper.results import StudyResults

REPORT_FILE = "report.html"
SEARCH = "search"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem;
     margin-top: 2.2rem; }
nav a { margin-right: 1rem; } table { border-collapse: collapse; margin: .6rem 1.5rem .6rem 0;
  display: inline-table; vertical-align: top; }
td, th { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; font-size: .9rem; }
th { background: #f5f5f5; } .chart { margin: 1rem 0; } .missing { color: #777; font-style: italic; }
@media print { nav { display: none; } .chart { break-inside: avoid; } body { margin: 0; max-width: none; } }
"""


def build_report(folder: str | Path) -> str:
    """The HTML of a study's report (a UserError when the folder holds no study)."""
    from plotly.offline import get_plotlyjs

    from sweeper.report import sections

    results = StudyResults(folder, check_files=True)
    path = results.folder
    metric, mode = results.objective()
    trials = results.trials(SEARCH)  # the sweep itself; follow-up phases (replicates, validation) are counted
    best = sections.best_trial(trials, metric, mode)
    parts = [sections.overview(results, trials, metric, mode, best),
             sections.curves(results, trials, metric, best["trial_id"] if best else None),
             sections.parameters(trials, metric, mode), sections.pareto(results, trials, metric, mode),
             sections.regmix(path), sections.laws(path), sections.decide(path)]
    parts = [p for p in parts if p is not None]
    name = results.study.name if results.study else path.name
    body = [f"<h1>sweeper report: {html.escape(name)}</h1>",
            f"<p>{html.escape(str(path.resolve()))}, written {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
            "<nav>" + "".join(f'<a href="#{p.key}">{html.escape(p.title)}</a>' for p in parts) + "</nav>"]
    for part in parts:
        body.append(f'<section id="{part.key}"><h2>{html.escape(part.title)}</h2>')
        body += [f"<p>{text}</p>" for text in part.paragraphs]
        body += part.tables
        if not part.charts and not part.paragraphs and not part.tables:
            body.append('<p class="missing">Nothing to show yet.</p>')
        for i, fig in enumerate(part.charts):
            div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"{part.key}-{i}",
                              config={"displaylogo": False, "responsive": True})
            body.append(f'<div class="chart" data-chart="{part.key}-{i}">{div}</div>')
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>sweeper report: {html.escape(name)}</title><style>{STYLE}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>{''.join(body)}</body></html>\n")


def write_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (default ``FOLDER/report.html``) through a temporary name; returns its path."""
    out = Path(output) if output is not None else Path(folder) / REPORT_FILE
    if not out.parent.is_dir():
        raise UserError(f"-o: {out.parent}: no such directory")
    if out.is_dir():
        raise UserError(f"-o: {out}: is a directory (expected a file name such as report.html)")
    text = build_report(folder)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
