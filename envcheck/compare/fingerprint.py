"""Fingerprint differences with deepdiff, each given a severity by the policy.

List-valued fields are sets (CPU flags, devices, distributions…): their order means nothing and a
difference is reported once per field as the items missing and extra, never index by index.
Lists of records that are not sets (GPUs, compared board by board) go to deepdiff as they are.
"""
from __future__ import annotations

import json
import sys
import threading
from typing import Any

from envcheck import fields
from envcheck.compare.policy import Policy
from envcheck.model import FingerprintDifference

_ORDER = {"fail": 0, "warn": 1, "info": 2}

# Lists of records that are still sets (the same device found in another order is no drift): exact
# paths from the field registry (envcheck/fields.py).
SET_OF_RECORDS = fields.set_of_records_paths()


def diff_fingerprints(golden: dict[str, Any], target: dict[str, Any], policy: Policy) -> tuple[FingerprintDifference, ...]:
    """Every difference that the policy does not ignore, most severe first."""
    # Libraries only of the kinds both probes looked for: an older golden never searched for BLAS or OpenMP.
    golden, target = fields.comparable_libraries(golden, target)
    golden_rest, target_rest, set_changes = split_sets(golden, target)
    found = []
    for path, golden_value, target_value, missing, extra in set_changes:
        severity = policy.severity_for(path)
        if severity != "ignore":
            found.append(FingerprintDifference(path=path, golden=golden_value, target=target_value,
                                               severity=severity, missing=missing, extra=extra))
    found.extend(_deep_differences(golden_rest, target_rest, policy))
    return tuple(sorted(found, key=lambda d: (_ORDER[d.severity], d.path)))


RECOGNISED_ONLY = ("pandas", "polars", "pydantic")
"""What deepdiff imports, when installed, only to recognise their objects (data frames, pydantic models): a
fingerprint holds none."""
_importing = threading.Lock()


def import_deepdiff():
    """deepdiff's DeepDiff (heavy: imported only when comparing, or by `check` in the background while its probes
    run), imported without pandas, polars and pydantic unless this process has them already: they would cost a check
    half a second of CPU beside its probes (bench/bench_check.py). Their absence is said to deepdiff's own `import`
    (None in sys.modules) only while deepdiff imports, and taken back at once."""
    with _importing:
        if "deepdiff" not in sys.modules:
            absent = [name for name in RECOGNISED_ONLY if name not in sys.modules]
            for name in absent:
                sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
            try:
                import deepdiff  # noqa: F401 - deepdiff.deephash finds no frame library
            finally:
                for name in absent:
                    if name in sys.modules and sys.modules[name] is None:
                        del sys.modules[name]
    from deepdiff import DeepDiff

    return DeepDiff


def _deep_differences(golden: dict[str, Any], target: dict[str, Any], policy: Policy) -> list[FingerprintDifference]:
    DeepDiff = import_deepdiff()
    # ignore_order: the GPUs left in here are matched by content, so a renumbering is no drift.
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
    return found


SetChange = tuple[str, Any, Any, tuple[str, ...], tuple[str, ...]]


def split_sets(golden: Any, target: Any, path: str = "") -> tuple[Any, Any, list[SetChange]]:
    """Take the set-valued fields out of both trees: (golden rest, target rest, one change per field)."""
    if not isinstance(golden, dict) or not isinstance(target, dict):
        return golden, target, []
    golden_rest, target_rest, changes = dict(golden), dict(target), []
    for key in sorted(set(golden) | set(target), key=str):
        child = f"{path}.{key}" if path else str(key)
        left, right = golden.get(key), target.get(key)
        if _is_set(child, left) or _is_set(child, right):
            if _is_set(child, left) is not False and _is_set(child, right) is not False:
                golden_rest.pop(key, None)
                target_rest.pop(key, None)
                change = _set_change(child, left, right)
                if change:
                    changes.append(change)
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            golden_rest[key], target_rest[key], deeper = split_sets(left, right, child)
            changes.extend(deeper)
    return golden_rest, target_rest, changes


def _is_set(path: str, value: Any) -> bool | None:
    """True: a set-valued list; None: absent (an empty set); False: anything else."""
    if value is None:
        return None
    if not isinstance(value, list):
        return False
    if path in SET_OF_RECORDS:
        return True
    return all(item is None or isinstance(item, (str, int, float, bool)) for item in value)


def _set_change(path: str, golden: list | None, target: list | None) -> SetChange | None:
    have = {_label(item): item for item in golden or []}
    got = {_label(item): item for item in target or []}
    missing, extra = tuple(sorted(set(have) - set(got))), tuple(sorted(set(got) - set(have)))
    if not missing and not extra and (golden is None) == (target is None):
        return None
    return path, _sorted(golden), _sorted(target), missing, extra


def _label(item: Any) -> str:
    """One readable, comparable word per item: the value itself, or `key=value, …` for a record."""
    if isinstance(item, dict):
        return ", ".join(f"{key}={json.dumps(item[key]) if not isinstance(item[key], str) else item[key]}"
                         for key in sorted(item))
    return item if isinstance(item, str) else json.dumps(item)


def _sorted(values: list | None) -> list | None:
    return None if values is None else sorted(values, key=_label)


def dotted_path(parts: list[Any]) -> str:
    """['env', 'TF_X'] -> 'env.TF_X'; list indexes as [i]: ['gpu', 'gpus', 0] -> 'gpu.gpus[0]'."""
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
