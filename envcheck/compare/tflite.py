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
from envcheck.model import Capture, Finding, OutputComparison

TFLITE_PREFIX = "tflite:"
PARITY_PREFIX = "parity:"


def tflite_comparisons(expected: dict[str, np.ndarray] | None, capture: Capture,
                       policy: Policy) -> tuple[OutputComparison, ...]:
    """The TFLite outputs against the golden's (`expected`: its tflite_expected, None when it has none), and
    against the target's own SavedModel outputs where it has both."""
    found: tuple[OutputComparison, ...] = ()
    if expected is not None and (capture.tflite_outputs is not None or capture.edge):
        found += compare_outputs(_named(TFLITE_PREFIX, expected), _named(TFLITE_PREFIX, capture.tflite_outputs or {}),
                                 policy)
    if capture.tflite_outputs is not None and capture.outputs:
        found += compare_outputs(_named(PARITY_PREFIX, capture.outputs), _named(PARITY_PREFIX, capture.tflite_outputs),
                                 policy)
    return found


def tflite_findings(capture: Capture, golden_has_tflite: bool) -> tuple[Finding, ...]:
    """A golden with a TFLite model whose model.tflite could not run in this target (which has TensorFlow: a
    failed edge target is an ERROR instead): the SavedModel is judged, the edge path is not checked."""
    error = (capture.tflite or {}).get("error")
    if not golden_has_tflite or not isinstance(error, dict):
        return ()
    return (Finding(code="tflite-failed", severity="warn",
                    message=f"model.tflite did not run here: {error.get('message')}",
                    hint="Install a TFLite runtime (ai-edge-litert, or tflite-runtime) of the version the edge "
                         "boxes use, so this target checks the converted model too."),)


def edge_golden_fingerprint(golden: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The golden's fingerprint as an edge target is compared with it: without its TensorFlow section and the
    libraries TensorFlow loaded, and its packages only those the target has too (TensorFlow's own dependencies
    are not expected on an edge box)."""
    trimmed = {key: value for key, value in golden.items() if key != "tensorflow"}
    libraries, theirs_loaded = golden.get("cuda_libraries"), (target.get("cuda_libraries") or {}).get("loaded")
    if isinstance(libraries, dict):
        trimmed["cuda_libraries"] = {**libraries, "loaded": theirs_loaded}
    packages, theirs = golden.get("packages"), target.get("packages")
    if isinstance(packages, dict) and isinstance(theirs, dict):
        trimmed["packages"] = {name: version for name, version in packages.items() if name in theirs}
    return trimmed


def _named(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + name: array for name, array in arrays.items()}
