"""Latency against the golden: a ratio within one hardware class, the run's own spread respected, another
class never drift, and the settings that explain a slow target named."""
from __future__ import annotations

import pytest

from envcheck.compare.latency import (
    LatencyPolicy,
    class_label,
    compare_latency,
    hardware_class,
    reference_latency,
)
from envcheck.compare.policy import build_policy
from envcheck.compare.severity import resolve_findings
from envcheck.errors import UsageError

EPYC = {"cpu": {"model": "AMD EPYC 7B13", "tf_flags": ["avx", "avx2", "fma", "sse4_1"]}, "tensorflow": {}}
XEON = {"cpu": {"model": "Intel Xeon Platinum 8481C", "tf_flags": ["avx", "avx2", "avx512f", "amx_tile"]},
        "tensorflow": {}}


def record(p50_ms: float, blocks=(1.0, 1.0, 1.0), p99_ms: float | None = None, **context) -> dict:
    """A probe's latency record with P50 `p50_ms` and block P50s at those multiples of it."""
    return {"budget_s": 2.0, "batch": 1, "calls": 1000, "p50_s": p50_ms / 1000, "p90_s": p50_ms * 1.1 / 1000,
            "p99_s": (p99_ms or p50_ms * 1.5) / 1000, "mad_s": p50_ms / 50_000,
            "block_p50_s": [p50_ms * b / 1000 for b in blocks], "cold_first_call_s": 0.15,
            "histogram": [["0.7–0.8 ms", 900], ["0.8–0.9 ms", 100]],
            "context": {"visible_cpus": 2, "cpu_quota_cpus": None, "intra_op_threads": 2, **context}}


GOLDEN = reference_latency(record(0.70), EPYC)


def test_the_same_class_at_the_same_speed_is_ok():
    entry, findings = compare_latency(record(0.72), EPYC, GOLDEN, LatencyPolicy())
    assert entry["status"] == "ok" and entry["ratio_p50"] == pytest.approx(0.72 / 0.70, rel=1e-3)
    assert findings == ()
    assert "P50 0.72 ms vs golden 0.7 ms (×1.03" in entry["message"]


@pytest.mark.parametrize("p50_ms, severity", [(1.2, "warn"), (2.5, "fail")])
def test_a_slower_target_warns_then_fails(p50_ms, severity):
    entry, findings = compare_latency(record(p50_ms), EPYC, GOLDEN, LatencyPolicy(warn_ratio=1.5, fail_ratio=3.0))
    assert entry["status"] == "slower"
    (finding,) = findings
    assert (finding.code, finding.severity) == ("latency-slower", severity)
    assert finding.message.startswith(f"P50 latency is ×{p50_ms / 0.7:.2f} the golden's on the same hardware class")


def test_a_run_that_disagrees_with_itself_does_not_warn_on_a_ratio_within_its_spread():
    spread_blocks = (0.6, 1.0, 1.2)  # block P50s 2× apart: a ratio of 1.7 is within the run's own noise
    entry, findings = compare_latency(record(1.19, spread_blocks), EPYC, GOLDEN, LatencyPolicy())
    assert entry["block_spread"] == pytest.approx(2.0) and entry["status"] == "ok" and findings == ()
    entry, findings = compare_latency(record(2.5, spread_blocks), EPYC, GOLDEN, LatencyPolicy())
    assert [f.severity for f in findings] == ["fail"]  # beyond fail_ratio the spread does not excuse it


def test_another_hardware_class_is_not_comparable_and_never_drift():
    entry, findings = compare_latency(record(5.0), XEON, GOLDEN, LatencyPolicy())
    assert entry["status"] == "not-comparable" and findings == () and "ratio_p50" not in entry
    assert entry["hardware_class"] == {"target": "CPU Intel Xeon Platinum 8481C (AMX)",
                                       "golden": "CPU AMD EPYC 7B13 (AVX2)"}
    assert "not comparable (golden: CPU AMD EPYC 7B13 (AVX2), target: CPU Intel Xeon" in entry["message"]


def test_probes_that_ran_at_once_are_shown_not_judged():
    entry, findings = compare_latency(record(2.5), EPYC, GOLDEN, LatencyPolicy(), concurrent_probes=2)
    assert entry["status"] == "not-comparable" and findings == ()
    assert "measured while 2 probes ran at once (check with --jobs 1" in entry["message"]


def test_no_reference_and_not_measured_are_said_not_judged():
    entry, findings = compare_latency(record(0.7), EPYC, None, LatencyPolicy())
    assert entry["status"] == "no-reference" and findings == ()
    entry, findings = compare_latency({"skipped": "disabled (--latency-budget 0)", "budget_s": 0}, EPYC, GOLDEN,
                                      LatencyPolicy())
    assert entry["status"] == "not-measured" and "disabled" in entry["message"] and findings == ()
    assert compare_latency(None, EPYC, GOLDEN, LatencyPolicy()) == (None, ())


def test_p99_is_reported_and_gated_only_when_the_policy_says_so():
    slow_tail = record(0.70, p99_ms=5.0)
    entry, findings = compare_latency(slow_tail, EPYC, GOLDEN, LatencyPolicy())
    assert entry["ratio_p99"] == pytest.approx(5.0 / 1.05, rel=1e-3) and findings == ()
    _, findings = compare_latency(slow_tail, EPYC, GOLDEN, LatencyPolicy(gate_p99=True))
    assert [f.code for f in findings] == ["latency-slower"] and findings[0].message.startswith("P99 latency")


