"""Latency against the golden's reference, only within one hardware class, and the settings that explain
a slow target.

The P50 and the mean of batch-1 calls are compared as ratios r = target / golden: `warn` when r is above
the policy's warn ratio and above the target's own block-to-block spread (a run that cannot agree with
itself proves nothing), `fail` above the fail ratio. The mean is gated beside the P50 because a CPU quota
shows as stalls of a scheduler period in the tail, not in the median (measured: `--cpus 0.25` moved the P50
×1.1–1.5 but the mean ×4–7). P99 is reported, and gated only when the policy says so (it spreads ±70 %
between processes of one machine); throughput is reported, never gated (a few calls: too noisy). Another
CPU or GPU class computes at another speed by design: its latency is shown as not comparable, never as drift.
A target whose CPU was emulated (cpu.emulated: qemu-user) measured the emulator's speed: shown, never judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envcheck import fields
from envcheck.model import LATENCY_SLOWER, Finding, Severity, milliseconds

SLOWER = LATENCY_SLOWER
QUOTA_BELOW_THREADS = "cpu-quota-below-threads"
ONE_INTRA_OP_THREAD = "intra-op-threads-one"
ONEDNN_OFF = "onednn-off"
ALWAYS_REPORTED = (QUOTA_BELOW_THREADS,)
# Per architecture, above these ISA words the kernels TensorFlow or XNNPACK pick change; the class names the highest
# the CPU has (cpu.tf_flags).
ISA_LEVELS = {
    fields.X86_64: (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")),
    fields.AARCH64: (("sme", "SME"), ("sve2", "SVE2"), ("sve", "SVE"), ("i8mm", "NEON I8MM"),
                     ("asimddp", "NEON dot product"), ("asimd", "NEON")),
}
SUMMARY_KEYS = ("p50_s", "p90_s", "p99_s", "mean_s", "mad_s", "calls", "cold_first_call_s", "throughput_per_s",
                "batch", "block_p50_s")


@dataclass(frozen=True)
class LatencyPolicy:
    """When a slower P50 (and, if asked, P99) warns or fails."""

    # Measured (docs/drift.md): the same host probed 40 times had P50 ratios 0.79–1.46 and means 0.89–1.13
    # to their median, on a shared 2-CPU VM at load up to 3.9; 1.75 stays clear of that.
    warn_ratio: float = 1.75
    fail_ratio: float = 3.0
    gate_p99: bool = False


def hardware_class(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What decides a model's speed, coarsely: the GPU (name, compute capability) if TensorFlow uses one,
    else the CPU model and the highest instruction-set level TensorFlow can use; and the emulator, if one ran
    the CPU (a key only then, so that the classes stored in older goldens still compare)."""
    tensorflow = fingerprint.get("tensorflow") or {}
    gpus = [g for g in tensorflow.get("gpu_devices") or [] if isinstance(g, dict)]
    if gpus:
        first = gpus[0]
        return {"kind": "gpu", "name": first.get("name"), "compute_capability": first.get("compute_capability"),
                "count": len(gpus)}
    cpu = fingerprint.get("cpu") or {}
    flags = set(cpu.get("tf_flags") or [])
    isa = next((name for flag, name in ISA_LEVELS.get(fields.machine(fingerprint), ()) if flag in flags), "baseline")
    emulator = fields.emulator(fingerprint)
    return {"kind": "cpu", "model": cpu.get("model"), "isa": isa, **({"emulated": emulator} if emulator else {})}


def class_label(hardware: dict[str, Any] | None) -> str:
    """`CPU AMD EPYC 7B13 (AVX2)` or `GPU NVIDIA H100 (cc 9.0) ×8`, for people."""
    if not hardware:
        return "unknown"
    if hardware.get("kind") == "gpu":
        count = hardware.get("count") or 1
        return f"GPU {hardware.get('name')} (cc {hardware.get('compute_capability')})" + (f" ×{count}" if count > 1 else "")
    emulated = f", emulated by {hardware['emulated']}" if hardware.get("emulated") else ""
    return f"CPU {hardware.get('model') or 'of unknown model'} ({hardware.get('isa')}{emulated})"


