"""The per-run HTML report: render_html(report_dict) -> one self-contained page (templates/report.html).

Input is the JSON report's dict (envcheck.report/1), so any stored report can be rendered again. The
one-line summaries here are plain text, shared with the Markdown and JUnit renderers, which escape them
for their own formats.
"""
from __future__ import annotations

from typing import Any

from envcheck.report.html_common import render_page
from envcheck.report.vocabulary import EXIT_MEANING


def render_html(report: dict[str, Any]) -> str:
    targets = report["targets"]
    rows = [{"anchor": f"target-{i}", "target": t, "outputs": outputs_summary(t), "diffs": diff_summary(t)}
            for i, t in enumerate(targets)]
    return render_page("report.html", title=f"envcheck — exit {report['exit_code']}", report=report,
                       exit_meaning=EXIT_MEANING.get(report["exit_code"], ""), summary=verdict_summary(report),
                       rows=rows, filterable=len(targets) > 5)


def verdict_summary(report: dict[str, Any]) -> str:
    return " · ".join(f"{count} {verdict}" for verdict, count in sorted(report["summary"].items()))


def outputs_summary(target: dict[str, Any]) -> str:
    if target["error"]:
        return str(target["error"]["kind"])
    return ", ".join(f"{name}: {o['status']}" for name, o in (target["outputs"] or {}).items())


def diff_summary(target: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for d in target["fingerprint_diff"]:
        counts[d["severity"]] = counts.get(d["severity"], 0) + 1
    shown = [f"{counts[s]} {s}" for s in ("fail", "warn", "info") if s in counts]
    findings = len(target.get("findings") or [])
    if findings:
        shown.append(f"{findings} finding{'s' if findings > 1 else ''}")
    return ", ".join(shown) or "same"
