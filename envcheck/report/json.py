"""The JSON report (schema envcheck.report/1): the stable format CI and fleet review read.

Fields (additive changes keep the schema; a removal or a change of meaning bumps it):
  schema, envcheck_version, created (UTC ISO 8601), exit_code (0/1/3), fail_on ("fail"|"warn"),
  golden {path, sha256}, summary {verdict: count},
  targets: [{spec, site, verdict, error (null | {kind, message, exit_code, stage, stderr_tail}),
             outputs {name: statistics}, fingerprint_diff [{path, golden, target, severity, missing?, extra?}]
             (missing/extra only for set-valued fields such as CPU flags),
             findings [{code, severity, message, hint}] (problems of the target itself), hints [str],
             fingerprint {…} (identifying values hashed), target {…} (a remote daemon's address hashed), timings {…},
             output_digest (sha256 of all outputs; equal digests = bitwise-identical outputs),
             latency {status, target, golden, ratio_p50, ratio_p99, block_spread, hardware_class, message}
             (present when the probe timed the model),
             localization {status, summary, first_divergence, origins, origin_ops, largest_jump, growth_to_output,
             fused_only, coverage, layers […]} (present when the golden has a layer record)}],
  localization_between {a, b, …localization} (`envcheck compare A B`: where two captures part, no golden involved)
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from envcheck.model import FingerprintDifference, OutputComparison, RunReport, TargetResult
from envcheck.schemas import REPORT_SCHEMA


def report_to_dict(report: RunReport) -> dict[str, Any]:
    """The report as the JSON document of schema envcheck.report/1."""
    return {
        "schema": REPORT_SCHEMA,
        "envcheck_version": report.envcheck_version,
        "created": report.created,
        "exit_code": report.exit_code,
        "fail_on": report.fail_on,
        "golden": {"path": report.golden_path, "sha256": report.golden_sha256},
        "summary": dict(Counter(t.verdict for t in report.targets)),
        **({"policy": report.policy} if report.policy is not None else {}),
        "targets": [_target(t) for t in report.targets],
        **({"localization_between": report.localization_between} if report.localization_between else {}),
    }


def render_json(document: dict[str, Any]) -> str:
    """The text of a report dict made by report_to_dict."""
    return json.dumps(document, indent=2, sort_keys=False, default=_jsonable) + "\n"


def _target(result: TargetResult) -> dict[str, Any]:
    error = None
    if result.error:
        error = {"kind": result.error.kind, "message": result.error.message, "exit_code": result.error.exit_code,
                 "stage": result.error.stage, "stderr_tail": result.error.stderr_tail[-2000:]}
    return {
        "spec": result.spec,
        "site": result.site,
        "verdict": result.verdict,
        "error": error,
        "outputs": {o.name: _output(o) for o in result.outputs},
        "fingerprint_diff": [_difference(d) for d in result.fingerprint_diff],
        "findings": [dataclasses.asdict(f) for f in result.findings],
        "hints": list(result.hints),
        "fingerprint": result.fingerprint,
        "target": result.target_info,
        "timings": result.timings,
        "output_digest": result.output_digest,
        **({"latency": result.latency} if result.latency is not None else {}),
        **({"localization": result.localization} if result.localization is not None else {}),
    }


def _difference(difference: FingerprintDifference) -> dict[str, Any]:
    """`missing` and `extra` appear only for set-valued fields (fields are only added in a version)."""
    entry = dataclasses.asdict(difference)
    for key in ("missing", "extra"):
        if entry[key] is None:
            del entry[key]
        else:
            entry[key] = list(entry[key])
    return entry


def _output(comparison: OutputComparison) -> dict[str, Any]:
    stats = dataclasses.asdict(comparison)
    del stats["name"]
    stats["shape"] = list(comparison.shape) if comparison.shape is not None else None
    for key in ("ulp_histogram", "sample_error_histogram"):
        stats[key] = [list(pair) for pair in stats[key]]
    if comparison.worst_samples is not None:
        stats["worst_samples"] = [list(pair) for pair in comparison.worst_samples]
    return stats


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
