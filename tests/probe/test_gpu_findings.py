"""Findings that fail the gate, each from a realistic capture: the real built-in golden's fingerprint
with the GPU section the probe's own code reads from a recorded NVML answer, and TensorFlow build info
recorded from a real CUDA build."""
from __future__ import annotations

import copy
import json

import pytest

from envcheck.compare.findings import find_problems
from envcheck.compare.policy import build_policy
from envcheck.compare.severity import resolve_findings
from envcheck.errors import ExitCode
from envcheck.golden import load_golden

from .gpu_fixtures import GPU_FIXTURES, load_record

CUDA_BUILD = json.loads((GPU_FIXTURES / "tf-build-info" / "conda-forge-cuda-11.2.json").read_text())["build_info"]


@pytest.fixture
def capture_with_gpu(probe, fake_nvml, fake_nvml_from):
    def make(nvml_record: str | dict, *, build=None, tf_gpus=(), loaded=None, installed=None, env=None) -> dict:
        """nvml_record: a fixture's name, or a record changed in the test (with a "label")."""
        fingerprint = copy.deepcopy(load_golden().fingerprint)
        library = fake_nvml(nvml_record) / "libnvidia-ml.so.1" if isinstance(nvml_record, str) else \
            fake_nvml_from(nvml_record, nvml_record["label"])
        nvml = probe.nvml.nvml_fingerprint(str(library))
        fingerprint["gpu"] = probe.gpu.gpu_fingerprint(nvml=nvml, smi={}, proc_text="")
        fingerprint["tensorflow"]["build_info"] = dict(build or fingerprint["tensorflow"]["build_info"])
        fingerprint["tensorflow"]["gpu_devices"] = [{"name": n, "compute_capability": c} for n, c in tf_gpus]
        fingerprint["native_libraries"] = {"loaded": loaded or {}, "installed": installed or {}}
        fingerprint["env"].update(env or {})
        return fingerprint
    return make


def _codes(fingerprint, golden=None, policy=None):
    """The findings by code, at the severities the policy gives them (the pipeline of compare/severity.py)."""
    proposed = find_problems(fingerprint, golden or load_golden().fingerprint)
    return {f.code: f for f in resolve_findings(proposed, policy or build_policy())}


def test_cpu_only_tensorflow_on_a_gpu_machine_falls_back_silently(capture_with_gpu):
    found = _codes(capture_with_gpu("a100-sxm4-80gb-470.103.01"))
    fallback = found["gpu-cpu-fallback"]
    assert fallback.severity == "fail" and "NVIDIA A100-SXM4-80GB" in fallback.message
    assert "no CUDA support" in fallback.hint and "tensorflow-cpu" in fallback.hint


def test_driver_older_than_the_build_cuda(capture_with_gpu):
    """The 470 driver (CUDA 11.4) under a TensorFlow built with CUDA 12.2 (the conda-forge build record with
    its CUDA version raised, as TensorFlow 2.15's wheels are built)."""
    build = dict(CUDA_BUILD, cuda_version="12.2")
    found = _codes(capture_with_gpu("a100-sxm4-80gb-470.103.01", build=build))
    assert found["driver-cuda-too-old"].severity == "fail"
    assert "CUDA 11.4" in found["driver-cuda-too-old"].message and "12.2" in found["driver-cuda-too-old"].message
    assert "driver supports CUDA 11.4, older than the CUDA 12.2" in found["gpu-cpu-fallback"].hint


def test_driver_too_old_for_nvml_to_tell_its_cuda(capture_with_gpu):
    """Driver 375 (NVML API 8) has no nvmlSystemGetCudaDriverVersion, which every driver since CUDA 9.1 has."""
    found = _codes(capture_with_gpu("quadro-m1000m-375.82", build=CUDA_BUILD))
    message = found["driver-cuda-too-old"].message
    assert found["driver-cuda-too-old"].severity == "fail"
    assert "375.82" in message and "predates CUDA 9.1" in message and "API 5-8" in message and "11.2" in message
    assert "predates CUDA 9.1, older than the CUDA 11.2" in found["gpu-cpu-fallback"].hint


def test_missing_cuda_libraries_explain_the_fallback(capture_with_gpu):
    found = _codes(capture_with_gpu("a10g-510.85.02", build=CUDA_BUILD))
    assert "driver-cuda-too-old" not in found  # 11.6 driver, 11.2 build
    assert "CUDA libraries missing" in found["gpu-cpu-fallback"].hint


def test_loaded_cudnn_differs_from_the_build(capture_with_gpu):
    loaded = {"libcudnn": {"version": "9", "path": "/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib/libcudnn.so.9"},
              "libcublas": {"version": "11.4.1.1043", "path": "/usr/local/cuda-11.2/lib64/libcublas.so.11.4.1.1043"}}
    found = _codes(capture_with_gpu("a10g-510.85.02", build=CUDA_BUILD, tf_gpus=[("NVIDIA A10G", "8.6")],
                                    loaded=loaded, installed={"libcudnn": ["8.1.1"]}))
    assert found["cudnn-mismatch"].severity == "fail" and "9" in found["cudnn-mismatch"].message
    assert "cublas-mismatch" not in found  # cuBLAS 11 with CUDA 11.2
    assert found["libcudnn-copies-disagree"].severity == "warn"
    assert "gpu-cpu-fallback" not in found


