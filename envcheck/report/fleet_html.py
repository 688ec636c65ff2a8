"""The fleet review page (templates/review.html): per golden, the verdict matrix with drill-down,
equivalence classes, attribution, where drifting runs first part, latency, trend and the images each Docker
tag resolved to; then skipped files and the evidence of every latest run.

A renderer only: it turns the views of an envcheck.review.Review (pandas tables) into plain rows, and
the templates write and escape them; it reads no file and computes no table.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from envcheck.localization_words import tensor_text
from envcheck.report.attribution import attribution_sentence
from envcheck.report.html_common import render_page
from envcheck.report.view import consistency_note, target_view
from envcheck.report.vocabulary import VERDICT_RANK

if TYPE_CHECKING:
    from envcheck.review import GoldenReview, Review


def render_review_html(review: Review) -> str:
    """The whole review as one self-contained HTML page."""
    sections = review.sections
    goldens: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    for number, section in enumerate(sections):
        current = section.latest
        # Anchors and table ids are unique across the page; one golden keeps the ids it always had.
        anchors = {(row.place, row.spec): f"drill-{len(evidence) + i}" for i, row in enumerate(current.itertuples())}
        shown_golden = f" · golden {section.golden.label}" if len(sections) > 1 else ""
        evidence += [{"anchor": anchors[(row.place, row.spec)], "site": row.place + shown_golden,
                      "created": str(row.created), "file": row.file,
                      "target": target_view(target, anchors[(row.place, row.spec)])}
                     for row, target in zip(current.itertuples(), section.evidence, strict=True)]
        goldens.append({"label": section.golden.label, "counts": section.summary, "suffix": f"-{number}" if number else "",
                        "matrix": _matrix(section, anchors), "classes": _classes(section),
                        "attribution": _attribution(section), "trend": _trend(section),
                        "latency": _latency(section), "divergences": _divergences(section, anchors),
                        "integrity": _integrity(section, anchors),
                        "images": _images(section)})
    counts = {"reports": review.files_read, "skipped": len(review.skipped), "summary": review.summary}
    return render_page("review.html", title="envcheck fleet review", counts=counts, goldens=goldens,
                       skipped=review.skipped, evidence=evidence)


def _matrix(section: GoldenReview, anchors: dict[tuple[str, str], str]) -> dict[str, Any] | None:
    """Sites × targets; a cell links to the evidence of its latest run and sorts by verdict rank."""
    matrix = section.matrix
    if matrix.empty:
        return None
    rows = []
    for site, cells in matrix.iterrows():
        # An unknown verdict has no rank: its cell sorts by its text.
        rows.append((site, [{"verdict": verdict, "rank": VERDICT_RANK.get(verdict, ""),
                             "anchor": anchors[(site, spec)],
                             "consistency": consistency_note(section.consistency.at[site, spec])}
                            if isinstance(verdict, str) else None for spec, verdict in cells.items()]))
    return {"specs": [str(spec) for spec in matrix.columns], "rows": rows}


def _classes(section: GoldenReview) -> list[dict[str, Any]]:
    return [{"digest": str(c.output_digest)[:12], "members": c.members,
             "golden": "yes" if c.identical_to_golden else "no", "sites": ", ".join(map(str, c.sites)),
             "targets": ", ".join(map(str, c.targets)), "verdicts": ", ".join(f"{k} {v}" for k, v in c.verdicts.items())}
            for c in section.classes.itertuples()]


def _attribution(section: GoldenReview) -> list[dict[str, Any]]:
    return [{"path": r["path"], "value": r["value"], "severity": r["severity"],
             "drifting": f"{r['drifting_with']} / {r['drifting_total']}", "others": f"{r['others_with']} / {r['others_total']}",
             "reads": attribution_sentence(r)}
            for _, r in section.attribution.head(25).iterrows()]


def _integrity(section: GoldenReview, anchors: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Each latest run's installed-file and start-up-code findings; a row links to that run's evidence (which
    names the files)."""
    return [{"site": row.site, "spec": row.spec, "verdict": row.verdict, "anchor": anchors[(row.site, row.spec)],
             "detail": row.integrity_findings} for row in section.integrity.itertuples()]


def _divergences(section: GoldenReview, anchors: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Where each latest run first parts from the golden; a row links to that run's evidence (and its chart)."""
    return [{"site": row.site, "spec": row.spec, "verdict": row.verdict, "anchor": anchors[(row.site, row.spec)],
             "detail": tensor_text(row.first_divergence_key, row.first_divergence_op, row.first_divergence_ulp)}
            for row in section.divergences.itertuples()]


def _images(section: GoldenReview) -> list[dict[str, Any]]:
    """Each Docker tag × image id with its sites; every row names its tag, so the table sorts and filters."""
    return [{"tag": image.image_ref, "id": image.image_id, "short": image.short_id, "sites": ", ".join(image.sites),
             "count": int(image.count), "several": int(image.images_under_tag) if image.several_images else None,
             "differs": bool(image.differs_from_golden)}
            for image in section.images.itertuples()]


def _latency(section: GoldenReview) -> dict[str, Any] | None:
    """P50 in ms per site per day, sortable by its exact value."""
    history = section.latency
    if history.empty:
        return None
    return {"dates": [str(date) for date in history.columns],
            "rows": [(site, [None if math.isnan(value) else value for value in cells]) for site, cells in history.iterrows()]}


def _trend(section: GoldenReview) -> dict[str, Any] | None:
    history = section.trend
    if history.shape[1] <= 1:
        return None
    return {"dates": [str(date) for date in history.columns],
            "rows": [(site, [v if isinstance(v, str) else None for v in cells]) for site, cells in history.iterrows()]}
