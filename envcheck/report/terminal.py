"""What a person sees in the terminal: a table of targets and verdicts, then the evidence for each
target that is not IDENTICAL (numbers per output, fingerprint differences, hints, failure reason).

In a CI log (no terminal) the same facts come as plain lines instead: one line per target, then a
few indented lines of evidence for each that is not IDENTICAL. Nothing is cut; a long line wraps in
the log viewer, and info-level differences are counted, not listed (the JSON report has them)."""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from envcheck.model import OutputComparison, RunReport, TargetResult
from envcheck.report.vocabulary import EXIT_MEANING, VERDICTS

VERDICT_STYLE = {"IDENTICAL": "bold green", "PASS": "green", "WARN": "bold yellow", "FAIL": "bold red",
                 "ERROR": "bold magenta"}
SEVERITY_STYLE = {"fail": "red", "warn": "yellow", "info": "dim"}
STATUS_STYLE = {"identical": "green", "noise": "green", "drift": "bold red", "mismatch": "bold red"}
MAX_INFO_DIFFS = 8


def render_terminal(report: RunReport) -> RenderableType:
    parts: list[RenderableType] = [_summary_table(report)]
    for result in report.targets:
        if result.verdict != "IDENTICAL":
            parts.append(_details(result))
    meaning = EXIT_MEANING.get(report.exit_code, "")
    parts.append(Text.assemble(("exit ", "bold"), (str(report.exit_code), "bold"), f" — {meaning}"))
    return Group(*parts)


def _summary_table(report: RunReport) -> Table:
    # Every string from a capture or golden is data: Text, never markup. Columns fold, never cut a name.
    table = Table(title=Text(f"envcheck — golden {report.golden_path} ({report.golden_sha256[:12]})"),
                  title_justify="left")
    for column in ("target", "site", "verdict", "outputs", "fingerprint"):
        table.add_column(column, overflow="fold")
    for result in report.targets:
        table.add_row(Text(result.spec), Text(result.site or "—"), Text(result.verdict, VERDICT_STYLE[result.verdict]),
                      Text(_outputs_summary(result)), Text(_diff_summary(result)))
    return table


def _outputs_summary(result: TargetResult) -> str:
    if result.error:
        return f"{result.error.kind}"
    return ", ".join(f"{o.name}: {_short(o)}" for o in result.outputs)


def _short(output: OutputComparison) -> str:
    if output.status == "identical":
        return "identical"
    if output.status == "mismatch":
        return "mismatch"
    if output.max_ulp is not None:
        return f"{output.status} (max {output.max_ulp} ULP)"
    if output.max_rel is not None:
        return f"{output.status} (max rel {output.max_rel:.2g})"
    if output.changed_fraction is not None:  # integer, boolean or string outputs: no ULP, no relative error
        return f"{output.status} ({_pct(output.changed_fraction)} changed)"
    return output.status


def _diff_summary(result: TargetResult) -> str:
    counts = {s: sum(d.severity == s for d in result.fingerprint_diff) for s in ("fail", "warn", "info")}
    shown = [f"{n} {s}" for s, n in counts.items() if n]
    if result.findings:
        shown.append(f"{len(result.findings)} finding{'s' if len(result.findings) > 1 else ''}")
    return ", ".join(shown) or "same"


def _details(result: TargetResult) -> Panel:
    body: list[RenderableType] = []
    if result.error:
        body.append(Text(result.error.message, "magenta"))
    for finding in result.findings:
        body.append(Text.assemble((f"{finding.severity} ", SEVERITY_STYLE[finding.severity]),
                                  (f"{finding.code}: ", "bold"), finding.message))
        body.append(Text(f"  → {finding.hint}", "cyan"))
    if result.outputs and any(o.status != "identical" for o in result.outputs):
        body.extend(_evidence_lines(result))
    diffs = [d for d in result.fingerprint_diff if d.severity != "info"]
    info = [d for d in result.fingerprint_diff if d.severity == "info"]
    if diffs or info:
        table = Table(show_header=True, box=None, padding=(0, 1))
        for column in ("severity", "path", "golden → target"):
            table.add_column(column, overflow="fold")
        for d in diffs + info[:MAX_INFO_DIFFS]:
            table.add_row(Text(d.severity, SEVERITY_STYLE[d.severity]), Text(d.path), Text(_clip(d.change, 120)))
        if len(info) > MAX_INFO_DIFFS:
            table.add_row("", Text(f"… {len(info) - MAX_INFO_DIFFS} more info-level differences (see the JSON report)"), "")
        body.append(table)
    for hint in result.hints:
        body.append(Text(f"hint: {hint}", "cyan"))
    title = Text.assemble(result.spec, "  ", (result.verdict, VERDICT_STYLE[result.verdict]))
    return Panel(Group(*body), title=title, title_align="left")


