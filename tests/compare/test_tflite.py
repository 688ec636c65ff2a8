"""compare/tflite.py on captures built here (no TensorFlow): which TFLite comparisons a target gets, and the
golden's fingerprint as an edge target is compared with it."""
from __future__ import annotations

import numpy as np

from envcheck.compare.policy import build_policy
from envcheck.compare.tflite import edge_golden_fingerprint, tflite_comparisons, tflite_findings
from envcheck.model import Capture

LOGITS = np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5)


def capture(**fields) -> Capture:
    return Capture(spec="python:edge", fingerprint={}, outputs=fields.pop("outputs", {}), **fields)


def test_an_edge_target_is_judged_on_its_tflite_outputs_alone():
    edge = capture(tflite_outputs={"y": LOGITS}, edge=True)
    (only,) = tflite_comparisons({"y": LOGITS}, edge, build_policy())
    assert (only.name, only.status) == ("tflite:y", "identical")


def test_a_target_with_both_models_gets_runtime_drift_and_parity():
    moved = LOGITS + np.float32(2e-7)
    both = capture(outputs={"y": LOGITS}, tflite_outputs={"y": moved})
    found = {c.name: c.status for c in tflite_comparisons({"y": LOGITS}, both, build_policy())}
    assert found == {"tflite:y": "noise", "parity:y": "noise"}


def test_an_edge_target_without_tflite_outputs_is_a_mismatch_not_a_pass():
    (only,) = tflite_comparisons({"y": LOGITS}, capture(edge=True), build_policy())
    assert only.status == "mismatch"


def test_a_golden_without_a_tflite_model_adds_nothing_but_parity():
    assert tflite_comparisons(None, capture(outputs={"y": LOGITS}), build_policy()) == ()
    assert [c.name for c in tflite_comparisons(None, capture(outputs={"y": LOGITS}, tflite_outputs={"y": LOGITS}),
                                               build_policy())] == ["parity:y"]


def test_a_failed_tflite_run_beside_tensorflow_is_a_finding():
    failed = capture(outputs={"y": LOGITS}, tflite={"error": {"kind": "tflite-load", "message": "bad flatbuffer"}})
    (finding,) = tflite_findings(failed, golden_has_tflite=True)
    assert (finding.code, finding.severity) == ("tflite-failed", "warn") and "bad flatbuffer" in finding.message
    assert tflite_findings(failed, golden_has_tflite=False) == ()


def test_the_edge_view_of_the_golden_drops_what_only_tensorflow_brings():
    golden = {"tensorflow": {"version": "2.21.0"}, "numpy": {"version": "2.4.0"},
              "packages": {"tensorflow-cpu": "2.21.0", "keras": "3.12", "numpy": "2.4.0"},
              "native_libraries": {"installed": {}, "loaded": {"libm": {"kind": "math", "version": "6"}}}}
    target = {"numpy": {"version": "2.4.6"}, "packages": {"numpy": "2.4.6", "ai-edge-litert": "2.3.0"},
              "native_libraries": {"installed": {}, "loaded": {}}}
    seen = edge_golden_fingerprint(golden, target)
    assert "tensorflow" not in seen and seen["packages"] == {"numpy": "2.4.0"}
    assert seen["numpy"] == {"version": "2.4.0"}  # NumPy is on both: still compared
    assert seen["native_libraries"] == {"installed": {}, "loaded": {}}


def test_parity_noise_is_shown_but_leaves_an_identical_target_identical():
    from envcheck.compare.evaluate import evaluate
    from envcheck.model import Reference
    converted = LOGITS + np.float32(2e-7)
    site = capture(outputs={"y": LOGITS}, tflite_outputs={"y": converted})
    result = evaluate(site, Reference(expected={"y": LOGITS}, fingerprint={}, tflite_expected={"y": converted}),
                      build_policy())
    assert {o.name: o.status for o in result.outputs} == {"y": "identical", "tflite:y": "identical",
                                                          "parity:y": "noise"}
    assert result.verdict == "IDENTICAL"
    assert not any("no fingerprint difference explains it" in hint for hint in result.hints)
    far = capture(outputs={"y": LOGITS}, tflite_outputs={"y": LOGITS + np.float32(0.5)})
    failed = evaluate(far, Reference(expected={"y": LOGITS}, fingerprint={}, tflite_expected={"y": LOGITS}),
                      build_policy())
    assert failed.verdict == "FAIL"  # beyond its band, parity fails like any output


def test_an_outputs_policy_reaches_its_tflite_comparisons():
    policy = build_policy({"tolerance": {"outputs": {"y": {"atol": 0.1, "classification": False}}}})
    assert policy.tolerance_for("tflite:y") == policy.tolerance_for("parity:y") == policy.tolerance_for("y")
    assert policy.classification_for("tflite:y") is False
