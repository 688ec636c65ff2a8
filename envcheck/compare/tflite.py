"""TFLite in a check: a target's model.tflite outputs against the golden's (runtime drift across edge boxes),
and, where a target has TensorFlow too, against its own SavedModel outputs (conversion parity at that site).

Both are ordinary output comparisons, named `tflite:NAME` and `parity:NAME`, so verdicts, hints, reports and
the fleet review treat them like any other output; their band is the policy's mixed one,
|a - g| <= atol * max|g| + rtol * |g| (never ULP alone: near zero a few ULP of float32 are nothing). An
edge target (no TensorFlow) is judged on its TFLite outputs only, and the golden's TensorFlow section and the
packages that only a TensorFlow install brings are not differences there: that is what an edge box is.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from envcheck.compare.outputs import compare_outputs
from envcheck.compare.policy import Policy
from envcheck.fields import LIBRARIES
from envcheck.model import PARITY_PREFIX, TFLITE_PREFIX, Capture, Finding, OutputComparison, Severity


def tflite_comparisons(expected: dict[str, np.ndarray] | None, capture: Capture,
                       policy: Policy) -> tuple[OutputComparison, ...]:
    """The TFLite outputs against the golden's (`expected`: its tflite_expected, None when it has none), and
    against the target's own SavedModel outputs where it has both."""
    found: tuple[OutputComparison, ...] = ()
    if capture.edge or (expected is not None and capture.tflite_outputs is not None):
        # (An edge capture against a golden without TFLite outputs: every output is a mismatch, never a pass.)
        found += compare_outputs(_named(TFLITE_PREFIX, expected or {}),
                                 _named(TFLITE_PREFIX, capture.tflite_outputs or {}), policy)
    if capture.tflite_outputs is not None and capture.outputs:
        found += compare_outputs(_named(PARITY_PREFIX, capture.outputs), _named(PARITY_PREFIX, capture.tflite_outputs),
                                 policy)
    return found


CODE = "tflite-failed"
DEFAULT_SEVERITY: Severity = "warn"


def tflite_findings(capture: Capture, golden_has_tflite: bool) -> tuple[Finding, ...]:
    """A golden with a TFLite model whose model.tflite could not run in this target (which has TensorFlow: a
    failed edge target is an ERROR instead): the SavedModel is judged, the edge path is not checked. Its
    severity is warn until the policy says otherwise (compare/severity.py)."""
    error = (capture.tflite or {}).get("error")
    if not golden_has_tflite or not isinstance(error, dict):
        return ()
    hint = {"tflite-resolver": "Set ENVCHECK_TFLITE_RESOLVER to default, builtin or reference.",
            "tflite-load": "The runtime here cannot load the golden's model.tflite: compare its version with the "
                           "golden's converter (manifest `tflite`) and the edge boxes' runtime."}.get(
        str(error.get("kind")), "Run model.tflite with the runtime the edge boxes use to see where it fails.")
    return (Finding(code=CODE, severity=DEFAULT_SEVERITY,
                    message=f"model.tflite did not run here: {error.get('message')}", hint=hint),)


def edge_golden_fingerprint(golden: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The golden's fingerprint as an edge target is compared with it: without its TensorFlow section and the
    libraries TensorFlow loaded, and its packages only those the target has too (TensorFlow's own dependencies
    are not expected on an edge box)."""
    trimmed = {key: value for key, value in golden.items() if key != "tensorflow"}
    libraries, theirs = golden.get(LIBRARIES), target.get(LIBRARIES) or {}
    if isinstance(libraries, dict):
        trimmed[LIBRARIES] = {key: value for key, value in libraries.items() if key != "loaded"}
        if "loaded" in theirs:
            trimmed[LIBRARIES]["loaded"] = theirs["loaded"]
    packages, theirs = golden.get("packages"), target.get("packages")
    if isinstance(packages, dict) and isinstance(theirs, dict):
        trimmed["packages"] = {name: version for name, version in packages.items() if name in theirs}
    return trimmed


def _named(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + name: array for name, array in arrays.items()}