@pytest.mark.parametrize("record", ["driver-library-mismatch", "driver-not-loaded"])
def test_nvml_errors_are_findings_with_plain_words(capture_with_gpu, record):
    found = _codes(capture_with_gpu(record))
    (finding,) = [f for code, f in found.items() if code.startswith("nvml-")]
    assert finding.severity == "fail"
    assert ("reboot" in finding.hint.lower()) == (record == "driver-library-mismatch")


def test_a_lost_gpu_is_a_finding_and_the_other_gpu_still_counts(capture_with_gpu):
    found = _codes(capture_with_gpu("a100-sxm4-40gb-x2-580.126.09-gpu1-lost"))
    lost = found["gpu-lost"]
    assert lost.severity == "fail" and "GPU 1" in lost.message and "the other 1 GPU(s) were read" in lost.message
    assert "Xid 79" in lost.hint
    assert not [code for code in found if code.startswith("nvml-")]  # NVML itself answered
    assert "1 × NVIDIA A100-SXM4-40GB" in found["gpu-cpu-fallback"].message  # the readable GPU only


def test_a_refused_gpu_is_a_warning(capture_with_gpu):
    found = _codes(capture_with_gpu("a100-sxm4-40gb-x2-580.126.09-gpu1-no-permission"))
    assert found["gpu-no-permission"].severity == "warn" and "GPU 1" in found["gpu-no-permission"].message
    assert "/dev/nvidia" in found["gpu-no-permission"].hint and "gpu-lost" not in found


def test_other_handle_errors_and_failed_queries(capture_with_gpu):
    record = load_record("a100-sxm4-40gb-x2-580.126.09")
    record["label"] = "reset-required-and-query-errors"
    record["gpus"][1]["handle_result"] = 16  # RESET_REQUIRED
    record["gpus"][0]["query_errors"] = {"memory": 4}  # memory info refused, as on a MIG GPU without privileges
    found = _codes(capture_with_gpu(record))
    assert found["gpu-inaccessible"].severity == "fail" and "RESET_REQUIRED" in found["gpu-inaccessible"].message
    assert "nvidia-smi -r" in found["gpu-inaccessible"].hint
    query = found["gpu-query-error"]
    assert query.severity == "warn" and "GPU 0" in query.message and "memory_total_mib (NO_PERMISSION)" in query.message
    record["label"], record["gpus"][0]["query_errors"] = "lost-mid-read", {"pci": 15}
    assert "fell off the bus while being read" in _codes(capture_with_gpu(record))["gpu-lost"].message


def test_gpu_golden_on_another_architecture_and_tf32_on_one_side(capture_with_gpu):
    golden = capture_with_gpu("a100-sxm4-40gb-x2-580.126.09", build=CUDA_BUILD,
                              tf_gpus=[("NVIDIA A100-SXM4-40GB", "8.0")] * 2)
    golden["tensorflow"]["tf32"] = True
    target = capture_with_gpu("a10g-510.85.02", build=CUDA_BUILD, tf_gpus=[("NVIDIA A10G", "8.6")],
                              env={"NVIDIA_TF32_OVERRIDE": "0"})
    target["tensorflow"]["tf32"] = True
    found = _codes(target, golden)
    assert "8.0" in found["gpu-architecture-differs"].message and "8.6" in found["gpu-architecture-differs"].message
    assert found["tf32-one-side"].severity == "fail" and "off here" in found["tf32-one-side"].message
    relaxed = build_policy({"severity": {"finding.gpu-architecture-differs": "warn"}})
    assert _codes(target, golden, relaxed)["gpu-architecture-differs"].severity == "warn"


def test_cpu_without_avx_is_named_before_the_import_crashes():
    fingerprint = copy.deepcopy(load_golden().fingerprint)
    fingerprint["cpu"]["missing_required_flags"] = ["avx", "sse4_2"]
    finding = _codes(fingerprint)["cpu-lacks-tensorflow-instructions"]
    assert finding.severity == "fail" and "avx, sse4_2" in finding.message


@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
def test_check_on_a_gpu_box_with_cpu_tensorflow_fails_end_to_end(run_cli, fake_nvml, monkeypatch, host_golden):
    """The whole probe, with the recorded A100 answering NVML through the real loader path."""
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml("a100-sxm4-80gb-470.103.01")))
    code, out, _, report = run_cli("check", "--golden", str(host_golden))
    target = report["targets"][0]
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    assert all(o["status"] == "identical" for o in target["outputs"].values())  # same bits, on the CPU
    # The fake libnvidia-ml.so.1 was built by the test, not installed by a package: named as such, as a
    # hand-copied driver library would be.
    # (A latency finding may join them on a loaded machine: the golden's latency was measured a moment before.)
    findings = [f for f in target["findings"] if not f["code"].startswith("latency-")]
    assert [f["code"] for f in findings] == ["gpu-cpu-fallback", "system-library-unowned"]
    assert "libnvidia-ml.so.1" in findings[1]["message"]
    gpu = target["fingerprint"]["gpu"]
    assert gpu["source"] == "nvml" and gpu["driver_version"] == "470.103.01"
    assert gpu["gpus"][0]["uuid"].startswith("sha256:")  # hashed in the shared report
    assert "GPU-a75cda02" not in json.dumps(report)
    assert "gpu-cpu-fallback" in "".join(out.split())
