"""The per-run HTML report: one self-contained page (templates/report.html) drawn from the report's view."""
from __future__ import annotations

from envcheck.report.html_common import render_page
from envcheck.report.view import ReportView

FILTER_FROM_TARGETS = 5
"""Above this many targets the table gets a filter box."""


def render_html(view: ReportView) -> str:
    """The page for one run."""
    return render_page("report.html", title=f"envcheck — exit {view.exit_code}", view=view,
                       filterable=len(view.targets) > FILTER_FROM_TARGETS)
