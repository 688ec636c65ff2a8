"""The driver and every GPU, read through NVML (nvml_api.py), each missing value with the reason why."""
from .nvml_api import (
    NVML_CLOCK_MEM,
    NVML_CLOCK_SM,
    NVML_DRIVER_VERSION_SIZE,
    NVML_LIBRARY,
    NVML_LIBRARY_NOT_FOUND,
    NVML_NAME_SIZE,
    NVML_SERIAL_SIZE,
    NVML_SUCCESS,
    NVML_UUID_SIZE,
    NvmlAnswers,
    NvmlLibrary,
    nvml_error,
    nvml_structs,
)


def nvml_fingerprint(library=NVML_LIBRARY):
    """Driver and GPUs through NVML, or {"error": …} naming why NVML cannot answer at all.

    Only a failed load, init or GPU count voids the answer. A GPU whose handle cannot be had
    (GPU_IS_LOST, NO_PERMISSION: nvmlDeviceGetCount_v2 counts GPUs NVML may not talk to) is recorded
    with its error in its place; the other GPUs and the driver-level facts stay.
    """
    import ctypes

    try:
        nvml = NvmlLibrary(ctypes.CDLL(library))
    except OSError as error:
        return {"error": nvml_error(NVML_LIBRARY_NOT_FOUND, "cannot load %s: %s" % (library, error))}
    init = nvml.first("nvmlInit_v2", "nvmlInit")
    code = nvml.call(init or "nvmlInit")
    if code != NVML_SUCCESS:
        return {"error": nvml.error(code, init or "nvmlInit")}
    try:
        return nvml_system(ctypes, nvml)
    finally:
        nvml.call("nvmlShutdown")


