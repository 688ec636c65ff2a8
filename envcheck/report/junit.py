"""JUnit XML for CI systems (Jenkins, GitLab): a test case per target × check.

Checks: `runnable` (an <error> when the target could not be probed), `outputs` (a <failure> on drift
beyond tolerance), `fingerprint` (a <failure> on fail-severity differences, and on warn-severity ones
with --fail-on warn), `environment` (a <failure> on findings such as a silent CPU fallback), and, where
the probe timed the model, `latency` (a <failure> when it is slower than the golden's on the same
hardware class). Checks that could not run because the target failed are <skipped>.

ElementTree escapes markup but writes any character it is given; a probe's stderr or a hand-edited
report can hold characters XML 1.0 forbids, so every text and attribute is scrubbed before writing.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from envcheck.model import FAILING_STATUSES
from envcheck.model import LATENCY_SLOWER as SLOWER
from envcheck.report.view import ReportView, TargetView

# Everything outside XML 1.0's Char production: C0 controls but tab, LF and CR; lone surrogates; U+FFFE/F.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")


def xml_text(value: str) -> str:
    """`value` with every character XML 1.0 cannot hold replaced by U+FFFD (so the gap stays visible)."""
    return _NOT_XML.sub("\ufffd", value)


def render_junit(view: ReportView) -> str:
    """The run as JUnit XML: a test suite for the golden, four test cases per target."""
    suites = ET.Element("testsuites", name="envcheck")
    suite = ET.SubElement(suites, "testsuite", name=f"envcheck golden {view.golden_sha256[:12]}")
    timestamp = view.created.rstrip("Z")
    if _TIMESTAMP.fullmatch(timestamp):  # optional in the schema: better none than an invalid one
        suite.set("timestamp", timestamp)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("golden.path", view.golden_path), ("golden.sha256", view.golden_sha256),
                        ("exit_code", view.exit_code), ("fail_on", view.fail_on)):
        ET.SubElement(properties, "property", name=name, value=str(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for target in view.targets:
        classname = f"envcheck.{target.site or 'local'}.{target.spec}"
        seconds = float(target.timings.get("total_s") or 0.0)
        total_time += seconds
        for check, outcome in _checks(target, view.fail_on):
            case = ET.SubElement(suite, "testcase", classname=classname, name=check,
                                 time=f"{seconds if check == 'runnable' else 0.0:.3f}")
            counts["tests"] += 1
            if outcome is not None:
                kind, message, detail = outcome
                element = ET.SubElement(case, kind, message=message)
                if kind != "skipped":
                    element.set("type", check)
                    element.text = detail
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[kind]] += 1
    for element in (suites, suite):
        for key, value in counts.items():
            if element is suites and key == "skipped":
                continue
            element.set(key, str(value))
        element.set("time", f"{total_time:.3f}")
    _scrub(suites)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _scrub(root: ET.Element) -> None:
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        for key, value in element.attrib.items():
            element.set(key, xml_text(value))


def _checks(target: TargetView, fail_on: str):
    failing = {"fail", "warn"} if fail_on == "warn" else {"fail"}
    slower = [f for f in target.findings if f["code"] == SLOWER and f["severity"] in failing]
    findings = [f for f in target.findings if f["severity"] in failing and f["code"] != SLOWER]
    latency = [("latency", ("failure", slower[0]["message"], str(slower[0]["hint"])) if slower else None)] \
        if target.latency else []
    environment = None
    if findings:
        environment = ("failure", "; ".join(f"{f['code']}: {f['message']}" for f in findings),
                       "\n".join(f"[{f['severity']}] {f['code']}: {f['message']}\n  -> {f['hint']}" for f in findings))
    if target.error:
        error = target.error
        skipped = ("skipped", "not checked: the target could not be probed", "")
        return [("runnable", ("error", f"{error['kind']}: {error['message']}", error.get("stderr_tail") or "")),
                ("outputs", skipped), ("fingerprint", skipped), ("environment", environment or skipped)]
    # An accepted output is a WARN: a failure where WARN fails the gate.
    bad = [o for o in target.outputs if o.status in FAILING_STATUSES or (o.status == "accepted" and fail_on == "warn")]
    outputs = None
    if bad:
        outputs = ("failure", "; ".join(f"{o.name}: {o.reason or '—'}" for o in bad), "\n".join(target.hints))
    decisive = [d for d in target.differences if d.severity in failing]
    fingerprint = None
    if decisive:
        lines = [f"[{d.severity}] {d.path}: {d.change}" for d in decisive]
        fingerprint = ("failure", f"{target.diff_summary}: " + ", ".join(d.path for d in decisive[:5]),
                       "\n".join(lines + [""] + list(target.hints)))
    return [("runnable", None), ("outputs", outputs), ("fingerprint", fingerprint), ("environment", environment),
            *latency]
