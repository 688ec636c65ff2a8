"""What a person sees in the terminal: a table of targets and verdicts, then the evidence for each
target that is not IDENTICAL (numbers per output, fingerprint differences, hints, failure reason).

In a CI log (no terminal) the same facts come as plain lines instead: one line per target, then a
few indented lines of evidence for each that is not IDENTICAL. Nothing is cut; a long line wraps in
the log viewer, and info-level differences are counted, not listed (the JSON report has them).

Data is shown, never obeyed: the terminal view is built from the report with every string passed through
textsafe.for_terminal, every plain line goes through it whole, and rich gets data as Text, never markup."""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from envcheck.report.view import LocalizationView, ReportView, TargetView, cleaned_view, clip, text
from envcheck.report.vocabulary import DASH, SEVERITY_STYLE, STATUS_STYLE, VERDICT_STYLE
from envcheck.textsafe import for_terminal

MAX_INFO_DIFFS = 8


def render_terminal(view: ReportView) -> RenderableType:
    """The run as rich renderables: the summary table, a panel per target that is not IDENTICAL, the exit."""
    view = cleaned_view(view, for_terminal)
    parts: list[RenderableType] = [_summary_table(view)]
    parts.extend(_details(target) for target in view.targets if target.verdict != "IDENTICAL")
    if view.localization_between:
        parts.append(Text.assemble(("where: ", "bold"), between_line(view.localization_between)))
    parts.append(Text.assemble(("exit ", "bold"), (str(view.exit_code), "bold"), f" — {view.exit_meaning}"))
    return Group(*parts)


def _summary_table(view: ReportView) -> Table:
    # Every string from a capture or golden is data: Text, never markup. Columns fold, never cut a name.
    table = Table(title=Text(f"envcheck — golden {view.golden_path} ({view.golden_sha256[:12]})"),
                  title_justify="left")
    columns = ("target", "site", "verdict", "outputs", "fingerprint") + (("latency",) if view.has_latency else ())
    for column in columns:
        table.add_column(column, overflow="fold")
    for target in view.targets:
        latency = (Text(target.latency.summary if target.latency else DASH),) if view.has_latency else ()
        table.add_row(Text(target.spec), Text(target.site or DASH), _verdict(target),
                      Text(target.outputs_summary), Text(target.diff_summary), *latency)
    return table


def _verdict(target: TargetView) -> Text:
    return Text(target.verdict, VERDICT_STYLE.get(target.verdict, ""))


def _details(target: TargetView) -> Panel:
    body: list[RenderableType] = []
    if target.error:
        body.append(Text(text(target.error.get("message")), "magenta"))
    for finding in target.findings:
        severity = text(finding.get("severity"))
        body.append(Text.assemble((f"{severity} ", SEVERITY_STYLE.get(severity, "")),
                                  (f"{text(finding.get('code'))}: ", "bold"), text(finding.get("message"))))
        body.append(Text(f"  → {text(finding.get('hint'))}", "cyan"))
    if target.differing_outputs:
        body.extend(_evidence_line(o) for o in target.outputs)
    if target.where:
        body.append(Text.assemble(("where: ", "bold"), target.where))
    if target.decisive or target.info:
        table = Table(show_header=True, box=None, padding=(0, 1))
        for column in ("severity", "path", "golden → target"):
            table.add_column(column, overflow="fold")
        for d in target.decisive + target.info[:MAX_INFO_DIFFS]:
            table.add_row(Text(d.severity, SEVERITY_STYLE.get(d.severity, "")), Text(d.path), Text(clip(d.change)))
        if len(target.info) > MAX_INFO_DIFFS:
            table.add_row("", Text(f"… {len(target.info) - MAX_INFO_DIFFS} more info-level differences "
                                   "(see the JSON report)"), "")
        body.append(table)
    if target.latency:
        body.append(Text.assemble(("latency: ", "bold"), target.latency.message))
    body.extend(Text(line) for line in target.serving)
    body.extend(Text(f"hint: {hint}", "cyan") for hint in target.hints)
    title = Text.assemble(target.spec, "  ", _verdict(target))
    return Panel(Group(*body), title=title, title_align="left")


def data_text(value: object, style: str = "") -> Text:
    """Text from data for a rich renderable: neutralised for the terminal, and never read as markup."""
    return Text(for_terminal(str(value)), style)


def between_line(localization: LocalizationView) -> str:
    """`between A and B: first divergence at …`: the localization of `envcheck compare A B`, on one line."""
    a, b = localization.between or (DASH, DASH)
    return f"between {a} and {b}: {localization.summary}"


def _evidence_line(output) -> Text:
    """One line of numbers per output: lines wrap in a narrow terminal where a wide table cannot."""
    line = Text.assemble((f"{output.name}: ", "bold"), (output.status, STATUS_STYLE.get(output.status, "")))
    if output.evidence:
        line.append(" · " + output.evidence)
    if output.reason:
        line.append(f" — {output.reason}", "red")
    return line


def render_plain(view: ReportView) -> str:
    """The run for a CI log: plain lines, names never cut, the verdict of each target on its own line."""
    lines = [f"envcheck · golden {view.golden_path} ({view.golden_sha256[:12]}) · {view.verdict_summary(', ')}"]
    width = max((len(t.verdict) for t in view.targets), default=0)
    for target in view.targets:
        site = f" @ {target.site}" if target.site else ""
        latency = f" · latency: {target.latency.summary}" if target.latency else ""
        lines.append(f"{target.verdict:<{width}}  {target.spec}{site} — outputs: {target.outputs_summary or 'none'}"
                     f" · fingerprint: {target.diff_summary}{latency}")
        if target.verdict != "IDENTICAL":
            lines.extend(f"{' ' * (width + 2)}{line}" for line in _plain_details(target))
    if view.localization_between:
        lines.append(f"where: {between_line(view.localization_between)}")
    lines.append(f"exit {view.exit_code} — {view.exit_meaning}")
    # Each element is one line: a line break in it came from data, and is shown as `\n`.
    return "".join(for_terminal(line) + "\n" for line in lines)


def _plain_details(target: TargetView) -> list[str]:
    lines = []
    if target.error:
        lines.append(f"error {text(target.error.get('kind'))}: {text(target.error.get('message'))}")
    for finding in target.findings:
        lines += [f"finding {text(finding.get('severity'))} {text(finding.get('code'))}: "
                  f"{text(finding.get('message'))}", f"  → {text(finding.get('hint'))}"]
    for o in target.differing_outputs:
        lines.append(f"{o.name}: {o.status}" + (f" · {o.evidence}" if o.evidence else "")
                     + (f" — {o.reason}" if o.reason else ""))
    if target.where:
        lines.append(f"where: {target.where}")
    lines += [f"{d.severity} {d.path}: {d.change}" for d in target.decisive]
    if target.info:
        lines.append(f"{len(target.info)} info-level difference{'s' if len(target.info) > 1 else ''} "
                     "(see the JSON report)")
    if target.latency and target.latency.status == "slower":
        lines.append(f"latency: {target.latency.message}")
    lines += list(target.serving)
    lines += [f"hint: {hint}" for hint in target.hints]
    return lines
