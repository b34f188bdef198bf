"""``sweeper report DIR [-o report.html]``: one self-contained HTML page of a study (also while it runs)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sweeper report``."""
    parser.description = (
        "Write one self-contained HTML page of a study (plotly.js inline: it opens from disk, offline): status, "
        "best trial, failures, every trial's curve, parameters against the objective and their importance, "
        "the cost/metric front, and the RegMix, scaling-law and DataDecide results the folder holds. "
        "`sweeper run` writes it at the end of a study; this rebuilds it at any time.")
    parser.add_argument("dir", metavar="DIR", help="a study's results folder, e.g. results/regmix")
    parser.add_argument("-o", "--output", metavar="FILE.html", help="where to write it (default DIR/report.html)")


def run(args: argparse.Namespace) -> int:
    from sweeper.report import write_report

    print(f"wrote {write_report(args.dir, args.output)}")
    return 0
