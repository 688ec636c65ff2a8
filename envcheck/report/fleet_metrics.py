"""Prometheus metrics of a fleet's latest state (`envcheck review --metrics PATH`): for every site × target
its newest run, in the same metrics a single run writes (report/metrics.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from envcheck.report.metrics import render_states, target_state
from envcheck.report.view import target_view

if TYPE_CHECKING:
    from envcheck.review import Review


def render_review_metrics(review: Review) -> str:
    """One set of target metrics per latest run (its site label is the review's row label: the site, and
    the host where a site has several); the timestamp is the newest run's."""
    states, newest = [], None
    for section in review.sections:
        for row, entry in zip(section.latest.itertuples(), section.evidence, strict=True):
            state = target_state(target_view(entry, ""))
            states.append(state.with_site(str(row.place)))
            created = float(row.created.timestamp())  # a pandas Timestamp in UTC
            newest = created if newest is None else max(newest, created)
    return render_states(states, exit_code=None, timestamp=newest)
