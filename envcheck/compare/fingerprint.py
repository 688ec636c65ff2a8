"""Fingerprint differences with deepdiff, each given a severity by the policy."""
from __future__ import annotations

from typing import Any

from envcheck.compare.policy import Policy
from envcheck.model import FingerprintDifference

_ORDER = {"fail": 0, "warn": 1, "info": 2}


def diff_fingerprints(golden: dict[str, Any], target: dict[str, Any], policy: Policy) -> tuple[FingerprintDifference, ...]:
    """Every difference that the policy does not ignore, most severe first."""
    from deepdiff import DeepDiff  # heavy: imported only when comparing

    # ignore_order: lists such as CPU flags or devices are sets; a reordering is no drift.
    # threshold_to_diff_deeper=0: always name the changed key, even when two package sets share few names.
    diff = DeepDiff(golden, target, ignore_order=True, view="tree", verbose_level=2, threshold_to_diff_deeper=0)
    found = []
    for levels in diff.values():
        for level in levels:
            path = dotted_path(level.path(output_format="list"))
            severity = policy.severity_for(path)
            if severity == "ignore":
                continue
            found.append(FingerprintDifference(path=path, golden=_value(level.t1), target=_value(level.t2),
                                               severity=severity))
    return tuple(sorted(found, key=lambda d: (_ORDER[d.severity], d.path)))


def dotted_path(parts: list[Any]) -> str:
    """['env', 'TF_X'] -> 'env.TF_X'; list indexes as [i]: ['cpu', 'flags', 3] -> 'cpu.flags[3]'."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _value(value: Any) -> Any:
    """deepdiff marks the absent side with a NotPresent object; reports say null."""
    return None if type(value).__name__ == "NotPresent" else value
