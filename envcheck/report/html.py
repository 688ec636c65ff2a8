"""The per-run HTML report: render_html(report_dict) -> one self-contained page.

Input is the JSON report's dict (envcheck.report/1), so any stored report can be rendered again.
"""
from __future__ import annotations

from html import escape
from typing import Any

from envcheck.report.html_common import badge, histogram_svg, num, page, pct, table, text

EXIT_MEANING = {0: "matched the golden within policy", 1: "drift: at least one target failed the policy",
                3: "could not decide: at least one target could not be checked"}


def render_html(report: dict[str, Any]) -> str:
    summary = " · ".join(f"{count} {verdict}" for verdict, count in sorted(report["summary"].items()))
    body = [
        "<h1>envcheck report</h1>",
        f'<p class="muted">{text(report["created"])} · golden <code>{text(report["golden"]["path"])}</code> '
        f'(sha256 {text(report["golden"]["sha256"][:16])}…) · envcheck {text(report["envcheck_version"])}</p>',
        f'<p><b>exit {report["exit_code"]}</b> — {escape(EXIT_MEANING.get(report["exit_code"], ""))} · {escape(summary)}</p>',
        "<h2>Targets</h2>",
        table(["target", "site", "verdict", "outputs", "fingerprint"],
              [[f'<a href="#target-{i}">{text(t["spec"])}</a>', text(t["site"]), badge(t["verdict"]),
                text(outputs_summary(t)), text(diff_summary(t))] for i, t in enumerate(report["targets"])],
              table_id="targets", filterable=len(report["targets"]) > 5),
    ]
    body += [target_section(t, f"target-{i}") for i, t in enumerate(report["targets"])]
    return page(f"envcheck — exit {report['exit_code']}", "".join(body))


def outputs_summary(target: dict[str, Any]) -> str:
    if target["error"]:
        return target["error"]["kind"]
    return ", ".join(f"{name}: {o['status']}" for name, o in target["outputs"].items())


def diff_summary(target: dict[str, Any]) -> str:
    counts = {}
    for d in target["fingerprint_diff"]:
        counts[d["severity"]] = counts.get(d["severity"], 0) + 1
    shown = [f"{counts[s]} {s}" for s in ("fail", "warn", "info") if s in counts]
    findings = len(target.get("findings") or [])
    if findings:
        shown.append(f"{findings} finding{'s' if findings > 1 else ''}")
    return ", ".join(shown) or "same"


def target_section(target: dict[str, Any], anchor: str) -> str:
    """Everything known about one target: failure reason, evidence per output, histograms, differences, hints."""
    parts = [f'<section class="target" id="{anchor}"><h3>{text(target["spec"])} {badge(target["verdict"])} '
             f'<span class="muted">{text(target["site"] or "")}</span></h3>']
    if target["error"]:
        error = target["error"]
        parts.append(f'<p class="error"><b>{text(error["kind"])}</b>: {text(error["message"])}</p>')
        if error.get("stderr_tail"):
            parts.append(f"<details><summary>stderr (last lines)</summary><pre>{text(error['stderr_tail'])}</pre></details>")
    for finding in target.get("findings") or []:
        parts.append(f'<p class="error"><span class="sev-{finding["severity"]}">{text(finding["severity"])}</span> '
                     f'<b>{text(finding["code"])}</b>: {text(finding["message"])}<br>→ {text(finding["hint"])}</p>')
    if target["outputs"]:
        rows = [[text(name), text(o["status"]), num(o["max_abs"]), num(o["p99_abs"]), num(o["max_rel"]),
                 num(o["p99_rel"]), num(o["max_ulp"]), num(o["p99_ulp"]), pct(o["changed_fraction"]),
                 pct(o["top1_agreement"]), num(o["min_passing_tolerance"]), text(o["reason"] or "")]
                for name, o in target["outputs"].items()]
        parts.append(table(["output", "status", "max abs", "p99 abs", "max rel", "p99 rel", "max ULP", "p99 ULP",
                            "changed", "top-1", "passes at tol", "reason"], rows))
        for name, o in target["outputs"].items():
            if o["status"] in ("noise", "drift") and o.get("ulp_histogram"):
                parts.append(histogram_svg(o["ulp_histogram"], f"{name}: elements per ULP distance"))
    decisive = [d for d in target["fingerprint_diff"] if d["severity"] != "info"]
    info = [d for d in target["fingerprint_diff"] if d["severity"] == "info"]
    if decisive:
        parts.append(_diff_table(decisive))
    if info:
        parts.append(f"<details><summary>{len(info)} info-level differences</summary>{_diff_table(info)}</details>")
    parts += [f'<p class="hint">{text(hint)}</p>' for hint in target["hints"]]
    parts.append("</section>")
    return "".join(parts)


def _diff_table(diffs: list[dict[str, Any]]) -> str:
    return table(["severity", "path", "golden", "target"],
                 [[f'<span class="sev-{d["severity"]}">{text(d["severity"])}</span>', f"<code>{text(d['path'])}</code>",
                   text(_clip(d["golden"])), text(_clip(d["target"]))] for d in diffs])


def _clip(value: Any, width: int = 120) -> Any:
    shown = "absent" if value is None else str(value)
    return shown if len(shown) <= width else shown[: width - 1] + "…"
