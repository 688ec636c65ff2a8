"""Verdict precedence per target and exit-code precedence per run (3 over 1 over 0)."""
from __future__ import annotations

import pytest

from envcheck.compare.verdict import decide_verdict, exit_code_for
from envcheck.model import FingerprintDifference, OutputComparison, Tolerance


def _out(status):
    return OutputComparison(name="o", status=status, reason=None, tolerance=Tolerance())


def _diff(severity):
    return FingerprintDifference(path="p", golden=1, target=2, severity=severity)


@pytest.mark.parametrize("outputs, diffs, verdict", [
    pytest.param(["identical"], [], "IDENTICAL", id="identical"),
    pytest.param(["identical"], ["info"], "IDENTICAL", id="info-changes-nothing"),
    pytest.param(["noise", "identical"], [], "PASS", id="noise"),
    pytest.param(["noise"], ["warn", "info"], "WARN", id="warn"),
    pytest.param(["identical"], ["fail"], "FAIL", id="fingerprint-fail"),
    pytest.param(["drift"], ["warn"], "FAIL", id="output-drift"),
    pytest.param(["mismatch"], [], "FAIL", id="mismatch"),
    pytest.param(["accepted", "noise"], ["info"], "WARN", id="accepted-drift-warns"),
    pytest.param(["accepted", "drift"], [], "FAIL", id="accepted-beside-drift"),
])
def test_verdict(outputs, diffs, verdict):
    assert decide_verdict([_out(s) for s in outputs], [_diff(s) for s in diffs]) == verdict


@pytest.mark.parametrize("verdicts, fail_on, code", [
    pytest.param(["IDENTICAL", "PASS"], "fail", 0, id="green"),
    pytest.param(["WARN"], "fail", 0, id="warn-passes"),
    pytest.param(["WARN"], "warn", 1, id="warn-fails-when-asked"),
    pytest.param(["FAIL", "PASS"], "fail", 1, id="drift"),
    pytest.param(["FAIL", "ERROR", "IDENTICAL"], "fail", 3, id="error-wins"),
])
def test_exit_code(verdicts, fail_on, code):
    assert exit_code_for(verdicts, fail_on) == code
