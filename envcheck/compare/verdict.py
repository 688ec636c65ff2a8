"""Turn evidence into a verdict per target and an exit code per run."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from envcheck.errors import ExitCode
from envcheck.model import FAILING_STATUSES, Finding, FingerprintDifference, OutputComparison, Verdict

FailOn = Literal["warn", "fail"]


def decide_verdict(outputs: Iterable[OutputComparison], diffs: Iterable[FingerprintDifference],
                   findings: Iterable[Finding] = ()) -> Verdict:
    """First that applies: FAIL, WARN, PASS, IDENTICAL (ERROR is decided before any comparison). An output
    `accepted` by the policy's task-level acceptance is a WARN."""
    outputs = list(outputs)
    severities = {d.severity for d in diffs} | {f.severity for f in findings}
    if any(o.status in FAILING_STATUSES for o in outputs) or "fail" in severities:
        return "FAIL"
    if "warn" in severities or any(o.status == "accepted" for o in outputs):
        return "WARN"
    if any(o.status == "noise" for o in outputs):
        return "PASS"
    return "IDENTICAL"


def exit_code_for(verdicts: Iterable[Verdict], fail_on: FailOn = "fail") -> ExitCode:
    """3 over 1 over 0: an incomplete run is never green."""
    verdicts = set(verdicts)
    if "ERROR" in verdicts:
        return ExitCode.UNDECIDED
    if "FAIL" in verdicts or (fail_on == "warn" and "WARN" in verdicts):
        return ExitCode.DRIFT
    return ExitCode.OK
