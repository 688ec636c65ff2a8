"""One severity pipeline: every producer proposes findings at its default severity, and only
compare/severity.py applies the policy, to all of them alike."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from envcheck.compare.policy import build_policy
from envcheck.compare.severity import resolve_findings
from envcheck.model import Finding

COMPARE = Path(__file__).resolve().parents[2] / "envcheck" / "compare"
PRODUCERS = ["findings.py", "latency.py", "determinism.py", "tflite.py", "image.py"]


def _finding(code: str, severity="warn") -> Finding:
    return Finding(code=code, severity=severity, message=f"{code} seen", hint="do something")


@pytest.mark.parametrize("rule, expected", [("fail", "fail"), ("info", "info"), ("warn", "warn"), (None, "warn")])
def test_the_policys_rule_replaces_the_default(rule, expected):
    policy = build_policy({"severity": {"finding.gpu-cpu-fallback": rule}} if rule else {})
    (found,) = resolve_findings([_finding("gpu-cpu-fallback")], policy)
    assert found.severity == expected and found.message == "gpu-cpu-fallback seen"


def test_ignore_drops_the_finding_and_rules_match_first_in_order():
    policy = build_policy({"severity": [["finding.latency-*", "ignore"], ["finding.*", "fail"]]})
    found = resolve_findings([_finding("latency-slower"), _finding("tflite-failed", "info")], policy)
    assert [(f.code, f.severity) for f in found] == [("tflite-failed", "fail")]


@pytest.mark.parametrize("module", PRODUCERS)
def test_no_producer_reads_the_policy_itself(module):
    """A producer that resolved its own severity could disagree with the pipeline (tflite-failed ignored the
    policy until the pipeline existed): none may name the policy's severity lookup."""
    tree = ast.parse((COMPARE / module).read_text())
    names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not {"user_severity", "severity_of", "severity_for"} & names, module
