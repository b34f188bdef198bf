"""``sweeper report``: one self-contained HTML page of a whole study (`write_report`)."""

from sweeper.report.page import build_report, write_report

__all__ = ["build_report", "write_report"]
