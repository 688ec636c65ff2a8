"""The consolidated GPU view: NVML, else nvidia-smi, else /proc, with every source's error.

Most robust first: NVML through ctypes (present in GPU containers via the NVIDIA container
toolkit, no Python package needed), then nvidia-smi, then /proc/driver/nvidia/version.
"""
from .files import read_text
from .nvml import nvml_fingerprint
from .nvml_api import NVML_LIBRARY_NOT_FOUND
from .proc_driver import parse_proc_driver_version
from .smi import nvidia_smi_fingerprint


def gpu_fingerprint(nvml=None, smi=None, proc_text=None):
    """The consolidated GPU view from the most robust source that answered, with every source's error.

    From NVML also: which API generation answered (`nvml_api`), and why a driver-level value is
    missing (`nvml_unsupported`, `nvml_errors`); each GPU carries its own `error`, `unsupported`, `errors`.
    """
    nvml = nvml_fingerprint() if nvml is None else nvml
    result = {"source": None, "driver_version": None, "cuda_driver_version": None, "gpus": [],
              "nvml_error": nvml.get("error"), "nvml_api": nvml.get("api"),
              "nvml_unsupported": nvml.get("unsupported", {}), "nvml_errors": nvml.get("errors", {}),
              "nvidia_smi_error": None, "nvidia_smi_rejected_fields": [],
              "proc_driver_version": parse_proc_driver_version(
                  read_text("/proc/driver/nvidia/version") if proc_text is None else proc_text)}
    if not nvml.get("error"):
        result.update(source="nvml", driver_version=nvml["driver_version"],
                      cuda_driver_version=nvml["cuda_driver_version"], gpus=nvml["gpus"])
        return result
    # No NVML library: usually no driver, skip nvidia-smi too.
    if nvml["error"]["code"] != NVML_LIBRARY_NOT_FOUND or smi is not None:
        smi = nvidia_smi_fingerprint() if smi is None else smi
        result["nvidia_smi_rejected_fields"] = smi.get("rejected_fields", [])
        if smi.get("error") or "gpus" not in smi:
            result["nvidia_smi_error"] = smi.get("error")
        else:
            result.update(source="nvidia-smi", driver_version=smi["driver_version"], gpus=smi["gpus"])
            return result
    if result["proc_driver_version"]:
        result.update(source="proc", driver_version=result["proc_driver_version"])
    return result
