"""A compact Markdown summary fit for a merge-request comment.

Every value from the report goes through `md` (textsafe.markdown_text for text), so data shows as text: it
cannot open a tag, a link, an image, emphasis, math or a table cell, close a code span, end the line it is
on, or mention anyone or reference an issue or merge request (`@all`, `#1`, `!1`). (A bare https:// address
in data may still be made clickable by GitHub's or GitLab's autolinking, but it shows as itself: data can
never put a link behind other words.)
"""
from __future__ import annotations

import html
from typing import Any

from envcheck.model import percent
from envcheck.report.view import OutputView, ReportView, TargetView, code_spans
from envcheck.textsafe import inert_references, markdown_text, single_line

HEADLINE = {0: "✅ envcheck passed", 1: "❌ envcheck found drift", 3: "⚠️ envcheck could not decide"}


def md(value: Any, within: str = "text") -> str:
    """`value` as inert Markdown, for where it is written: "text" (a line or a table cell), "code" (inside
    `…`), "cell-code" (inside `…` in a table cell) or "html" (inside the raw-HTML <summary> line)."""
    shown = "—" if value is None else str(value)
    if within == "text":
        return markdown_text(shown)
    shown = single_line(shown)
    if within == "html":  # no Markdown inside an HTML block: escape for HTML (mentions are linked there too)
        return html.escape(inert_references(shown))
    # Backslashes mean nothing in a code span, so a backtick cannot be escaped: it becomes a quote.
    shown = shown.replace("`", "'") or "—"  # `` would be no code span at all
    return shown.replace("|", "\\|") if within == "cell-code" else shown  # GFM splits cells first


def render_markdown(view: ReportView) -> str:
    """The run as a Markdown comment: a headline, a table of targets, details for each that did not pass."""
    code = view.exit_code
    summary = " · ".join(f"{md(count)} {md(verdict)}" for verdict, count in view.verdict_counts)
    lines = [f"### {HEADLINE.get(code, 'envcheck')} (exit {md(code)})", "",
             f"{view.exit_meaning} — golden `{md(view.golden_sha256[:12], 'code')}` · {summary}",
             "", "| target | site | verdict | outputs | fingerprint |" + (" latency |" if view.has_latency else ""),
             "|---|---|---|---|---|" + ("---|" if view.has_latency else "")]
    for t in view.targets:
        latency = f" {md(t.latency.summary if t.latency else None)} |" if view.has_latency else ""
        lines.append(f"| `{md(t.spec, 'cell-code')}` | {md(t.site)} | **{md(t.verdict)}** | "
                     f"{md(t.outputs_summary)} | {md(t.diff_summary)} |{latency}")
    lines += _where(view)
    for t in view.targets:
        if t.verdict in ("IDENTICAL", "PASS"):
            continue
        lines += ["", f"<details><summary><code>{md(t.spec, 'html')}</code> — {md(t.verdict, 'html')}</summary>", ""]
        lines += _details(t)
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _where(view: ReportView) -> list[str]:
    """Where the numbers first part: a line per target that is not IDENTICAL, and one for `compare A B`."""
    lines = [f"- `{md(t.spec, 'code')}`{f' @ {md(t.site)}' if t.site else ''}: {sentence(t.where)}"
             for t in view.targets if t.where]
    between = view.localization_between
    if between:
        a, b = between.between or (None, None)
        lines.append(f"- between `{md(a, 'code')}` and `{md(b, 'code')}`: {sentence(between.summary)}")
    return ["", "Where the numbers first part:", "", *lines] if lines else []


def sentence(text: str) -> str:
    """A view's sentence in Markdown: its `…` spans (tensor keys) as code spans, everything else as text."""
    return "".join(f"`{md(part, 'code')}`" if code else md(part) for part, code in code_spans(text))


def _details(t: TargetView) -> list[str]:
    error = [f"- **{md(t.error['kind'])}**: {md(t.error['message'])}"] if t.error else []
    findings = [f"- {md(f['severity'])}: **{md(f['code'])}** — {md(f['message'])}. {md(f['hint'])}" for f in t.findings]
    outputs = [_output_line(o) for o in t.differing_outputs]
    differences = [f"- {md(d.severity)}: `{md(d.path, 'code')}` {md(d.change)}" for d in t.decisive]
    latency = [f"- latency: {md(t.latency.message)}"] if t.latency and t.latency.status == "slower" else []
    serving = [f"- {md(line)}" for line in t.serving]
    return error + findings + outputs + differences + latency + serving + [f"- hint: {md(h)}" for h in t.hints]


def _output_line(o: OutputView) -> str:
    """The few numbers a reviewer needs (the HTML report has them all)."""
    stats = o.stats
    numbers = (f"max {md(stats.get('max_ulp'))} ULP, max rel {_g(stats.get('max_rel'))}, would pass at tol "
               f"{_g(stats.get('min_passing_tolerance'))}" if o.status != "mismatch" else "")
    if o.status != "mismatch" and stats.get("consistency") is not None:
        numbers += f", consistency {md(percent(stats['consistency']))}"
    reason = f" — {md(o.reason)}" if o.reason else ""
    return f"- `{md(o.name, 'code')}`: {md(o.status)} {numbers}{reason}"


def _g(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.2g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else md(value)
