"""The review as one call: `review(paths, since)` loads the reports and computes every view a renderer shows.

The command line parses its arguments, calls this, and hands the result to the renderers (terminal,
HTML, CSV in envcheck/report/); it decides nothing about the reports itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from envcheck.errors import UsageError
from envcheck.review import views
from envcheck.review.index import Fleet
from envcheck.review.load import load_fleet
from envcheck.review.read import parse_since


@dataclass(frozen=True)
class GoldenReview:
    """The views of the runs against one golden: what a renderer shows for it."""

    golden: views.Golden
    summary: str
    """ "5 sites · 7 targets · 10 runs" over these runs (views.counts)."""
    latest: pd.DataFrame
    """The newest run of every site × host × target (views.latest), in row-label order."""
    evidence: list[dict[str, Any]]
    """The full report entry of each row of `latest`, in the same order."""
    matrix: pd.DataFrame
    """Sites × targets, the latest verdict in each cell (views.verdict_matrix)."""
    consistency: pd.DataFrame
    """The same cells' lowest output consistency (views.consistency_matrix): shown beside a verdict below 100 %."""
    classes: pd.DataFrame
    """Equivalence classes of bitwise-identical outputs (views.equivalence_classes)."""
    attribution: pd.DataFrame
    """Fingerprint differences ranked by how often they co-occur with drift (views.attribution)."""
    trend: pd.DataFrame
    """The worst verdict per site per day (views.trend)."""
    latency: pd.DataFrame
    """The median P50 latency (ms) per site per day (views.latency_trend); empty when no run timed the model."""
    divergences: pd.DataFrame
    """The latest runs with a first origin, where their numbers first part (views.first_divergences)."""
    integrity: pd.DataFrame
    """The latest runs with installed-file or start-up-code findings (views.integrity_findings)."""
    images: pd.DataFrame
    """The image ids each Docker tag resolved to, and at which sites (views.images_per_tag); empty when no
    latest run is a Docker target with an inspected image."""


@dataclass(frozen=True)
class Review:
    """Everything a review shows: the index, one GoldenReview per golden, the flat table, and what was not read."""

    fleet: Fleet
    sections: list[GoldenReview]
    """One per golden, by golden path then sha; empty when no run was read."""
    summary: str
    """ "5 sites · 7 targets · 10 runs" over the whole fleet."""
    missing: list[str]
    """Paths given that do not exist."""

    @property
    def table(self) -> pd.DataFrame:
        """One row per golden × site × host × target × run (views.flat_table): the CSV export, sorted when
        it is asked for (100,000 runs take a while, and only the CSV shows them all)."""
        return views.flat_table(self.fleet)

    @property
    def files_read(self) -> int:
        """Reports read and reviewed."""
        return self.fleet.files_read

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(file, why) for every file that could not be read as a report."""
        return self.fleet.skipped

    @property
    def nothing_read(self) -> bool:
        """No file could be read as a report: the review cannot say anything (reports that are all older
        than --since are an empty review, not this)."""
        return self.fleet.files_read + self.fleet.files_before_since == 0


def review(paths: list[Path], since: str | None = None) -> Review:
    """Review the reports under `paths` created on or after `since` (YYYY-MM-DD or an ISO time, UTC).

    Raises UsageError for a `since` that is not a date; paths that do not exist are listed in `missing`."""
    start = None
    if since is not None:
        try:
            start = parse_since(since)
        except ValueError:
            raise UsageError(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    existing = [Path(p) for p in paths if Path(p).exists()]
    missing = [str(p) for p in paths if not Path(p).exists()]
    fleet = load_fleet(existing, start)
    sections = []
    for golden, part in views.by_golden(fleet):
        current = views.latest(part)
        sections.append(GoldenReview(
            golden=golden, summary=views.counts(part), latest=current, evidence=views.evidence(part, current),
            matrix=views.verdict_matrix(part), consistency=views.consistency_matrix(part),
            classes=views.equivalence_classes(part), attribution=views.attribution(part), trend=views.trend(part),
            latency=views.latency_trend(part), divergences=views.first_divergences(part),
            integrity=views.integrity_findings(part),
            images=views.images_per_tag(part)))
    return Review(fleet=fleet, sections=sections, summary=views.counts(fleet),
                  missing=missing)
