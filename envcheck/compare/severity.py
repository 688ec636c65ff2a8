"""The one place a finding's severity is decided.

Every producer of findings (the target's own fingerprint, latency, determinism, the TFLite path, the image)
proposes each finding with its default severity and knows nothing of the policy; `resolve_findings` then
applies the policy's `finding.<code>` rule once, for all of them alike: a user rule replaces the default,
and `ignore` drops the finding. A new producer joins by being listed in evaluate.py, never by reading the
policy itself.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from envcheck.compare.policy import Policy
from envcheck.model import Finding


def resolve_findings(proposed: Iterable[Finding], policy: Policy) -> tuple[Finding, ...]:
    """`proposed` with the policy's severity for each (`finding.<code>` rules, first match), ignored ones dropped."""
    resolved = []
    for finding in proposed:
        severity = policy.user_severity(f"finding.{finding.code}") or finding.severity
        if severity != "ignore":
            resolved.append(finding if severity == finding.severity else dataclasses.replace(finding, severity=severity))
    return tuple(resolved)
