"""Arm targets on the comparing side (issue 28, items 3 and 4), on synthetic fingerprints: the built-in golden's real
x86 fingerprint with its `cpu` section rewritten into an arm64 one, as the probe writes it (no arm64 machine or image
needed). The registry knows the new fields; x86 hints never speak of an Arm box, Arm boxes get their own; a golden of
another architecture is a drift class of its own, explained once; an emulated target's latency is not judged and its
hints blame qemu's CPU, not the box; a policy's band for an architecture applies only across architectures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envcheck import fields, schemas
from envcheck.compare.evaluate import evaluate
from envcheck.compare.latency import LatencyPolicy, class_label, compare_latency, hardware_class, reference_latency
from envcheck.compare.policy import PolicyFileError, build_policy, load_policy_file
from envcheck.golden import builtin_golden_dir
from envcheck.model import Capture, Reference, TargetResult, Tolerance
from envcheck.redact import redact_fingerprint

ARM_WORDS_NEVER_X86 = ("AVX", "AMX", "avx512", "SIGILL", "x86 wheel")


def _x86_golden() -> dict[str, Any]:
    """The built-in golden's fingerprint: x86_64, from a probe that wrote no page size."""
    return fields.current_fingerprint(json.loads((builtin_golden_dir() / "fingerprint.json").read_text()))


