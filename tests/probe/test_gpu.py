"""The probe's GPU section on recorded real outputs (fixtures/gpu/) and a fake NVML built from them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from .gpu_fixtures import GPU_FIXTURES, load_record


# ------------------------------------------------------------------------------ NVML via ctypes

RECORDED = ["a100-sxm4-40gb-x2-580.126.09", "a100-sxm4-80gb-470.103.01", "a10g-510.85.02", "quadro-m1000m-375.82"]
FIELDS_BY_RECORD = {"name": "name", "uuid": "uuid", "serial": "serial", "compute_capability": "compute_capability",
                    "memory_total_mib": "memory_total_mib", "pci_bus_id": "pci_bus_id", "persistence": "persistence",
                    "ecc_current": "ecc", "ecc_pending": "ecc", "mig_current": "mig", "mig_pending": "mig",
                    "power_limit_w": "power_limit_mw", "max_clock_sm_mhz": "max_clock_sm_mhz",
                    "max_clock_mem_mhz": "max_clock_mem_mhz"}


def _nvml(probe, library) -> dict:
    return probe.nvml.nvml_fingerprint(str(library))


@pytest.mark.parametrize("name", RECORDED)
def test_nvml_answers_are_read_through_ctypes(probe, fake_nvml, name):
    record = load_record(name)
    seen = _nvml(probe, fake_nvml(name) / "libnvidia-ml.so.1")
    assert "error" not in seen
    assert seen["driver_version"] == record["driver_version"]
    cuda = record["cuda_driver_version"]
    assert seen["cuda_driver_version"] == (None if cuda is None else f"{cuda // 1000}.{cuda % 1000 // 10}")
    assert len(seen["gpus"]) == len(record["gpus"])
    for got, want in zip(seen["gpus"], record["gpus"], strict=True):
        assert got["error"] is None and got["errors"] == {}
        assert got["name"] == want["name"] and got["uuid"] == want["uuid"] and got["serial"] == want["serial"]
        cc = want["compute_capability"]
        assert got["compute_capability"] == (None if cc is None else f"{cc[0]}.{cc[1]}")
        assert got["pci_bus_id"] == want["pci_bus_id"]
        assert got["memory_total_mib"] == want["memory_total_mib"]
        assert got["persistence"] == (None if want["persistence"] is None else bool(want["persistence"]))
        assert got["mig_current"] == (None if want["mig"] is None else bool(want["mig"][0]))
        assert got["power_limit_w"] == (None if want["power_limit_mw"] is None else want["power_limit_mw"] / 1000)


@pytest.mark.parametrize("name", RECORDED)
def test_every_missing_value_says_why(probe, fake_nvml, name):
    seen = _nvml(probe, fake_nvml(name) / "libnvidia-ml.so.1")
    if seen["cuda_driver_version"] is None:
        assert seen["unsupported"]["cuda_driver_version"]
    for gpu in seen["gpus"]:
        missing = {field for field in FIELDS_BY_RECORD if gpu[field] is None}
        assert missing == set(gpu["unsupported"]) | set(gpu["errors"])
        assert all(reason.startswith(("NOT_SUPPORTED", "FUNCTION_NOT_FOUND")) for reason in gpu["unsupported"].values())


def test_driver_375_answers_what_nvml_api_8_has(probe, fake_nvml):
    """No CUDA version, no compute capability, no MIG in API 8; the bus id through nvmlDeviceGetPciInfo_v2."""
    seen = _nvml(probe, fake_nvml("quadro-m1000m-375.82") / "libnvidia-ml.so.1")
    assert seen["api"] == "5-8" and seen["cuda_driver_version"] is None
    assert "nvmlSystemGetCudaDriverVersion" in seen["unsupported"]["cuda_driver_version"]
    (gpu,) = seen["gpus"]
    assert gpu["pci_bus_id"] == "0000:01:00.0"
    assert gpu["unsupported"]["compute_capability"].startswith("FUNCTION_NOT_FOUND")
    assert gpu["unsupported"]["mig_current"].startswith("FUNCTION_NOT_FOUND")
    assert gpu["unsupported"]["memory_total_mib"].startswith("NOT_SUPPORTED")


def test_a_library_with_only_nvmlinit_is_read_through_the_unsuffixed_calls(probe, fake_nvml):
    seen = _nvml(probe, fake_nvml("init-only-api3") / "libnvidia-ml.so.1")
    assert seen["api"] == "1-4" and seen["driver_version"] == "375.82"
    (gpu,) = seen["gpus"]
    assert gpu["name"] == "Quadro M1000M" and gpu["pci_bus_id"] == "0000:01:00.0" and gpu["error"] is None


def test_api_9_answers_through_the_unsuffixed_cuda_version_call(probe, fake_nvml_from):
    """The 470 record as a CUDA 9.x/10.x NVML would serve it: CUDA version and compute capability, no MIG."""
    record = dict(load_record("a100-sxm4-80gb-470.103.01"), nvml_api=9)
    seen = _nvml(probe, fake_nvml_from(record, "api9"))
    assert seen["api"] == "9-10" and seen["cuda_driver_version"] == "11.4"
    (gpu,) = seen["gpus"]
    assert gpu["compute_capability"] == "8.0" and gpu["pci_bus_id"] == "00000000:94:00.0"
    assert gpu["mig_current"] is None and gpu["unsupported"]["mig_current"].startswith("FUNCTION_NOT_FOUND")


def test_a_lost_gpu_keeps_the_other_gpu_and_the_driver(probe, fake_nvml):
    seen = _nvml(probe, fake_nvml("a100-sxm4-40gb-x2-580.126.09-gpu1-lost") / "libnvidia-ml.so.1")
    assert "error" not in seen and seen["driver_version"] == "580.126.09" and seen["cuda_driver_version"] == "13.0"
    first, lost = seen["gpus"]
    assert first["error"] is None and first["name"] == "NVIDIA A100-SXM4-40GB" and first["compute_capability"] == "8.0"
    assert lost["index"] == 1 and lost["name"] is None
    assert lost["error"]["name"] == "GPU_IS_LOST" and lost["error"]["code"] == 15
    assert lost["error"]["description"] == "GPU is lost"  # nvmlErrorString's words
    consolidated = probe.gpu.gpu_fingerprint(nvml=seen, smi={}, proc_text="")
    assert consolidated["source"] == "nvml" and consolidated["nvml_error"] is None and len(consolidated["gpus"]) == 2


def test_a_refused_handle_is_recorded_on_its_gpu(probe, fake_nvml, fake_nvml_from):
    name = "a100-sxm4-40gb-x2-580.126.09-gpu1-no-permission"
    first, refused = _nvml(probe, fake_nvml(name) / "libnvidia-ml.so.1")["gpus"]
    assert first["error"] is None and refused["error"]["name"] == "NO_PERMISSION"
    # The unsuffixed nvmlDeviceGetCount of old drivers does not count GPUs NVML may not talk to.
    old = _nvml(probe, fake_nvml_from(dict(load_record(name), nvml_api=3), "refused-api3"))
    assert [g["error"] for g in old["gpus"]] == [None]


def test_a_failing_query_is_an_error_not_unsupported(probe, fake_nvml_from):
    """Memory info refused (as on a MIG GPU without privileges) is kept apart from "not supported"."""
    record = load_record("a100-sxm4-40gb-x2-580.126.09")
    record["gpus"][0]["query_errors"] = {"memory": 4}
    record["gpus"][1]["query_errors"] = {"name": 15}
    first, second = _nvml(probe, fake_nvml_from(record, "query-errors"))["gpus"]
    assert first["memory_total_mib"] is None and first["errors"]["memory_total_mib"]["name"] == "NO_PERMISSION"
    assert "memory_total_mib" not in first["unsupported"] and first["compute_capability"] == "8.0"
    assert second["errors"]["name"]["name"] == "GPU_IS_LOST" and second["memory_total_mib"] == 40960


@pytest.mark.parametrize("name, code, error", [
    pytest.param("driver-library-mismatch", 18, "LIB_RM_VERSION_MISMATCH", id="rm-mismatch"),
    pytest.param("driver-not-loaded", 9, "DRIVER_NOT_LOADED", id="not-loaded"),
])
def test_nvml_init_errors_are_named(probe, fake_nvml, name, code, error):
    seen = _nvml(probe, fake_nvml(name) / "libnvidia-ml.so.1")
    assert seen["error"]["code"] == code and seen["error"]["name"] == error
    assert seen["error"]["description"]  # nvmlErrorString, which this library exports


def test_error_names_are_nvml_h_names(probe):
    """Every nvmlReturn_t of the declarations written from nvml.h has its name in the probe, 24-30 included."""
    header = (Path(__file__).with_name("nvml_decls.h")).read_text()
    declared = {int(code): name for name, code in re.findall(r"NVML_ERROR_(\w+) = (\d+)", header)}
    assert declared == probe.nvml_api.NVML_ERRORS
    names_24_to_30 = [probe.nvml_api.NVML_ERRORS[code] for code in range(24, 31)]
    assert names_24_to_30 == ["FREQ_NOT_SUPPORTED", "ARGUMENT_VERSION_MISMATCH", "DEPRECATED", "NOT_READY",
                              "GPU_NOT_FOUND", "INVALID_STATE", "RESET_TYPE_NOT_SUPPORTED"]
    assert probe.nvml_api.nvml_error(31, "x")["name"] == "31"  # newer than nvml.h here: the number, not a guess


def test_missing_nvml_library_is_library_not_found(probe, tmp_path):
    seen = probe.nvml.nvml_fingerprint(str(tmp_path / "libnvidia-ml.so.1"))
    assert seen["error"]["name"] == "LIBRARY_NOT_FOUND"


# ------------------------------------------------------------------------------ nvidia-smi

def test_query_gpu_csv_from_a_570_driver(probe):
    gpus = probe.smi.parse_smi_csv((GPU_FIXTURES / "nvidia-smi" / "titanv-rtx5880-570.86.15.csv").read_text())
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

    seen = probe.smi.nvidia_smi_fingerprint(run=replay)
    assert seen["rejected_fields"] == ["compute_cap"] and "compute_cap" not in asked[-1]
    assert seen["driver_version"] == "470.103.01"
    (gpu,) = seen["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-80GB" and gpu["persistence"] is True and gpu["mig_current"] is False


def test_nvml_mismatch_message_from_nvidia_smi_is_an_error(probe):
    text = (GPU_FIXTURES / "nvidia-smi" / "driver-library-mismatch-570.txt").read_text()
    seen = probe.smi.nvidia_smi_fingerprint(run=lambda arguments: (9, text))
    assert "Driver/library version mismatch" in seen["error"]


# ------------------------------------------------------------------------------ /proc and consolidation

@pytest.mark.parametrize("name, version", [
    ("proprietary-384.98", "384.98"), ("open-525.60.11", "525.60.11"), ("open-565.57.01", "565.57.01"),
    ("jetson-orin-35.3.1", "35.3.1")])
def test_proc_driver_version(probe, name, version):
    text = (GPU_FIXTURES / "proc-driver-version" / f"{name}.txt").read_text()
    assert probe.proc_driver.parse_proc_driver_version(text) == version


def test_consolidation_prefers_nvml_then_smi_then_proc(probe, fake_nvml):
    nvml = probe.nvml.nvml_fingerprint(str(fake_nvml("a10g-510.85.02") / "libnvidia-ml.so.1"))
    proc = (GPU_FIXTURES / "proc-driver-version" / "open-525.60.11.txt").read_text()
    assert probe.gpu.gpu_fingerprint(nvml=nvml, smi={}, proc_text=proc)["source"] == "nvml"
    broken = probe.nvml.nvml_fingerprint(str(fake_nvml("driver-library-mismatch") / "libnvidia-ml.so.1"))
    smi = {"error": "Failed to initialize NVML: Driver/library version mismatch", "rejected_fields": []}
    seen = probe.gpu.gpu_fingerprint(nvml=broken, smi=smi, proc_text=proc)
    assert seen["source"] == "proc" and seen["driver_version"] == "525.60.11"
    assert seen["nvml_error"]["name"] == "LIB_RM_VERSION_MISMATCH" and "mismatch" in seen["nvidia_smi_error"]


def test_loaded_and_installed_libraries(probe):
    maps = open("/proc/self/maps").read()  # this very process: libm and libstdc++ of this machine
    loaded = probe.libraries.loaded_libraries(maps)
    assert "libm" in loaded and loaded["libm"]["path"].startswith("/")
    ldconfig = ("\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8\n"
                "\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12\n")
    installed = probe.libraries.installed_libraries(ldconfig)
    assert installed == {"libcudart": ["12"], "libcudnn": ["8"]}