def nvml_system(ctypes, nvml):
    """The driver-level facts and every GPU, NVML being initialized."""
    system = NvmlAnswers(nvml)
    result = {"api": nvml.api_generation(), "driver_version": None, "cuda_driver_version": None, "gpus": []}
    text = ctypes.create_string_buffer(NVML_DRIVER_VERSION_SIZE)
    if system.ask("driver_version", ("nvmlSystemGetDriverVersion",), text, ctypes.c_uint(NVML_DRIVER_VERSION_SIZE)):
        result["driver_version"] = text.value.decode()
    cuda = ctypes.c_int()
    # The unsuffixed call (API 9, e.g. drivers 390) answers the same encoding: 11040 = 11.4.
    if system.ask("cuda_driver_version", ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"),
                  ctypes.byref(cuda)):
        result["cuda_driver_version"] = "%d.%d" % (cuda.value // 1000, (cuda.value % 1000) // 10)
    count = ctypes.c_uint()
    # _v2 (NVML 5.319 on) also counts GPUs whose handle lookup then fails with NO_PERMISSION.
    name = nvml.first("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount") or "nvmlDeviceGetCount"
    code = nvml.call(name, ctypes.byref(count))
    if code != NVML_SUCCESS:
        return {"error": nvml.error(code, name), "api": result["api"], "driver_version": result["driver_version"]}
    structs = nvml_structs()
    lookup = nvml.first("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex") or "nvmlDeviceGetHandleByIndex"
    for index in range(count.value):
        handle = ctypes.c_void_p()  # nvmlDevice_t: a pointer, 64 bits on 64-bit systems
        code = nvml.call(lookup, ctypes.c_uint(index), ctypes.byref(handle))
        if code == NVML_SUCCESS:
            result["gpus"].append(nvml_device(ctypes, nvml, structs, handle, index))
        else:
            result["gpus"].append(nvml_unreachable_device(index, nvml.error(code, lookup)))
    result.update(unsupported=system.unsupported, errors=system.errors)
    return result


NVML_DEVICE_FIELDS = ("name", "uuid", "serial", "compute_capability", "memory_total_mib", "pci_bus_id",
                      "persistence", "ecc_current", "ecc_pending", "mig_current", "mig_pending",
                      "power_limit_w", "max_clock_sm_mhz", "max_clock_mem_mhz")


def nvml_unreachable_device(index, error):
    """A GPU NVML counts but gives no handle for: every value None, and the error that says why."""
    record = {"index": index}
    record.update(dict.fromkeys(NVML_DEVICE_FIELDS))
    record.update(error=error, unsupported={}, errors={})
    return record


def nvml_device(ctypes, nvml, structs, handle, index):
    """One GPU's record; each value NVML could not give is None, with its reason under
    "unsupported" (the board or driver lacks it) or "errors" (the query failed)."""
    answers = NvmlAnswers(nvml)

    def text(field, name, size):
        buffer = ctypes.create_string_buffer(size)
        return buffer.value.decode() if answers.ask(field, (name,), handle, buffer, ctypes.c_uint(size)) else None

    def number(field, name, *leading):
        value = ctypes.c_uint()
        return value.value if answers.ask(field, (name,), handle, *(leading + (ctypes.byref(value),))) else None

    def pair(fields, name):
        """Current and pending mode (ECC, MIG) as booleans; one query, so one reason for both."""
        current, pending = ctypes.c_uint(), ctypes.c_uint()
        if answers.ask(fields[0], (name,), handle, ctypes.byref(current), ctypes.byref(pending)):
            return bool(current.value), bool(pending.value)
        for other in fields[1:]:
            for reasons in (answers.unsupported, answers.errors):
                if fields[0] in reasons:
                    reasons[other] = reasons[fields[0]]
        return None, None

    def capability():
        major, minor = ctypes.c_int(), ctypes.c_int()
        if answers.ask("compute_capability", ("nvmlDeviceGetCudaComputeCapability",), handle,
                       ctypes.byref(major), ctypes.byref(minor)):
            return "%d.%d" % (major.value, minor.value)
        return None

    def memory_total_mib():
        memory = structs["nvmlMemory_t"]()
        if answers.ask("memory_total_mib", ("nvmlDeviceGetMemoryInfo",), handle, ctypes.byref(memory)):
            return memory.total // (1 << 20)
        return None

    def pci_bus_id():
        pci = structs["PciAnswer"]()
        name = nvml.first("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2")
        if not answers.ask("pci_bus_id", ("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"), handle,
                           ctypes.byref(pci)):
            return None
        if name == "nvmlDeviceGetPciInfo_v3":
            return (pci.v3.bus_id or pci.v3.bus_id_legacy).decode()
        return pci.v2.bus_id.decode()  # API <= 8: the 16-byte "0000:01:00.0"

    persistence = number("persistence", "nvmlDeviceGetPersistenceMode")
    power = number("power_limit_w", "nvmlDeviceGetPowerManagementLimit")  # milliwatts
    ecc_current, ecc_pending = pair(("ecc_current", "ecc_pending"), "nvmlDeviceGetEccMode")
    mig_current, mig_pending = pair(("mig_current", "mig_pending"), "nvmlDeviceGetMigMode")
    record = {
        "index": index,
        "name": text("name", "nvmlDeviceGetName", NVML_NAME_SIZE),
        "uuid": text("uuid", "nvmlDeviceGetUUID", NVML_UUID_SIZE),
        "serial": text("serial", "nvmlDeviceGetSerial", NVML_SERIAL_SIZE),
        "compute_capability": capability(),
        "memory_total_mib": memory_total_mib(),
        "pci_bus_id": pci_bus_id(),
        "persistence": None if persistence is None else bool(persistence),
        "ecc_current": ecc_current, "ecc_pending": ecc_pending,
        "mig_current": mig_current, "mig_pending": mig_pending,
        "power_limit_w": None if power is None else power / 1000.0,
        "max_clock_sm_mhz": number("max_clock_sm_mhz", "nvmlDeviceGetMaxClockInfo", ctypes.c_uint(NVML_CLOCK_SM)),
        "max_clock_mem_mhz": number("max_clock_mem_mhz", "nvmlDeviceGetMaxClockInfo", ctypes.c_uint(NVML_CLOCK_MEM)),
        "error": None,
    }
    record.update(unsupported=answers.unsupported, errors=answers.errors)
    return record
