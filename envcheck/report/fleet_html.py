"""The fleet review page (templates/review.html): per golden, the verdict matrix with drill-down,
equivalence classes, attribution and trend; then skipped files and the evidence of every latest run.

This module turns the fleet's pandas tables into plain rows; the templates write and escape them.
"""
from __future__ import annotations

from typing import Any

from envcheck.report import fleet as fleet_views
from envcheck.report.html_common import render_page
from envcheck.report.vocabulary import VERDICT_RANK


def render_review_html(fleet: fleet_views.Fleet) -> str:
    sections = fleet_views.by_golden(fleet)
    goldens: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    for number, (golden, part) in enumerate(sections):
        current = fleet_views.latest(part)
        # Anchors and table ids are unique across the page; one golden keeps the ids it always had.
        anchors = {(row.place, row.spec): f"drill-{len(evidence) + i}" for i, row in enumerate(current.itertuples())}
        shown_golden = f" · golden {golden.label}" if len(sections) > 1 else ""
        evidence += [{"anchor": anchors[(row.place, row.spec)], "site": row.place + shown_golden,
                      "created": str(row.created), "file": row.file, "target": target}
                     for row, target in zip(current.itertuples(), fleet_views.evidence(current), strict=True)]
        goldens.append({"label": golden.label, "counts": fleet_views.counts(part), "suffix": f"-{number}" if number else "",
                        "matrix": _matrix(part, anchors), "classes": _classes(part), "attribution": _attribution(part),
                        "trend": _trend(part)})
    counts = {"reports": fleet.files_read, "skipped": len(fleet.skipped), "summary": fleet_views.counts(fleet)}
    return render_page("review.html", title="envcheck fleet review", counts=counts, goldens=goldens,
                       skipped=fleet.skipped, evidence=evidence)


def _matrix(fleet: fleet_views.Fleet, anchors: dict[tuple[str, str], str]) -> dict[str, Any] | None:
    """Sites × targets; a cell links to the evidence of its latest run and sorts by verdict rank."""
    matrix = fleet_views.verdict_matrix(fleet)
    if matrix.empty:
        return None
    rows = []
    for site, cells in matrix.iterrows():
        # An unknown verdict has no rank: its cell sorts by its text.
        rows.append((site, [{"verdict": verdict, "rank": VERDICT_RANK.get(verdict, ""),
                             "anchor": anchors[(site, spec)]} if isinstance(verdict, str) else None
                            for spec, verdict in cells.items()]))
    return {"specs": [str(spec) for spec in matrix.columns], "rows": rows}


def _classes(fleet: fleet_views.Fleet) -> list[dict[str, Any]]:
    return [{"digest": str(c.output_digest)[:12], "members": c.members,
             "golden": "yes" if c.identical_to_golden else "no", "sites": ", ".join(map(str, c.sites)),
             "targets": ", ".join(map(str, c.targets)), "verdicts": ", ".join(f"{k} {v}" for k, v in c.verdicts.items())}
            for c in fleet_views.equivalence_classes(fleet).itertuples()]


def _attribution(fleet: fleet_views.Fleet) -> list[dict[str, Any]]:
    return [{"path": r["path"], "value": r["value"], "severity": r["severity"],
             "drifting": f"{r['drifting_with']} / {r['drifting_total']}", "others": f"{r['others_with']} / {r['others_total']}",
             "reads": fleet_views.attribution_sentence(r)}
            for _, r in fleet_views.attribution(fleet).head(25).iterrows()]


def _trend(fleet: fleet_views.Fleet) -> dict[str, Any] | None:
    history = fleet_views.trend(fleet)
    if history.shape[1] <= 1:
        return None
    return {"dates": [str(date) for date in history.columns],
            "rows": [(site, [v if isinstance(v, str) else None for v in cells]) for site, cells in history.iterrows()]}
