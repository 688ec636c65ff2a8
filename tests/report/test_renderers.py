"""Markdown and JUnit renderers: snapshots over recorded real reports, and JUnit against its schema."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import xmlschema

from conftest import RECORDED_REPORTS, REPO
from envcheck.report.junit import render_junit
from envcheck.report.markdown import render_markdown

NAMES = sorted(p.stem for p in RECORDED_REPORTS.glob("*.json"))
SCHEMA = xmlschema.XMLSchema(str(REPO / "fixtures" / "junit" / "junit.xsd"))


@pytest.mark.parametrize("name", NAMES)
def test_markdown_snapshot(recorded_reports, snapshot, name):
    snapshot(f"{name}.md", render_markdown(recorded_reports[name]))


@pytest.mark.parametrize("name", NAMES)
def test_junit_snapshot(recorded_reports, snapshot, name):
    snapshot(f"{name}.xml", render_junit(recorded_reports[name]))


@pytest.mark.parametrize("name", NAMES)
def test_junit_is_valid_and_counts_match_the_verdicts(recorded_reports, name):
    report = recorded_reports[name]
    text = render_junit(report)
    SCHEMA.validate(text)
    suite = ET.fromstring(text).find("testsuite")
    verdicts = [t["verdict"] for t in report["targets"]]
    assert int(suite.get("tests")) == 4 * len(verdicts)
    assert int(suite.get("errors")) == verdicts.count("ERROR") == len(suite.findall("testcase/error"))
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert (int(suite.get("failures")) > 0) == ("FAIL" in verdicts)


def test_junit_schema_rejects_a_broken_document():
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate('<testsuites><testsuite name="x" tests="many"/></testsuites>')


def test_markdown_names_the_cause_of_reduced_precision(recorded_reports):
    text = render_markdown(recorded_reports["chengdu-5-bf16"])
    assert text.startswith("### ❌ envcheck found drift (exit 1)")
    assert "ONEDNN_DEFAULT_FPMATH_MODE" in text and "unset → BF16" in text


def test_warn_fails_the_junit_fingerprint_check_only_with_fail_on_warn(recorded_reports):
    report = dict(recorded_reports["wuhan-2-onednn-off"])
    assert "<failure" not in render_junit(report)
    report["fail_on"] = "warn"
    assert 'name="fingerprint"' in render_junit(report) and "<failure" in render_junit(report)