def reference_latency(latency: dict[str, Any] | None, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """What a golden stores: the reference target's latency summary and its hardware class (None when the
    reference measured none)."""
    if not measured(latency):
        return None
    assert latency is not None
    return {**{key: latency[key] for key in SUMMARY_KEYS if key in latency}, "hardware_class": hardware_class(fingerprint)}


def measured(latency: dict[str, Any] | None) -> bool:
    """True for a latency record with a P50 (not skipped, not missing)."""
    return isinstance(latency, dict) and isinstance(latency.get("p50_s"), (int, float)) and latency["p50_s"] > 0


def block_spread(latency: dict[str, Any]) -> float:
    """max/min of the P50 of each block of calls: how far the run disagrees with itself."""
    blocks = [b for b in latency.get("block_p50_s") or [] if isinstance(b, (int, float)) and b > 0]
    return max(blocks) / min(blocks) if len(blocks) >= 2 else 1.0


def compare_latency(latency: dict[str, Any] | None, fingerprint: dict[str, Any], golden: dict[str, Any] | None,
                    policy: LatencyPolicy,
                    concurrent_probes: int = 1) -> tuple[dict[str, Any] | None, tuple[Finding, ...]]:
    """(the report's `latency` entry of a target, findings at their default severities: compare/severity.py
    applies the policy); `concurrent_probes` how many probes the run had going at once (with more than one they
    compete for the same CPUs: shown, never judged)."""
    if latency is None:
        return None, ()
    entry: dict[str, Any] = {"target": latency}
    explanations = explain_slowness(latency, fingerprint)
    # A quota below the thread count is a misconfiguration whatever the golden says; the other settings
    # are named only as reasons when the target is measurably slower.
    found = [f for f in explanations if f[0] in ALWAYS_REPORTED]
    if not measured(latency):
        entry["status"] = "not-measured"
        entry["message"] = f"not measured: {latency.get('skipped') or 'no timed calls'}"
        return entry, _findings(found)
    target_class = hardware_class(fingerprint)
    entry["hardware_class"] = {"target": class_label(target_class)}
    if not measured(golden):
        entry["status"] = "no-reference"
        entry["message"] = f"P50 {milliseconds(latency['p50_s'])}; the golden has no reference latency"
        return entry, _findings(found)
    assert golden is not None
    entry["golden"] = {key: golden[key] for key in SUMMARY_KEYS if key in golden}
    entry["hardware_class"]["golden"] = class_label(golden.get("hardware_class"))
    if target_class.get("emulated"):
        entry["status"] = "not-comparable"
        entry["message"] = (f"P50 {milliseconds(latency['p50_s'])}; not judged: measured under "
                            f"{target_class['emulated']} emulation, which says nothing of the box's speed")
        return entry, _findings(found)
    if concurrent_probes > 1:
        entry["status"] = "not-comparable"
        entry["message"] = (f"P50 {milliseconds(latency['p50_s'])}; not comparable: measured while {concurrent_probes} "
                            "probes ran at once (check with --jobs 1 to compare latency)")
        return entry, _findings(found)
    if golden.get("hardware_class") != target_class:
        entry["status"] = "not-comparable"
        entry["message"] = (f"P50 {milliseconds(latency['p50_s'])}; not comparable (golden: {entry['hardware_class']['golden']}, "
                            f"target: {entry['hardware_class']['target']})")
        return entry, _findings(found)
    gated, severity = _judge(latency, golden, policy, entry)
    if severity:
        worst = max(gated, key=lambda item: item[1])
        found = explanations
        reasons = "; ".join(message for _, _, message, _ in found) or "no setting of the target explains it"
        found.insert(0, (SLOWER, severity, f"{worst[0]} latency is ×{worst[1]:.2f} the golden's on the same hardware "
                                           f"class ({entry['message']})",
                         f"Look at what limits the target: {reasons}."))
    return entry, _findings(found)


def _judge(latency: dict[str, Any], golden: dict[str, Any], policy: LatencyPolicy,
           entry: dict[str, Any]) -> tuple[list[tuple[str, float]], Severity | None]:
    """Fill `entry` with the ratios, status and message; (the gated ratios by name, the worst severity)."""
    ratio = latency["p50_s"] / golden["p50_s"]
    spread = block_spread(latency)
    entry.update(ratio_p50=round(ratio, 4), block_spread=round(spread, 4))
    gated = [("P50", ratio)]
    mean = _ratio(latency, golden, "mean_s")
    if mean is not None:
        entry["ratio_mean"] = round(mean, 4)
        gated.append(("mean", mean))
    p99 = _ratio(latency, golden, "p99_s")
    if p99 is not None:
        entry["ratio_p99"] = round(p99, 4)
        if policy.gate_p99:
            gated.append(("P99", p99))
    throughput = _ratio(golden, latency, "throughput_per_s")  # golden / target: above 1 is slower
    if throughput is not None:
        entry["throughput_slowdown"] = round(throughput, 4)
    severity: Severity | None = None
    for _, value in gated:
        if value > policy.fail_ratio:
            severity = "fail"
        elif value > policy.warn_ratio and value > spread and severity is None:
            severity = "warn"
    entry["status"] = "slower" if severity else "ok"
    mean_words = f", mean ×{mean:.2f}" if mean is not None else ""
    entry["message"] = (f"P50 {milliseconds(latency['p50_s'])} vs golden {milliseconds(golden['p50_s'])} (×{ratio:.2f}"
                        f"{mean_words}; warn above ×{policy.warn_ratio:g}, fail above ×{policy.fail_ratio:g})")
    return gated, severity


def _ratio(numerator: dict[str, Any], denominator: dict[str, Any], key: str) -> float | None:
    top, bottom = numerator.get(key), denominator.get(key)
    number = (int, float)
    if isinstance(top, number) and isinstance(bottom, number) and bottom > 0 and top >= 0:
        return float(top) / float(bottom)
    return None


def explain_slowness(latency: dict[str, Any], fingerprint: dict[str, Any]) -> list[tuple[str, Severity, str, str]]:
    """Settings of the target that make the same model slower on the same hardware."""
    context = latency.get("context") or {}
    found: list[tuple[str, Severity, str, str]] = []
    quota, threads, visible = context.get("cpu_quota_cpus"), context.get("intra_op_threads"), context.get("visible_cpus")
    # 0 is TensorFlow's default: one intra-op thread per CPU it may run on (a quota does not lower it).
    default = threads == 0 and isinstance(visible, int)
    effective = visible if default else threads
    if isinstance(quota, (int, float)) and isinstance(effective, int) and 0 < quota < effective:
        found.append((QUOTA_BELOW_THREADS, "warn",
                      f"a CPU quota of {quota:g} CPUs is below TensorFlow's {effective} intra-op threads"
                      + (" (its default: one per visible CPU)" if default else ""),
                      "Threads wait for each other's time slices: raise the container's CPU limit to at least the "
                      "thread count, or set TF_NUM_INTRAOP_THREADS to the quota."))
    if threads == 1 and isinstance(visible, int) and visible > 1:
        found.append((ONE_INTRA_OP_THREAD, "info", f"TensorFlow uses 1 intra-op thread on {visible} visible CPUs",
                      "Unset TF_NUM_INTRAOP_THREADS (or the threading config) unless one thread is intended."))
    tensorflow = fingerprint.get("tensorflow") or {}
    forced_off = str((fingerprint.get("env") or {}).get("TF_ENABLE_ONEDNN_OPTS", "")).strip() in ("0", "false", "False")
    if tensorflow.get("onednn_enabled") is False and forced_off:
        found.append((ONEDNN_OFF, "info", "oneDNN's optimised CPU kernels are switched off (TF_ENABLE_ONEDNN_OPTS=0)",
                      "Remove TF_ENABLE_ONEDNN_OPTS=0 unless bitwise agreement with a oneDNN-off golden matters more."))
    return found


def _findings(found: list[tuple[str, Severity, str, str]]) -> tuple[Finding, ...]:
    return tuple(Finding(code=code, severity=severity, message=message, hint=hint)
                 for code, severity, message, hint in found)
