"""arm64 edge boxes, for real under emulation (issue 28): arm64 fixture images (Debian bookworm for arm64, built by
fixtures/images/build.py through qemu-user-static and binfmt_misc) run the probe and the kit unchanged.

- edge-arm64: a Pi-like box, Python and LiteRT only; qemu's default CPU (every Arm feature up to SVE2 and SME);
- edge-arm64-cortex-a72: the same image on a Raspberry Pi 4's CPU as qemu emulates it (QEMU_CPU=cortex-a72: no
  dot-product, i8mm, SVE or bf16 instructions);
- tf-arm64: TensorFlow's own aarch64 wheel, where a golden is made.

Their cost here (2-core x86 VM, qemu 7.2): importing TensorFlow under qemu takes ~18 s, so the golden made in
tf-arm64 (no layers, uncalibrated) takes ~1 min and its check ~30 s; a LiteRT-only check takes ~5 s. The four
tests take about 2 minutes together.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import docker_leaving_nothing, require

from envcheck.errors import ExitCode

from kit.conftest import build_kit, same_as_check

from .test_edge import EDGE_OUTPUTS

pytestmark = [pytest.mark.docker]

PREFIX = "envcheck-fixture"
IMAGES = ("edge-arm64", "edge-arm64-cortex-a72", "tf-arm64")
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
X86_WORDS = ("AVX", "AMX", "SSE", "SIGILL", "oneDNN's ISA")


def _target(name: str) -> str:
    return f"docker:{PREFIX}/{name}"


@pytest.fixture(scope="module")
def docker_client():
    require(BINFMT_ENTRY.is_file() and "enabled" in BINFMT_ENTRY.read_text(),
            f"qemu-user-static registered with binfmt_misc ({BINFMT_ENTRY}): arm64 images cannot run without it")
    with docker_leaving_nothing(*(f"{PREFIX}/{name}" for name in IMAGES)) as client:
        yield client


@pytest.fixture(scope="module")
def arm64_golden(docker_client, tmp_path_factory) -> Path:
    """The built-in edge model as a golden made IN the arm64 TensorFlow image (converted to TFLite there)."""
    out = tmp_path_factory.mktemp("golden") / "arm64"
    made = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--builtin", "--edge", "--target",
                           _target("tf-arm64"), "--out", str(out), "--no-calibrate", "--no-layers"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return out


def _texts(target: dict) -> str:
    """Every sentence the report says about a target: its hints, its findings' messages and hints."""
    findings = [f"{f.get('message')} {f.get('hint') or ''}" for f in target.get("findings") or []]
    return "\n".join([*(target.get("hints") or []), *findings])


def test_the_built_in_edge_golden_on_an_arm64_box_speaks_of_arm(run_cli, docker_client):
    code, _, err, report = run_cli("check", "--golden", "builtin:edge", "--target", _target("edge-arm64"))
    (target,) = report["targets"]
    cpu = target["fingerprint"]["cpu"]
    assert (cpu["machine"], cpu["emulated"]) == ("aarch64", "qemu")
    assert {"asimd", "asimddp"} <= set(cpu["flags"]) and cpu["hwcaps"] and "avx" not in cpu["tf_flags"]
    # x86 golden, arm64 target: a known drift class, named; the outputs are bounded noise, so the gate passes.
    assert code == ExitCode.OK and target["verdict"] == "WARN", err
    assert set(target["outputs"]) == EDGE_OUTPUTS
    assert all(o["status"] in ("identical", "noise") for o in target["outputs"].values()), target["outputs"]
    codes = {f["code"] for f in target["findings"]}
    assert {"cross-architecture", "emulated"} <= codes, codes
    said = _texts(target)
    assert "calibration cannot model another ISA" in said
    assert not [word for word in X86_WORDS if word in said], said


def test_a_golden_made_in_the_arm64_image_is_identical_there_and_on_the_litert_box(run_cli, arm64_golden):
    manifest = json.loads((arm64_golden / "manifest.json").read_text())
    assert manifest["tflite"]["status"] == "ok"
    code, _, err, report = run_cli("check", "--golden", str(arm64_golden), "--target", _target("tf-arm64"),
                                   "--target", _target("edge-arm64"))
    verdicts = {t["spec"]: t["verdict"] for t in report["targets"]}
    assert code == ExitCode.OK, err
    assert verdicts == {_target("tf-arm64"): "IDENTICAL", _target("edge-arm64"): "IDENTICAL"}, err
    for target in report["targets"]:
        assert target["fingerprint"]["cpu"]["machine"] == "aarch64"
        assert "cross-architecture" not in {f["code"] for f in target["findings"]}


def test_a_pi4_cpu_under_the_same_golden_names_the_missing_arm_features(run_cli, arm64_golden):
    code, _, err, report = run_cli("check", "--golden", str(arm64_golden), "--target", _target("edge-arm64-cortex-a72"))
    (target,) = report["targets"]
    assert target["fingerprint"]["cpu"]["tf_flags"] == ["asimd"]
    assert code == ExitCode.OK and target["verdict"] == "WARN", err
    flags = [d for d in target["fingerprint_diff"] if d["path"] == "cpu.tf_flags"]
    assert flags and flags[0]["severity"] == "warn"
    said = _texts(target)
    assert "asimddp" in said and "XNNPACK" in said and "qemu" in said, said
    assert not [word for word in X86_WORDS if word in said], said


def test_the_kit_runs_unchanged_on_the_arm64_box(run_cli, docker_client, tmp_path):
    kit = build_kit(tmp_path / "kit.pyz", "--golden", "builtin:edge")
    ran = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{kit}:/kit.pyz:ro",
                          f"{PREFIX}/edge-arm64", "python3", "/kit.pyz", "--site", "pi-7", "--out", "-"],
                         capture_output=True, timeout=600)
    assert ran.returncode == ExitCode.OK, ran.stderr.decode()
    capture = tmp_path / "capture.tar.gz"
    capture.write_bytes(ran.stdout)
    code, verdict, statuses, _ = same_as_check(run_cli, capture, "builtin:edge", "edge-arm64")
    assert (code, verdict) == (ExitCode.OK, "WARN") and set(statuses) == EDGE_OUTPUTS
