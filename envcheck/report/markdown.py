"""A compact Markdown summary fit for a merge-request comment."""
from __future__ import annotations

from typing import Any

from envcheck.report.html import EXIT_MEANING, diff_summary, outputs_summary

HEADLINE = {0: "✅ envcheck passed", 1: "❌ envcheck found drift", 3: "⚠️ envcheck could not decide"}


def render_markdown(report: dict[str, Any]) -> str:
    code = report["exit_code"]
    summary = " · ".join(f"{count} {verdict}" for verdict, count in sorted(report["summary"].items()))
    lines = [f"### {HEADLINE.get(code, 'envcheck')} (exit {code})", "",
             f"{EXIT_MEANING.get(code, '')} — golden `{report['golden']['sha256'][:12]}` · {summary}", "",
             "| target | site | verdict | outputs | fingerprint |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| `{_cell(t['spec'])}` | {_cell(t['site'] or '—')} | **{t['verdict']}** | "
                     f"{_cell(outputs_summary(t))} | {_cell(diff_summary(t))} |")
    for t in report["targets"]:
        if t["verdict"] in ("IDENTICAL", "PASS"):
            continue
        lines += ["", f"<details><summary><code>{_cell(t['spec'])}</code> — {t['verdict']}</summary>", ""]
        if t["error"]:
            lines.append(f"- **{t['error']['kind']}**: {_cell(t['error']['message'])}")
        for f in t.get("findings") or []:
            lines.append(f"- {f['severity']}: **{f['code']}** — {_cell(f['message'])}. {_cell(f['hint'])}")
        for name, o in t["outputs"].items():
            if o["status"] in ("noise", "drift", "mismatch"):
                numbers = (f"max {o['max_ulp']} ULP, max rel {_g(o['max_rel'])}, would pass at tol "
                           f"{_g(o['min_passing_tolerance'])}" if o["status"] != "mismatch" else "")
                lines.append(f"- `{name}`: {o['status']} {numbers}{' — ' + _cell(o['reason']) if o['reason'] else ''}")
        for d in t["fingerprint_diff"]:
            if d["severity"] != "info":
                lines.append(f"- {d['severity']}: `{d['path']}` {_shown(d['golden'])} → {_shown(d['target'])}")
        lines += [f"- hint: {_cell(h)}" for h in t["hints"]]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _g(value: Any) -> str:
    return "—" if value is None else f"{value:.2g}"


def _shown(value: Any) -> str:
    return "absent" if value is None else _cell(value)