def _evidence_lines(result: TargetResult) -> list[Text]:
    """One line of numbers per output: lines wrap in a narrow terminal where a wide table cannot."""
    lines = []
    for o in result.outputs:
        line = Text.assemble((f"{o.name}: ", "bold"), (o.status, STATUS_STYLE[o.status]))
        numbers = _numbers(o)
        if numbers:
            line.append(" · " + numbers)
        if o.reason:
            line.append(f" — {o.reason}", "red")
        lines.append(line)
    return lines


def _numbers(o: OutputComparison) -> str:
    """The evidence behind an output's status, for outputs that differ within or beyond the band."""
    if o.status not in ("noise", "drift"):
        return ""
    numbers = [f"max {_num(o.max_ulp)} ULP (p99 {_num(o.p99_ulp)})", f"max abs {_num(o.max_abs)} (p99 {_num(o.p99_abs)})",
               f"max rel {_num(o.max_rel)} (p99 {_num(o.p99_rel)})", f"{_pct(o.changed_fraction)} changed"]
    if o.top1_agreement is not None:
        numbers.append(f"top-1 agrees {_pct(o.top1_agreement)}")
    numbers.append(f"would pass at tol {_num(o.min_passing_tolerance)} (policy atol {o.tolerance.atol:g}, "
                   f"rtol {o.tolerance.rtol:g})")
    return " · ".join(numbers)


def render_plain(report: RunReport) -> str:
    """The run for a CI log: plain lines, names never cut, the verdict of each target on its own line."""
    summary = ", ".join(f"{sum(t.verdict == v for t in report.targets)} {v}" for v in reversed(VERDICTS)
                        if any(t.verdict == v for t in report.targets))
    lines = [f"envcheck · golden {report.golden_path} ({report.golden_sha256[:12]}) · {summary}"]
    width = max(len(t.verdict) for t in report.targets) if report.targets else 0
    for result in report.targets:
        site = f" @ {result.site}" if result.site else ""
        lines.append(f"{result.verdict:<{width}}  {result.spec}{site} — outputs: {_outputs_summary(result) or 'none'}"
                     f" · fingerprint: {_diff_summary(result)}")
        if result.verdict != "IDENTICAL":
            lines.extend(f"{' ' * (width + 2)}{line}" for line in _plain_details(result))
    lines.append(f"exit {report.exit_code} — {EXIT_MEANING.get(report.exit_code, '')}")
    return "\n".join(lines) + "\n"


def _plain_details(result: TargetResult) -> list[str]:
    lines = []
    if result.error:
        lines.append(f"error {result.error.kind}: {result.error.message}")
    for finding in result.findings:
        lines += [f"finding {finding.severity} {finding.code}: {finding.message}", f"  → {finding.hint}"]
    for o in result.outputs:
        if o.status != "identical":
            numbers = _numbers(o)
            lines.append(f"{o.name}: {o.status}" + (f" · {numbers}" if numbers else "")
                         + (f" — {o.reason}" if o.reason else ""))
    lines += [f"{d.severity} {d.path}: {d.change}" for d in result.fingerprint_diff if d.severity != "info"]
    info = sum(d.severity == "info" for d in result.fingerprint_diff)
    if info:
        lines.append(f"{info} info-level difference{'s' if info > 1 else ''} (see the JSON report)")
    lines += [f"hint: {hint}" for hint in result.hints]
    return lines


def _num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}"


def _pct(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
