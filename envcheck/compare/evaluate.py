"""One target's outcome + the golden -> a TargetResult with verdict, evidence and hints."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from envcheck import fields
from envcheck.compare.determinism import determinism_findings
from envcheck.compare.explain import hints_for
from envcheck.compare.findings import find_problems
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.image import image_findings
from envcheck.compare.latency import compare_latency
from envcheck.compare.localization import localize
from envcheck.compare.outputs import compare_outputs
from envcheck.compare.policy import Policy
from envcheck.compare.serving import judge_load, replica_findings
from envcheck.compare.severity import resolve_findings
from envcheck.compare.signature import signature_findings
from envcheck.compare.tflite import edge_golden_fingerprint, tflite_comparisons, tflite_findings
from envcheck.compare.verdict import decide_verdict
from envcheck.model import (
    Capture,
    OutputComparison,
    Reference,
    TargetFailure,
    TargetResult,
    is_parity,
    is_saved_model_output,
)
from envcheck.redact import redact_fingerprint, redact_target_info


def evaluate(outcome: Capture | TargetFailure, reference: Reference, policy: Policy,
             concurrent_probes: int = 1) -> TargetResult:
    """One target judged against the reference (its fingerprint redact_fingerprint'ed once per run by the
    caller); `concurrent_probes` is how many probes ran at once (their latencies are then shown, not judged)."""
    # Both sides as shared: hashed identifiers compare equal to hashed identifiers.
    fingerprint = redact_fingerprint(outcome.fingerprint)
    target_info = redact_target_info(outcome.target_info)
    golden = reference.fingerprint
    if isinstance(outcome, Capture) and outcome.edge:
        golden = edge_golden_fingerprint(golden, fingerprint)
    if isinstance(outcome, Capture) and outcome.target_info.get("kind") == "endpoint":
        # A black box is compared with what a server of the golden's model would declare (targets/endpoint.py).
        golden = outcome.target_info.get("expected") or {}
    if isinstance(outcome, TargetFailure):
        return TargetResult(spec=outcome.spec, site=outcome.site, verdict="ERROR", error=outcome, outputs=(),
                            fingerprint_diff=(), hints=(), fingerprint=fingerprint, target_info=target_info,
                            timings=outcome.timings, output_digest=None,
                            findings=resolve_findings(find_problems(fingerprint, golden), policy))
    # Across CPU architectures the policy's band for the target's architecture applies (none set: the default's).
    architectures = fields.Architectures.of(golden, fingerprint)
    policy = policy.across(architectures)
    outputs = () if outcome.edge else compare_outputs(reference.expected, outcome.outputs, policy, noise=reference.noise)
    outputs += tflite_comparisons(reference.tflite_expected, outcome, policy)
    diffs = diff_fingerprints(*fields.comparable_cpus(golden, fingerprint), policy)
    latency, slowness = compare_latency(outcome.latency, fingerprint, reference.latency, policy.latency,
                                        concurrent_probes)
    # Every producer proposes at its default severity; the policy decides once, for all of them alike.
    findings = resolve_findings((*find_problems(fingerprint, golden), *slowness,
                                 *determinism_findings(outcome.determinism, reference.determinism),
                                 *tflite_findings(outcome, reference.tflite_expected is not None),
                                 *image_findings(outcome.target_info, reference.image),
                                 *signature_findings(outcome.target_info),
                                 *replica_findings(target_info.get("replicas")),
                                 *judge_load(target_info.get("load"), policy.latency_p99_ms)), policy)
    # Parity within its band is shown, never decides: a converted model is not bitwise its SavedModel.
    judged = [o for o in outputs if not (is_parity(o.name) and o.status in ("identical", "noise"))]
    return TargetResult(spec=outcome.spec, site=outcome.site, verdict=decide_verdict(judged, diffs, findings),
                        error=None, outputs=outputs, fingerprint_diff=diffs,
                        hints=hints_for(diffs, outputs, reference.calibration, architectures),
                        fingerprint=fingerprint, target_info=target_info, timings=outcome.timings,
                        output_digest=output_digest(outcome.tflite_outputs or {} if outcome.edge else outcome.outputs),
                        findings=findings, latency=latency,
                        localization=_localization(reference.layers, outcome.layers, outputs))


def _localization(golden: dict[str, Any] | None, target: dict[str, Any] | None,
                  outputs: tuple[OutputComparison, ...]) -> dict[str, Any] | None:
    """Where the target first parts from the golden (`unsupported` and why where the golden's record is);
    None when nothing was recorded to compare (a golden without a record, a probe run with --no-layers)."""
    if golden is None or (target is None and golden.get("status") == "ok"):
        return None
    # The SavedModel's outputs only: the TFLite ones (tflite:, parity:) are another model.
    saved_model = [o for o in outputs if is_saved_model_output(o.name)]
    return localize(golden, target, outputs_drift=any(o.status != "identical" for o in saved_model))


def output_digest(outputs: dict[str, np.ndarray]) -> str:
    """Equal digests mean bitwise-identical outputs: the key for grouping a fleet into classes."""
    digest = hashlib.sha256()
    for name in sorted(outputs):
        array = np.ascontiguousarray(outputs[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
