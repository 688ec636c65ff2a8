"""Output comparison: statuses, evidence numbers and reasons on arrays with known differences."""
from __future__ import annotations

import io

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
    from envcheck.report.json import report_to_dict
    from envcheck.report.terminal import render_terminal
    from envcheck.report.view import build_view

    assert compare_output("labels", golden, golden.copy(), Tolerance()).status == "identical"
    drifted = compare_output("labels", golden, actual, Tolerance())
    assert drifted.status == "drift" and drifted.max_ulp is None and drifted.max_rel is None
    assert 0 < drifted.changed_fraction < 1 and "values differ" in drifted.reason
    result = TargetResult(spec="host", site=None, verdict="FAIL", error=None, outputs=(drifted,), fingerprint_diff=(),
                          hints=(), fingerprint={}, target_info={}, timings={}, output_digest=None)
    report = RunReport(golden_path="g", golden_sha256="0" * 64, targets=(result,), exit_code=1, fail_on="fail",
                       created="2026-11-29T00:00:00Z", envcheck_version="0")
    console = Console(record=True, width=120)
    console.print(render_terminal(build_view(report_to_dict(report))))
    assert "labels: drift" in console.export_text()


# ------------------------------------------------- bfloat16 and float16: ULP in their own precision

def _bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values cut to bfloat16 and stored as np.savez stores them: raw 2-byte void (`|V2`)."""
    top_half = (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    buffer = io.BytesIO()
    np.savez(buffer, x=top_half.view("V2"))
    buffer.seek(0)
    return np.load(buffer)["x"]


def _plus_ulps(raw: np.ndarray, ulps: int) -> np.ndarray:
    """`raw` (bfloat16 as |V2, positive values) moved `ulps` units of its own precision away from zero."""
    return (raw.view(np.uint16) + np.uint16(ulps)).view(raw.dtype)


def test_bfloat16_one_ulp_is_counted_in_bfloat16_units_and_can_pass_a_tolerance():
    golden = _bfloat16(np.abs(EMBEDDING) + 0.5)
    assert golden.dtype == np.dtype("V2")
    actual = _plus_ulps(golden, 1)
    strict = compare_output("e", golden, actual, Tolerance())
    assert strict.status == "drift" and strict.dtype == "bfloat16" and strict.max_ulp == 1
    assert dict(strict.ulp_histogram)["1"] == golden.size and "would pass at tol" in strict.reason
    assert 2 ** -9 < strict.max_rel <= 2 ** -7  # one bfloat16 ULP (8 significant bits), relative
    loose = compare_output("e", golden, actual, Tolerance(atol=1e-2, rtol=1e-2))
    assert loose.status == "noise" and loose.reason is None
    same = compare_output("e", golden, golden.copy(), Tolerance())
    assert same.status == "identical" and same.max_ulp == 0 and same.dtype == "bfloat16"


def test_bfloat16_values_are_exact_float32_and_nan_is_seen():
    golden = _bfloat16(np.array([1.0, -2.5, 0.0, 3.0], np.float32))
    actual = golden.copy()
    actual.view(np.uint16)[3] = 0x7FC0  # a bfloat16 quiet NaN
    result = compare_output("e", golden, actual, Tolerance())
    assert result.status == "mismatch" and "NaN in 1 element" in result.reason
    doubled = _bfloat16(np.array([2.0, -5.0, 0.0, 6.0], np.float32))
    result = compare_output("e", golden, doubled, Tolerance(atol=0, rtol=0))
    assert result.max_abs == 3.0 and result.max_rel == 1.0


def test_a_raw_two_byte_output_the_producer_did_not_call_bfloat16_compares_by_equality():
    golden = _bfloat16(np.ones(4, np.float32))
    actual = _plus_ulps(golden, 1)
    result = compare_output("e", golden, actual, Tolerance(atol=1, rtol=1), logical_dtype="|V2")
    assert result.status == "drift" and "values differ in 100.00%" in result.reason and result.max_ulp is None
    policy = build_policy()
    (hinted,) = compare_outputs({"e": golden}, {"e": actual}, policy, logical_dtypes={"e": "bfloat16"})
    assert hinted.dtype == "bfloat16" and hinted.max_ulp == 1


def test_ml_dtypes_bfloat16_meets_its_saved_form():
    from helpers import require_module
    ml_dtypes = require_module("ml_dtypes")
    in_memory = (np.abs(EMBEDDING) + 0.5).astype(ml_dtypes.bfloat16)
    saved = _bfloat16(in_memory.astype(np.float32))
    assert compare_output("e", saved, in_memory, Tolerance()).status == "identical"
    nudged = _plus_ulps(saved, 2)
    result = compare_output("e", in_memory, nudged, Tolerance(atol=1e-1, rtol=1e-1))
    assert result.status == "noise" and result.max_ulp == 2 and result.dtype == "bfloat16"


def test_float16_ulp_is_counted_in_float16_units():
    golden = EMBEDDING.astype(np.float16)
    actual = np.nextafter(golden, np.float16(np.inf), dtype=np.float16)
    result = compare_output("e", golden, actual, Tolerance(atol=1e-3, rtol=1e-3))
    assert result.status == "noise" and result.dtype == "float16"
    assert result.max_ulp == 1 and result.p99_ulp == 1.0 and dict(result.ulp_histogram)["1"] == golden.size


def test_string_outputs_compare_by_equality_a_chunk_at_a_time(monkeypatch):
    import envcheck.compare.outputs as outputs

    monkeypatch.setattr(outputs, "CHUNK_ELEMENTS", 3)
    golden = np.array([f"class-{i}" for i in range(10)])
    actual = golden.copy()
    actual[[2, 7]] = "other"
    assert compare_output("labels", golden, golden.copy(), Tolerance()).status == "identical"
    result = compare_output("labels", golden, actual, Tolerance())
    assert result.status == "drift" and result.changed_fraction == 0.2 and result.max_ulp is None


# ------------------------------------------------------------ per-sample evidence, two-tier acceptance

def _with_drifted_samples(values: np.ndarray, rows: list[int], factor: float = 1.01) -> np.ndarray:
    drifted = values.copy()
    drifted[rows] *= np.float32(factor)
    return drifted


def test_drifted_samples_are_counted_and_named_worst_first():
    actual = _with_drifted_samples(EMBEDDING, [3, 17])
    actual[17] *= np.float32(1.5)  # sample 17 drifts further
    result = compare_output("e", EMBEDDING, actual, Tolerance())
    assert result.status == "drift" and result.samples == 32 and result.samples_beyond == 2
    assert result.consistency == pytest.approx(30 / 32)
    assert [index for index, _ in result.worst_samples] == [17, 3]
    assert result.worst_samples[0][1] == pytest.approx(float(np.abs(actual[17] - EMBEDDING[17]).max()), rel=1e-6)
    assert dict(result.sample_error_histogram)["0"] == 30


def test_a_top1_flip_within_tolerance_still_makes_its_sample_inconsistent():
    flipped = PROBS.copy()
    row = int(np.argmax(PROBS.max(axis=1) - np.sort(PROBS, axis=1)[:, -2]))  # the clearest margin
    first, second = np.argsort(PROBS[row])[-1], np.argsort(PROBS[row])[-2]
    flipped[row, [first, second]] = flipped[row, [second, first]]
    result = compare_output("p", PROBS, flipped, Tolerance(atol=1.0, rtol=1.0), classification=True)
    assert result.samples_beyond == 1 and result.consistency == pytest.approx(31 / 32)
    assert result.top1_agreement_all == pytest.approx(31 / 32) and result.status == "drift"


@pytest.mark.parametrize("min_consistency, status", [(0.9, "accepted"), (0.95, "drift")])
def test_drift_on_few_samples_is_accepted_only_above_min_consistency(min_consistency, status):
    policy = build_policy({"acceptance": {"min_consistency": min_consistency}})
    actual = {"e": _with_drifted_samples(EMBEDDING, [1, 2])}  # consistency 30/32 = 93.75 %
    (result,) = compare_outputs({"e": EMBEDDING}, actual, policy)
    assert result.status == status
    if status == "accepted":
        assert result.reason.startswith("6.25 % of samples beyond tolerance (2 of 32); consistency 93.75 % ≥ 90 %")


@pytest.mark.parametrize("min_top1, status", [(0.9, "accepted"), (0.99, "drift")])
def test_acceptance_needs_the_top1_agreement_too(min_top1, status):
    policy = build_policy({"acceptance": {"min_consistency": 0.9, "min_top1_agreement": min_top1}})
    actual = PROBS.copy()
    actual[5] = np.roll(actual[5], 1)  # sample 5 decides differently
    (result,) = compare_outputs({"p": PROBS}, {"p": actual}, policy)
    assert result.top1_agreement_all == pytest.approx(31 / 32) and result.status == status
    if status == "accepted":
        assert "top-1 agreement 96.88 % ≥ 90 %" in result.reason


def test_a_mismatch_is_never_accepted():
    policy = build_policy({"acceptance": {"min_consistency": 0.0, "min_top1_agreement": 0.0}})
    (result,) = compare_outputs({"e": EMBEDDING}, {"e": EMBEDDING[:, :4]}, policy)
    assert result.status == "mismatch"
