"""Every renderer shows a target's latency: a column in the tables, the sentence where a target is slower,
a JUnit test case of its own, and the distribution on the HTML page."""
from __future__ import annotations

import copy
import io
import xml.etree.ElementTree as ET

from rich.console import Console

from envcheck.compare.latency import LatencyPolicy, compare_latency, reference_latency
from envcheck.report.html import render_html
from envcheck.report.junit import render_junit
from envcheck.report.markdown import render_markdown
from envcheck.report.terminal import render_plain, render_terminal
from envcheck.report.view import build_view

FINGERPRINT = {"cpu": {"model": "AMD EPYC 7B13", "tf_flags": ["avx", "avx2"]}, "tensorflow": {}}


def _record(p50_ms: float) -> dict:
    return {"p50_s": p50_ms / 1000, "p90_s": p50_ms / 900, "p99_s": p50_ms / 700, "calls": 900, "batch": 1,
            "block_p50_s": [p50_ms / 1000] * 3, "histogram": [["0.7–0.8 ms", 800], ["0.8–0.9 ms", 100]],
            "context": {"visible_cpus": 2, "cpu_quota_cpus": 0.25, "intra_op_threads": 2}}


def _with_latency(report: dict) -> dict:
    """The recorded report with its first target 4× slower than the golden (a quota below the threads)."""
    document = copy.deepcopy(report)
    entry, findings = compare_latency(_record(2.8), FINGERPRINT, reference_latency(_record(0.7), FINGERPRINT),
                                      LatencyPolicy())
    target = document["targets"][0]
    target["latency"] = entry
    target["findings"] = [{"code": f.code, "severity": f.severity, "message": f.message, "hint": f.hint}
                          for f in findings]
    assert findings[0].severity == "fail"  # ×4 is beyond the fail ratio: the target fails, the run drifts
    target["verdict"], document["exit_code"] = "FAIL", 1
    document["summary"] = {verdict: sum(t["verdict"] == verdict for t in document["targets"])
                           for verdict in {t["verdict"] for t in document["targets"]}}
    return document


def test_terminal_and_ci_log_show_latency(recorded_reports):
    view = build_view(_with_latency(recorded_reports["beijing-1"]))
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render_terminal(view))
    shown = console.file.getvalue()
    assert "latency" in shown.splitlines()[2] and "P50 2.8 ms ×4.00" in shown
    assert "latency: P50 2.8 ms vs golden 0.7 ms (×4.00; warn above ×1.75, fail above ×3)" in shown
    plain = render_plain(view)
    assert "· latency: P50 2.8 ms ×4.00" in plain.splitlines()[1]
    assert any(line.strip().startswith("latency: P50 2.8 ms vs golden") for line in plain.splitlines())


def test_markdown_has_a_latency_column_and_says_why(recorded_reports):
    text = render_markdown(build_view(_with_latency(recorded_reports["beijing-1"])))
    assert "| target | site | verdict | outputs | fingerprint | latency |" in text
    assert "| P50 2.8 ms ×4.00 |" in text and "- latency: P50 2.8 ms vs golden 0.7 ms" in text


def test_junit_gives_latency_its_own_test_case(recorded_reports):
    root = ET.fromstring(render_junit(build_view(_with_latency(recorded_reports["beijing-1"]))))
    latency = [case for case in root.iter("testcase") if case.get("name") == "latency"]
    assert len(latency) == 1  # only the target that was timed
    failure = latency[0].find("failure")
    assert failure is not None and failure.get("message").startswith("P50 latency is ×4.00 the golden's")
    environment = next(case for case in root.iter("testcase")
                       if case.get("name") == "environment" and case.get("classname") == latency[0].get("classname"))
    assert environment.find("failure") is None or "latency-slower" not in environment.find("failure").get("message")


def test_html_draws_the_distribution(recorded_reports):
    page = render_html(build_view(_with_latency(recorded_reports["beijing-1"])))
    assert "<th>latency</th>" in page and "P50 2.8 ms ×4.00" in page
    assert 'aria-label="batch-1 calls per latency bucket"' in page and "0.7–0.8 ms: 800" in page


def test_reports_without_latency_render_as_before(recorded_reports):
    view = build_view(recorded_reports["beijing-1"])
    assert not view.has_latency
    assert "latency" not in render_markdown(view) and "latency" not in render_plain(view)
