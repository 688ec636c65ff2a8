"""JUnit XML for CI systems (Jenkins, GitLab): a test case per target × check.

Checks: `runnable` (an <error> when the target could not be probed), `outputs` (a <failure> on drift
beyond tolerance), `fingerprint` (a <failure> on fail-severity differences, and on warn-severity ones
with --fail-on warn), `environment` (a <failure> on findings such as a silent CPU fallback). Checks that
could not run because the target failed are <skipped>.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from envcheck.report.html import diff_summary


def render_junit(report: dict[str, Any]) -> str:
    suites = ET.Element("testsuites", name="envcheck")
    suite = ET.SubElement(suites, "testsuite", name=f"envcheck golden {report['golden']['sha256'][:12]}",
                          timestamp=report["created"].rstrip("Z"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("golden.path", report["golden"]["path"]), ("golden.sha256", report["golden"]["sha256"]),
                        ("exit_code", report["exit_code"]), ("fail_on", report["fail_on"])):
        ET.SubElement(properties, "property", name=name, value=str(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for target in report["targets"]:
        classname = f"envcheck.{target['site'] or 'local'}.{target['spec']}"
        seconds = float(target.get("timings", {}).get("total_s") or 0.0)
        total_time += seconds
        for check, outcome in _checks(target, report["fail_on"]):
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
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _checks(target: dict[str, Any], fail_on: str):
    failing = {"fail", "warn"} if fail_on == "warn" else {"fail"}
    findings = [f for f in target.get("findings") or [] if f["severity"] in failing]
    environment = None
    if findings:
        environment = ("failure", "; ".join(f"{f['code']}: {f['message']}" for f in findings),
                       "\n".join(f"[{f['severity']}] {f['code']}: {f['message']}\n  -> {f['hint']}" for f in findings))
    if target["error"]:
        error = target["error"]
        skipped = ("skipped", "not checked: the target could not be probed", "")
        return [("runnable", ("error", f"{error['kind']}: {error['message']}", error.get("stderr_tail") or "")),
                ("outputs", skipped), ("fingerprint", skipped), ("environment", environment or skipped)]
    bad = {name: o for name, o in target["outputs"].items() if o["status"] in ("drift", "mismatch")}
    outputs = None
    if bad:
        outputs = ("failure", "; ".join(f"{name}: {o['reason']}" for name, o in bad.items()),
                   "\n".join(target["hints"]))
    decisive = [d for d in target["fingerprint_diff"] if d["severity"] in failing]
    fingerprint = None
    if decisive:
        lines = [f"[{d['severity']}] {d['path']}: {d['golden']} -> {d['target']}" for d in decisive]
        fingerprint = ("failure", f"{diff_summary(target)}: " + ", ".join(d["path"] for d in decisive[:5]),
                       "\n".join(lines + [""] + list(target["hints"])))
    return [("runnable", None), ("outputs", outputs), ("fingerprint", fingerprint), ("environment", environment)]
