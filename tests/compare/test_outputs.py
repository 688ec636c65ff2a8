"""Output comparison: statuses, evidence numbers and reasons on arrays with known differences."""
from __future__ import annotations

import numpy as np
import pytest

from envcheck.compare.outputs import _ulp_distance, compare_output, compare_outputs
from envcheck.compare.policy import build_policy
from envcheck.model import Tolerance

RNG = np.random.default_rng(7)
EMBEDDING = RNG.normal(0, 1, (32, 8)).astype(np.float32)
PROBS = np.exp(RNG.normal(0, 3, (32, 10))).astype(np.float32)
PROBS /= PROBS.sum(axis=1, keepdims=True)


def _nudge(values: np.ndarray, ulps: int) -> np.ndarray:
    out = values.copy()
    for _ in range(ulps):
        out = np.nextafter(out, np.float32(np.inf), dtype=np.float32)
    return out


def test_identical_bytes():
    result = compare_output("e", EMBEDDING, EMBEDDING.copy(), Tolerance())
    assert result.status == "identical" and result.max_ulp == 0 and result.reason is None


def test_few_ulps_are_noise_with_numbers():
    result = compare_output("e", EMBEDDING, _nudge(EMBEDDING, 3), Tolerance())
    assert result.status == "noise"
    assert result.max_ulp == 3 and result.changed_fraction == 1.0
    assert 0 < result.min_passing_tolerance < 1e-5
    assert dict(result.ulp_histogram)["2–3"] == EMBEDDING.size


def test_reduced_precision_is_drift_and_says_what_would_pass():
    drifted = (EMBEDDING * (1 + 2e-3)).astype(np.float32)
    result = compare_output("e", EMBEDDING, drifted, Tolerance())
    assert result.status == "drift"
    assert "beyond tolerance" in result.reason and "would pass at tol" in result.reason
    assert result.max_rel == pytest.approx(2e-3, rel=1e-2)
    assert compare_output("e", EMBEDDING, drifted, Tolerance(atol=1e-2, rtol=1e-2)).status == "noise"


def test_absolute_term_tolerates_large_relative_error_near_zero():
    golden = np.array([1.0, 1e-9], dtype=np.float32)
    actual = np.array([1.0, 2e-9], dtype=np.float32)
    result = compare_output("e", golden, actual, Tolerance())
    assert result.status == "noise" and result.max_rel == pytest.approx(1.0)


def test_subnormals_are_flushed_to_zero():
    golden = np.array([1.0, 0.0], dtype=np.float32)
    actual = np.array([1.0, 1e-40], dtype=np.float32)  # subnormal
    assert compare_output("e", golden, actual, Tolerance(atol=0, rtol=0)).status == "noise"


@pytest.mark.parametrize("actual, reason", [
    pytest.param(np.where(np.arange(EMBEDDING.size).reshape(EMBEDDING.shape) == 5, np.nan, EMBEDDING).astype(np.float32),
                 "NaN in 1 element", id="nan"),
    pytest.param(EMBEDDING[:, :4], "shape changed", id="shape"),
    pytest.param(EMBEDDING.astype(np.float16), "dtype changed: float32 → float16", id="dtype"),
    pytest.param(np.where(EMBEDDING > 1, np.inf, EMBEDDING).astype(np.float32), "Inf", id="inf"),
])
def test_structural_changes_are_mismatches(actual, reason):
    result = compare_output("e", EMBEDDING, actual, Tolerance())
    assert result.status == "mismatch" and reason in result.reason


def test_top1_flip_fails_even_within_a_loose_band():
    flipped = PROBS.copy()
    row = int(np.argmax(np.max(PROBS, axis=1) - np.sort(PROBS, axis=1)[:, -2]))
    top = np.argsort(PROBS[row])[-2:]
    flipped[row, top] = flipped[row, top[::-1]]
    result = compare_output("p", PROBS, flipped, Tolerance(atol=1.0, rtol=1.0))
    assert result.status == "drift" and "top-1 class changed" in result.reason
    assert result.top1_agreement == pytest.approx(1 - 1 / 32)


def test_top1_is_only_checked_for_probability_outputs():
    assert compare_output("e", EMBEDDING, _nudge(EMBEDDING, 1), Tolerance()).top1_agreement is None
    assert compare_output("p", PROBS, _nudge(PROBS, 1), Tolerance()).top1_agreement == 1.0


def test_missing_and_unexpected_outputs():
    results = {r.name: r for r in compare_outputs({"a": EMBEDDING}, {"b": EMBEDDING}, build_policy())}
    assert results["a"].status == "mismatch" and "missing" in results["a"].reason
    assert results["b"].status == "mismatch" and "not in the golden" in results["b"].reason


def test_ulp_distance_crosses_zero_and_handles_negative_numbers():
    golden = np.array([0.0, -0.0, -1.0, np.float32(1e-45)], dtype=np.float32)
    actual = np.array([-0.0, np.float32(1e-45), np.nextafter(np.float32(-1.0), np.float32(0)), -np.float32(1e-45)],
                      dtype=np.float32)
    assert _ulp_distance(golden, actual).tolist() == [0, 1, 1, 2]


def test_per_output_tolerance_from_policy():
    policy = build_policy({"tolerance": {"outputs": {"e": {"atol": 1e-2, "rtol": 1e-2}}}})
    drifted = (EMBEDDING * (1 + 2e-3)).astype(np.float32)
    (result,) = compare_outputs({"e": EMBEDDING}, {"e": drifted}, policy)
    assert result.status == "noise" and result.tolerance == Tolerance(1e-2, 1e-2)


@pytest.mark.parametrize("golden, actual", [
    pytest.param(np.array([[1, 2], [3, 4]], dtype=np.int64), np.array([[1, 2], [3, 5]], dtype=np.int64), id="int64"),
    pytest.param(np.array([True, False, True]), np.array([True, True, True]), id="bool"),
    pytest.param(np.array(["cat", "dog"]), np.array(["cat", "cow"]), id="str"),
])
def test_non_float_outputs_compare_by_equality_and_render(golden, actual):
    """Integer, boolean and string outputs have no ULP or relative error: they drift when any value
    changes, and every renderer shows them without the float statistics."""
    from rich.console import Console

    from envcheck.model import RunReport, TargetResult
    from envcheck.report.terminal import render_terminal

    assert compare_output("labels", golden, golden.copy(), Tolerance()).status == "identical"
    drifted = compare_output("labels", golden, actual, Tolerance())
    assert drifted.status == "drift" and drifted.max_ulp is None and drifted.max_rel is None
    assert 0 < drifted.changed_fraction < 1 and "values differ" in drifted.reason
    result = TargetResult(spec="host", site=None, verdict="FAIL", error=None, outputs=(drifted,), fingerprint_diff=(),
                          hints=(), fingerprint={}, target_info={}, timings={}, output_digest=None)
    report = RunReport(golden_path="g", golden_sha256="0" * 64, targets=(result,), exit_code=1, fail_on="fail",
                       created="2026-11-29T00:00:00Z", envcheck_version="0")
    console = Console(record=True, width=120)
    console.print(render_terminal(report))
    assert "labels: drift" in console.export_text()
