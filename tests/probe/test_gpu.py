"""The probe's GPU section on recorded real outputs (fixtures/gpu/) and a fake NVML built from them."""
from __future__ import annotations

import json

import pytest

from tests.probe.conftest import GPU_FIXTURES


def _record(name: str) -> dict:
    return json.loads((GPU_FIXTURES / "nvml" / f"{name}.json").read_text())


# ------------------------------------------------------------------------------ NVML via ctypes

@pytest.mark.parametrize("name", ["a100-sxm4-40gb-x2-580.126.09", "a100-sxm4-80gb-470.103.01", "a10g-510.85.02",
                                  "quadro-m1000m-375.82"])
def test_nvml_answers_are_read_through_ctypes(probe, fake_nvml, name):
    record = _record(name)
    seen = probe.nvml_fingerprint(str(fake_nvml(name) / "libnvidia-ml.so.1"))
    assert "error" not in seen
    assert seen["driver_version"] == record["driver_version"]
    cuda = record["cuda_driver_version"]
    assert seen["cuda_driver_version"] == f"{cuda // 1000}.{cuda % 1000 // 10}"
    assert len(seen["gpus"]) == len(record["gpus"])
    for got, want in zip(seen["gpus"], record["gpus"]):
        assert got["name"] == want["name"] and got["uuid"] == want["uuid"] and got["serial"] == want["serial"]
        assert got["compute_capability"] == "%d.%d" % tuple(want["compute_capability"])
        assert got["pci_bus_id"] == want["pci_bus_id"]
        assert got["memory_total_mib"] == want["memory_total_mib"]
        assert got["persistence"] == (None if want["persistence"] is None else bool(want["persistence"]))
        assert got["mig_current"] == (None if want["mig"] is None else bool(want["mig"][0]))
        assert got["power_limit_w"] == (None if want["power_limit_mw"] is None else want["power_limit_mw"] / 1000)


@pytest.mark.parametrize("name, code, error", [
    pytest.param("driver-library-mismatch", 18, "LIB_RM_VERSION_MISMATCH", id="rm-mismatch"),
    pytest.param("driver-not-loaded", 9, "DRIVER_NOT_LOADED", id="not-loaded"),
])
def test_nvml_init_errors_are_named(probe, fake_nvml, name, code, error):
    seen = probe.nvml_fingerprint(str(fake_nvml(name) / "libnvidia-ml.so.1"))
    assert seen["error"]["code"] == code and seen["error"]["name"] == error


def test_missing_nvml_library_is_library_not_found(probe, tmp_path):
    seen = probe.nvml_fingerprint(str(tmp_path / "libnvidia-ml.so.1"))
    assert seen["error"]["name"] == "LIBRARY_NOT_FOUND"


# ------------------------------------------------------------------------------ nvidia-smi

def test_query_gpu_csv_from_a_570_driver(probe):
    gpus = probe.parse_smi_csv((GPU_FIXTURES / "nvidia-smi" / "titanv-rtx5880-570.86.15.csv").read_text())
    assert [(g["name"], g["compute_capability"], g["index"]) for g in gpus] == [
        ("NVIDIA TITAN V", "7.0", 0), ("NVIDIA RTX 5880 Ada Generation", "8.9", 1)]
    assert {g["driver_version"] for g in gpus} == {"570.86.15"}


def test_old_driver_rejecting_compute_cap_degrades_field_by_field(probe):
    rejected = (GPU_FIXTURES / "nvidia-smi" / "compute-cap-rejected-470.txt").read_text()
    answer = (GPU_FIXTURES / "nvidia-smi" / "a100-80gb-470.103.01-no-compute-cap.csv").read_text()
    asked = []

    def replay(arguments):  # nvidia-smi 470 as recorded: exit status 2 and the message for compute_cap
        fields = arguments[1].split("=", 1)[1].split(",")
        asked.append(fields)
        return (2, rejected) if "compute_cap" in fields else (0, answer)

    seen = probe.nvidia_smi_fingerprint(run=replay)
    assert seen["rejected_fields"] == ["compute_cap"] and "compute_cap" not in asked[-1]
    assert seen["driver_version"] == "470.103.01"
    (gpu,) = seen["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-80GB" and gpu["persistence"] is True and gpu["mig_current"] is False


def test_nvml_mismatch_message_from_nvidia_smi_is_an_error(probe):
    text = (GPU_FIXTURES / "nvidia-smi" / "driver-library-mismatch-570.txt").read_text()
    seen = probe.nvidia_smi_fingerprint(run=lambda arguments: (9, text))
    assert "Driver/library version mismatch" in seen["error"]


# ------------------------------------------------------------------------------ /proc and consolidation

@pytest.mark.parametrize("name, version", [
    ("proprietary-384.98", "384.98"), ("open-525.60.11", "525.60.11"), ("open-565.57.01", "565.57.01"),
    ("jetson-orin-35.3.1", "35.3.1")])
def test_proc_driver_version(probe, name, version):
    text = (GPU_FIXTURES / "proc-driver-version" / f"{name}.txt").read_text()
    assert probe.parse_proc_driver_version(text) == version


def test_consolidation_prefers_nvml_then_smi_then_proc(probe, fake_nvml):
    nvml = probe.nvml_fingerprint(str(fake_nvml("a10g-510.85.02") / "libnvidia-ml.so.1"))
    proc = (GPU_FIXTURES / "proc-driver-version" / "open-525.60.11.txt").read_text()
    assert probe.gpu_fingerprint(nvml=nvml, smi={}, proc_text=proc)["source"] == "nvml"
    broken = probe.nvml_fingerprint(str(fake_nvml("driver-library-mismatch") / "libnvidia-ml.so.1"))
    smi = {"error": "Failed to initialize NVML: Driver/library version mismatch", "rejected_fields": []}
    seen = probe.gpu_fingerprint(nvml=broken, smi=smi, proc_text=proc)
    assert seen["source"] == "proc" and seen["driver_version"] == "525.60.11"
    assert seen["nvml_error"]["name"] == "LIB_RM_VERSION_MISMATCH" and "mismatch" in seen["nvidia_smi_error"]


def test_loaded_and_installed_libraries(probe):
    maps = open("/proc/self/maps").read()  # this very process: libm and libstdc++ of this machine
    loaded = probe.loaded_libraries(maps)
    assert "libm" in loaded and loaded["libm"]["path"].startswith("/")
    ldconfig = ("\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8\n"
                "\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12\n")
    installed = probe.installed_libraries(ldconfig)
    assert installed == {"libcudart": ["12"], "libcudnn": ["8"]}