def _arm_cpu(core: str, part: str, tf_flags: list[str], **more: Any) -> dict[str, Any]:
    """An arm64 `cpu` section as the probe writes it (docs/fields.md): Features in flags, AT_HWCAP names in hwcaps."""
    flags = sorted({"fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "cpuid", *tf_flags})
    return {"machine": "aarch64", "model": f"ARM {core}", "logical_cpus": 4, "usable_cpus": 4, "cgroup_cpu_max": None,
            "flags": flags, "hwcaps": flags, "tf_flags": sorted(tf_flags), "page_size": 4096,
            "arm": {"implementer": "0x41", "vendor": "ARM", "part": part, "core": core, "variant": "0x4",
                    "revision": "1"}, **more}


PI4 = _arm_cpu("Cortex-A72", "0xd08", ["asimd"])
PI5 = _arm_cpu("Cortex-A76", "0xd0b", ["asimd", "asimddp", "asimdhp", "asimdrdm", "fphp"])
# qemu-user's `max` CPU: every feature qemu emulates; the model is unknown (the cpuinfo describes no real CPU).
QEMU = {**_arm_cpu("Cortex-A76", "0xd0b", ["asimd", "asimddp", "asimdhp", "asimdrdm", "asimdfhm", "fphp", "i8mm",
                                            "bf16", "sve", "sve2", "svei8mm", "svebf16", "sme"]),
        "model": None, "emulated": "qemu"}


def _with_cpu(cpu: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {**_x86_golden(), "cpu": cpu, **sections}


VALUES = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)


def _judge(golden: dict[str, Any], target: dict[str, Any], drift: float = 0.0, policy=None) -> TargetResult:
    """The target, whose outputs are the golden's moved by `drift`, judged against the golden."""
    reference = Reference(expected={"y": VALUES}, fingerprint=redact_fingerprint(golden))
    capture = Capture(spec="docker:edge-arm64", fingerprint=target, outputs={"y": VALUES + np.float32(drift)})
    return evaluate(capture, reference, policy or build_policy())


def _codes(result: TargetResult) -> dict[str, str]:
    return {finding.code: finding.severity for finding in result.findings}


# ------------------------------------------------------------------------------------------- the registry

@pytest.mark.parametrize("path, severity, label", [
    pytest.param("cpu.hwcaps", "info", "CPU hwcaps (AT_HWCAP)", id="hwcaps"),
    pytest.param("cpu.arm.part", "warn", "Arm CPU core", id="arm-core"),
    pytest.param("cpu.arm", "warn", "Arm CPU core", id="arm-identity-added"),
    pytest.param("cpu.page_size", "info", "memory page size", id="page-size"),
    pytest.param("cpu.emulated", "info", "CPU emulated by", id="emulated"),
    pytest.param("cpu.machine", "info", "CPU architecture", id="machine-the-finding-decides"),
    pytest.param("cpu.flags", "info", "CPU flags", id="flags"),
    pytest.param("board.model", "info", "board", id="board-model"),
    pytest.param("board.jetson.l4t", "warn", "Jetson L4T/JetPack", id="jetson-l4t"),
    pytest.param("board.jetson.jetpack", "warn", "Jetson L4T/JetPack", id="jetpack"),
    pytest.param("board.jetson.board", "info", "Jetson board", id="jetson-board-name"),
])
def test_the_arm_fields_have_their_severity_and_label(path, severity, label):
    assert build_policy().severity_for(path) == severity
    assert fields.label_for(path) == label


def test_a_page_size_an_older_golden_lacks_changes_no_verdict():
    golden = _x86_golden()
    assert "page_size" not in golden["cpu"]
    newer = {**golden, "cpu": {**golden["cpu"], "page_size": 4096}}
    result = _judge(golden, newer)
    assert result.verdict == "IDENTICAL" and result.findings == () and result.hints == ()
    assert [(d.path, d.severity) for d in result.fingerprint_diff] == [("cpu.page_size", "info")]


def test_every_architecture_the_policy_names_is_one_the_registry_knows():
    band = schemas.load_schema("policy")["properties"]["tolerance"]["properties"]["architecture"]
    assert set(band["properties"]) == set(fields.ARCHITECTURE_FIELDS) == {fields.X86_64, fields.AARCH64}


@pytest.mark.parametrize("spelling, machine", [("aarch64", "aarch64"), ("arm64", "aarch64"), ("AMD64", "x86_64"),
                                               ("x86_64", "x86_64"), (None, "x86_64")])
def test_a_machine_is_read_under_its_linux_name(spelling, machine):
    assert fields.machine({"cpu": {"machine": spelling}}) == machine


# ------------------------------------------------------------------------------------------- hints

def test_an_arm_box_missing_dot_product_gets_the_arm_hint_and_no_x86_one():
    result = _judge(_with_cpu(PI5), _with_cpu(PI4), drift=3e-6)
    (hint,) = [h for h in result.hints if "features differ" in h]
    assert "missing asimddp, asimdhp, asimdrdm, fphp" in hint
    assert "XNNPACK" in hint and "int8" in hint and "round-off" in hint
    assert "emulat" not in hint  # a real box: nothing to say about qemu
    assert not [h for h in result.hints if any(word in h for word in ARM_WORDS_NEVER_X86)], result.hints


def test_an_arm_core_of_another_design_is_a_warn_with_its_hint():
    result = _judge(_with_cpu(PI4), _with_cpu({**PI4, "arm": {**PI4["arm"], "part": "0xd0b", "core": "Cortex-A76"}}))
    assert result.verdict == "WARN"
    assert any("Arm CPU core differs (cpu.arm.core" in h and "micro-kernels" in h for h in result.hints)


def test_onednn_on_an_arm_box_speaks_of_the_arm_compute_library_not_of_avx512():
    arm = _with_cpu(PI5)
    off = {**arm, "env": {**arm["env"], "TF_ENABLE_ONEDNN_OPTS": "0"}}
    hints = _judge(arm, off).hints
    assert any("Arm Compute Library" in h for h in hints)
    assert not [h for h in hints if "avx512" in h or "15 ULP" in h], hints


def test_an_x86_box_keeps_its_x86_hints():
    golden = _x86_golden()
    avx2 = {**golden, "cpu": {**golden["cpu"], "tf_flags": ["avx", "avx2", "fma", "sse4_1", "sse4_2"]}}
    hints = _judge(golden, avx2).hints
    assert any("AVX2 / AVX-512 / AMX" in h for h in hints)
    assert not [h for h in hints if "Arm" in h or "NEON" in h], hints


def test_a_jetson_of_another_jetpack_warns_and_names_its_cuda_stack():
    jetson = {"model": "NVIDIA Jetson AGX Orin", "jetson": {"l4t": "R35.4.1", "board": "t186ref",
                                                              "release": "R35", "jetpack": "5.1.2"}}
    newer = {**jetson, "jetson": {**jetson["jetson"], "l4t": "R36.4.0", "release": "R36", "jetpack": "6.1"}}
    result = _judge(_with_cpu(PI5, board=jetson), _with_cpu(PI5, board=newer))
    assert result.verdict == "WARN"
    assert any("L4T/JetPack differs" in h and "TensorRT" in h for h in result.hints)


# ------------------------------------------------------------------------------------------- across architectures

def test_an_x86_golden_on_an_arm_target_is_a_cross_architecture_warn_explained_once():
    result = _judge(_x86_golden(), _with_cpu(PI5))
    assert result.verdict == "WARN"  # never FAIL for fields only one architecture's probe writes
    finding = next(f for f in result.findings if f.code == "cross-architecture")
    assert finding.severity == "warn"
    assert "x86_64 (AMD EPYC)" in finding.message and "aarch64 (ARM Cortex-A76)" in finding.message
    assert "calibration cannot model another ISA" in finding.hint and "[tolerance.architecture.aarch64]" in finding.hint
    assert "NEON/SVE here" in finding.hint
    # The target is an Arm box: nothing said of it, the finding included, speaks of x86's instructions.
    assert not [text for text in (*result.hints, finding.hint) if any(word in text for word in ARM_WORDS_NEVER_X86)]
    # One cause explains the CPU differences: the architecture, leading, and no flag or ISA hint beside it.
    (hint,) = result.hints
    assert hint.startswith("The CPU architecture differs (cpu.machine: x86_64 → aarch64)")
    assert "calibration cannot model another ISA" in hint
    paths = {d.path for d in result.fingerprint_diff}
    assert not {"cpu.missing_required_flags", "cpu.arm", "cpu.hwcaps"} & paths, paths


def test_across_architectures_drift_is_never_said_to_have_no_explanation():
    quiet = build_policy({"severity": {"cpu.*": "info"}})  # no CPU difference above info: the architecture remains
    hints = _judge(_x86_golden(), _with_cpu(PI5), drift=3e-6, policy=quiet).hints
    assert hints[0].startswith("The CPU architecture differs")
    assert not [h for h in hints if "no fingerprint difference explains it" in h], hints


def test_an_arm_golden_on_an_x86_target_is_the_same_drift_class_the_other_way():
    result = _judge(_with_cpu(PI5), _x86_golden())
    finding = next(f for f in result.findings if f.code == "cross-architecture")
    assert "[tolerance.architecture.x86_64]" in finding.hint and "SSE/AVX here" in finding.hint
    assert result.hints[0].startswith("The CPU architecture differs (cpu.machine: aarch64 → x86_64)")
    assert result.verdict == "WARN"


def test_one_architecture_on_both_sides_is_no_cross_architecture_finding():
    assert "cross-architecture" not in _codes(_judge(_with_cpu(PI4), _with_cpu(PI5)))
    assert "cross-architecture" not in _codes(_judge(_x86_golden(), _x86_golden()))


def test_the_lack_of_x86_instructions_is_never_said_of_an_arm_box():
    odd = _with_cpu({**PI4, "missing_required_flags": ["avx"]})  # whatever a probe writes, an Arm box lacks no AVX
    assert "cpu-lacks-tensorflow-instructions" not in _codes(_judge(_with_cpu(PI4), odd))


# ------------------------------------------------------------------------------------------- the policy's band

ARM_BAND = {"tolerance": {"architecture": {"aarch64": {"atol": 1e-4, "rtol": 1e-4}}}}


def test_an_arm_target_drifting_5e_5_fails_the_default_band_and_passes_the_arm_band():
    default = _judge(_x86_golden(), _with_cpu(PI5), drift=5e-5)
    assert default.verdict == "FAIL" and default.outputs[0].status == "drift"
    banded = _judge(_x86_golden(), _with_cpu(PI5), drift=5e-5, policy=build_policy(ARM_BAND))
    assert banded.outputs[0].status == "noise" and banded.outputs[0].tolerance == Tolerance(1e-4, 1e-4)
    assert banded.verdict == "WARN"  # the architecture still differs: never IDENTICAL, never PASS unseen


def test_the_arm_band_is_not_used_for_an_arm_target_against_an_arm_golden():
    same = _judge(_with_cpu(PI5), _with_cpu(PI5), drift=5e-5, policy=build_policy(ARM_BAND))
    assert same.verdict == "FAIL" and same.outputs[0].tolerance == Tolerance()


def test_the_arm_band_is_not_used_for_an_x86_target_against_an_arm_golden():
    x86_target = _judge(_with_cpu(PI5), _x86_golden(), drift=5e-5, policy=build_policy(ARM_BAND))
    assert x86_target.verdict == "FAIL"


def test_the_band_widens_an_outputs_own_band_and_never_narrows_it():
    policy = build_policy({"tolerance": {"outputs": {"y": {"atol": 1e-2}}, "architecture": {
        "aarch64": {"atol": 1e-4, "rtol": 1e-4}}}})
    crossed = policy.across(fields.Architectures(golden="x86_64", target="aarch64"))
    assert crossed.tolerance_for("y") == Tolerance(atol=1e-2, rtol=1e-4)
    assert crossed.tolerance_for("tflite:y") == Tolerance(atol=1e-2, rtol=1e-4)
    assert crossed.tolerance_for("parity:y") == policy.tolerance_for("y") == Tolerance(atol=1e-2, rtol=1e-5)
    assert crossed.tolerance_for("other") == Tolerance(1e-4, 1e-4)
    same = policy.across(fields.Architectures(golden="aarch64", target="aarch64"))
    assert same.tolerance_for("other") == Tolerance()


def test_a_policy_file_sets_the_band(tmp_path: Path):
    path = tmp_path / "policy.toml"
    path.write_text("[tolerance.architecture.aarch64]\natol = 1e-4\n")
    policy = build_policy(load_policy_file(path))
    assert policy.architecture_tolerances == {"aarch64": Tolerance(atol=1e-4, rtol=1e-5)}


def test_a_golden_manifest_may_store_the_band():
    manifest = json.loads((builtin_golden_dir() / "manifest.json").read_text())
    manifest["policy"] = {**manifest["policy"], "tolerance": {**manifest["policy"]["tolerance"], **ARM_BAND["tolerance"]}}
    assert schemas.problems("envcheck.golden/1", manifest) == []


@pytest.mark.parametrize("text, says", [
    pytest.param("[tolerance.architecture.arm64]\natol = 1e-4\n", "`[tolerance.architecture.arm64]`", id="arm64"),
    pytest.param("[tolerance.architecture.aarch64]\natoll = 1e-4\n", "did you mean `[tolerance.architecture.aarch64] "
                 "atol`?", id="misspelt-key"),
    pytest.param("[tolerance.architecture.aarch64]\natol = -1e-4\n", "must be a non-negative number", id="negative"),
    pytest.param("[tolerance.architecture.aarch64]\natol = nan\n", "must be a non-negative number", id="nan"),
    pytest.param("[tolerance.architecture.aarch64]\natol = \"1e-4\"\n", "must be a number", id="a-string"),
])
def test_a_bad_band_is_a_usage_error_naming_it(tmp_path: Path, text: str, says: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as raised:
        load_policy_file(path)
    assert says in str(raised.value) and "\n" not in str(raised.value)


# ------------------------------------------------------------------------------------------- emulation

def test_an_emulated_target_is_an_info_finding_and_its_cpu_hints_blame_qemu_not_the_box():
    result = _judge(_with_cpu(PI5), _with_cpu(QEMU), drift=3e-6)
    finding = next(f for f in result.findings if f.code == "emulated")
    assert finding.severity == "info" and "qemu" in finding.message
    assert "latency means nothing" in finding.hint and "numerics are qemu's" in finding.hint
    (hint,) = [h for h in result.hints if "features differ" in h]
    assert "extra asimdfhm, bf16, i8mm, sme, sve, sve2, svebf16, svei8mm" in hint
    assert "the features of the CPU qemu emulates, not of the box's own CPU" in hint


def test_a_golden_made_in_the_same_emulated_image_stays_identical():
    emulated = _with_cpu(QEMU)
    result = _judge(emulated, emulated)
    assert result.verdict == "IDENTICAL" and _codes(result) == {"emulated": "info"}


def _latency(p50_ms: float) -> dict[str, Any]:
    return {"batch": 1, "calls": 200, "p50_s": p50_ms / 1000, "mean_s": p50_ms / 1000, "p99_s": p50_ms * 1.5 / 1000,
            "block_p50_s": [p50_ms / 1000] * 3, "context": {"visible_cpus": 4, "intra_op_threads": 4}}


def test_an_emulated_targets_latency_is_shown_and_never_judged():
    qemu = _with_cpu(QEMU)
    golden = reference_latency(_latency(1.0), qemu)  # even against a golden timed in the same emulation
    entry, findings = compare_latency(_latency(40.0), qemu, golden, LatencyPolicy())
    assert entry is not None and entry["status"] == "not-comparable" and findings == ()
    assert "qemu emulation" in entry["message"] and "40 ms" in entry["message"]


def test_an_arm_cpu_class_names_its_arm_isa_and_an_x86_class_is_unchanged():
    assert hardware_class(_with_cpu(PI5)) == {"kind": "cpu", "model": "ARM Cortex-A76", "isa": "NEON dot product"}
    assert hardware_class(_with_cpu(PI4))["isa"] == "NEON"
    assert class_label(hardware_class(_with_cpu(QEMU))) == "CPU of unknown model (SME, emulated by qemu)"
    # The classes older goldens stored keep comparing equal: no new key on a real x86 CPU.
    assert hardware_class(_x86_golden()) == {"kind": "cpu", "model": "AMD EPYC", "isa": "AVX-512"}