def test_the_mean_catches_a_quota_that_stalls_only_the_tail():
    """Measured under `--cpus 0.25`: P50 ×1.3, but every few calls wait a scheduler period: mean ×5."""
    golden = reference_latency({**record(0.70), "mean_s": 0.00075, "throughput_per_s": 5000.0}, EPYC)
    throttled = {**record(0.91, cpu_quota_cpus=0.25), "mean_s": 0.00375, "throughput_per_s": 1000.0}
    entry, findings = compare_latency(throttled, EPYC, golden, LatencyPolicy())
    assert entry["ratio_p50"] == pytest.approx(1.3) and entry["ratio_mean"] == pytest.approx(5.0)
    assert entry["throughput_slowdown"] == pytest.approx(5.0)
    assert [(f.code, f.severity) for f in findings] == [("latency-slower", "fail"), ("cpu-quota-below-threads", "warn")]
    assert findings[0].message.startswith("mean latency is ×5.00 the golden's")
    assert "(×1.30, mean ×5.00; warn above ×1.75, fail above ×3)" in entry["message"]


def test_a_quota_below_the_thread_count_is_always_named_and_explains_slowness():
    throttled = record(3.0, cpu_quota_cpus=0.25, intra_op_threads=2)
    entry, findings = compare_latency(throttled, EPYC, GOLDEN, LatencyPolicy())
    assert [f.code for f in findings] == ["latency-slower", "cpu-quota-below-threads"]
    assert "a CPU quota of 0.25 CPUs is below TensorFlow's 2 intra-op threads" in findings[0].hint
    _, findings = compare_latency(record(0.7, cpu_quota_cpus=0.5, intra_op_threads=2), EPYC, GOLDEN, LatencyPolicy())
    assert [f.code for f in findings] == ["cpu-quota-below-threads"]  # a misconfiguration even when not slower
    _, findings = compare_latency(record(0.7, cpu_quota_cpus=0.5, intra_op_threads=0, visible_cpus=4), EPYC, GOLDEN,
                                  LatencyPolicy())
    assert findings[0].message == ("a CPU quota of 0.5 CPUs is below TensorFlow's 4 intra-op threads "
                                   "(its default: one per visible CPU)")


def test_one_thread_and_onednn_off_are_named_only_as_reasons_for_a_slower_target():
    fingerprint = {**EPYC, "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "tensorflow": {"onednn_enabled": False}}
    one_thread = dict(intra_op_threads=1)
    _, findings = compare_latency(record(0.7, **one_thread), fingerprint, GOLDEN, LatencyPolicy())
    assert findings == ()
    _, findings = compare_latency(record(1.4, **one_thread), fingerprint, GOLDEN, LatencyPolicy(warn_ratio=1.2))
    assert [f.code for f in findings] == ["latency-slower", "intra-op-threads-one", "onednn-off"]


def test_a_policy_sets_the_ratios_and_a_finding_rule_its_severity(tmp_path):
    policy = build_policy({"latency": {"warn_ratio": 1.1, "fail_ratio": 1.3, "gate_p99": True},
                           "severity": {"finding.latency-slower": "info"}})
    assert policy.latency == LatencyPolicy(warn_ratio=1.1, fail_ratio=1.3, gate_p99=True)
    _, findings = compare_latency(record(1.0), EPYC, GOLDEN, policy.latency)
    assert [(f.code, f.severity) for f in resolve_findings(findings, policy)] == [("latency-slower", "info")]
    with pytest.raises(UsageError, match=r"`\[latency\] fail_ratio` must be a ratio above 1, got 0.9"):
        build_policy({"latency": {"fail_ratio": 0.9}})


def test_hardware_classes_name_the_gpu_when_tensorflow_uses_one():
    gpu = {**EPYC, "tensorflow": {"gpu_devices": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}] * 2}}
    assert class_label(hardware_class(gpu)) == "GPU NVIDIA H100 80GB HBM3 (cc 9.0) ×2"
    assert hardware_class(EPYC) != hardware_class(XEON)
    assert reference_latency({"skipped": "disabled"}, EPYC) is None


STOPPING_RULE = {"timed_budget_s": 2.0, "waited_for": ["p50", "p99"], "stopped": "stable", "timed_s": 0.41,
                 "precision": {"p50": 0.006, "p99": 0.047}, "precision_goal": 0.05, "confidence": 0.95}


@pytest.mark.parametrize("p50_ms", [0.72, 1.6])
def test_a_capture_from_before_the_stopping_rule_compares_as_one_with_it(p50_ms):
    """The stopping rule's keys (issue 24) are only added to the record: a capture without them, or a golden
    made from one, is judged the same."""
    older, newer = record(p50_ms, blocks=(1.0, 1.3)), {**record(p50_ms, blocks=(1.0, 1.3)), **STOPPING_RULE}
    newer_golden = reference_latency({**record(0.70), **STOPPING_RULE}, EPYC)
    judged = {compare_latency(target, EPYC, golden, LatencyPolicy())[1] for target in (older, newer)
              for golden in (GOLDEN, newer_golden)}
    assert len(judged) == 1
    entries = [compare_latency(target, EPYC, GOLDEN, LatencyPolicy())[0] for target in (older, newer)]
    assert entries[0]["message"] == entries[1]["message"] and entries[0]["status"] == entries[1]["status"]
