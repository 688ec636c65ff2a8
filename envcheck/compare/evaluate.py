"""One target's outcome + the golden -> a TargetResult with verdict, evidence and hints."""
from __future__ import annotations

import hashlib

import numpy as np

from envcheck.compare.explain import hints_for
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.outputs import compare_outputs
from envcheck.compare.policy import Policy
from envcheck.compare.verdict import decide_verdict
from envcheck.model import Capture, TargetFailure, TargetResult
from envcheck.redact import redact_fingerprint


def evaluate(outcome: Capture | TargetFailure, golden_expected: dict[str, np.ndarray],
             golden_fingerprint: dict, policy: Policy) -> TargetResult:
    # Both sides as shared: hashed identifiers compare equal to hashed identifiers.
    fingerprint = redact_fingerprint(outcome.fingerprint)
    if isinstance(outcome, TargetFailure):
        return TargetResult(spec=outcome.spec, site=outcome.site, verdict="ERROR", error=outcome, outputs=(),
                            fingerprint_diff=(), hints=_failure_hints(outcome), fingerprint=fingerprint,
                            target_info=outcome.target_info, timings={}, output_digest=None)
    outputs = compare_outputs(golden_expected, outcome.outputs, policy)
    diffs = diff_fingerprints(redact_fingerprint(golden_fingerprint), fingerprint, policy)
    return TargetResult(spec=outcome.spec, site=outcome.site, verdict=decide_verdict(outputs, diffs), error=None,
                        outputs=outputs, fingerprint_diff=diffs, hints=hints_for(diffs, outputs),
                        fingerprint=fingerprint, target_info=outcome.target_info, timings=outcome.timings,
                        output_digest=output_digest(outcome.outputs))


def output_digest(outputs: dict[str, np.ndarray]) -> str:
    """Equal digests mean bitwise-identical outputs: the key for grouping a fleet into classes."""
    digest = hashlib.sha256()
    for name in sorted(outputs):
        array = np.ascontiguousarray(outputs[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _failure_hints(failure: TargetFailure) -> tuple[str, ...]:
    missing = failure.fingerprint.get("cpu", {}).get("missing_required_flags")
    if missing:
        return (f"This CPU lacks {', '.join(missing)}, which TensorFlow's x86 wheels require.",)
    return ()
