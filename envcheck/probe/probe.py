"""envcheck probe: fingerprint this environment and run the golden model on the golden inputs.

This one file is copied into every target (a Docker image, another interpreter) and run there:

    python probe.py --bundle BUNDLE_DIR --out CAPTURE_DIR

BUNDLE_DIR holds `model/` (a SavedModel) and `inputs.npz`. CAPTURE_DIR receives `capture.json`
(schema envcheck.capture/1) and `outputs.npz`. The capture is rewritten after every stage, so when
TensorFlow kills the process (SIGILL on a CPU without AVX, an out-of-memory kill) the parent still
reads the fingerprint collected so far and the stage that died.

Rules that keep it portable: standard library only at import time (numpy and TensorFlow are
imported inside functions), and nothing newer than Python 3.8, the oldest Python that target
images with TensorFlow still ship. The host tool never imports this module; it runs it.
"""
import argparse
import json
import os
import platform
import socket
import sys
import time
import traceback

CAPTURE_SCHEMA = "envcheck.capture/1"
PROBE_VERSION = "1"
CAPTURE_FILE = "capture.json"
OUTPUTS_FILE = "outputs.npz"

# Environment variables that change numerics or library loading (see shared DRIFT.md).
ENV_PREFIXES = ("TF_", "ONEDNN_", "DNNL_", "OMP_", "KMP_", "MKL_", "CUDA_", "NVIDIA_", "NCCL_",
                "CUBLAS_", "CUDNN_", "XLA_", "TF32", "OPENBLAS_", "PROTOCOL_BUFFERS_")
ENV_NAMES = ("PYTHONHASHSEED", "LD_LIBRARY_PATH", "LD_PRELOAD", "KERAS_BACKEND")
# Terraform shares the TF_ prefix; its variables say nothing about TensorFlow.
ENV_EXCLUDED_PREFIXES = ("TF_VAR_", "TF_CLI_", "TF_LOG", "TF_IN_AUTOMATION", "TF_INPUT", "TF_WORKSPACE",
                         "TF_DATA_DIR", "TF_PLUGIN_", "TF_REGISTRY_")
# A name containing any of these is never recorded, whatever its prefix.
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")

# CPU flags that decide which TensorFlow/oneDNN kernels run; the first three are required by
# every TensorFlow x86 wheel (without them the import dies with SIGILL).
TF_REQUIRED_CPU_FLAGS = ("avx", "sse4_1", "sse4_2")
TF_RELEVANT_CPU_FLAGS = TF_REQUIRED_CPU_FLAGS + (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tensorflow-macos", "tensorflow-aarch64", "tf-nightly", "tf-nightly-cpu",
                    "intel-tensorflow")


class ProbeFailure(Exception):
    """A failure the probe can name: recorded in the capture as {kind, message, traceback}."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


# --------------------------------------------------------------------------- fingerprint (stdlib)

def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def is_secret_name(name):
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def allowed_environment(environ):
    """Numerics-relevant variables by prefix allowlist, never one whose name looks secret."""
    picked = {}
    for name, value in environ.items():
        if is_secret_name(name) or name.startswith(ENV_EXCLUDED_PREFIXES):
            continue
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            picked[name] = value
    return dict(sorted(picked.items()))


def os_release():
    text = read_text("/etc/os-release") or read_text("/usr/lib/os-release") or ""
    fields = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip().strip('"')
    return {key.lower(): fields[key] for key in ("ID", "VERSION_ID", "PRETTY_NAME") if key in fields}


def cpu_info():
    text = read_text("/proc/cpuinfo") or ""
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = sorted(set(value.split()))
    affinity = None
    if hasattr(os, "sched_getaffinity"):
        affinity = len(os.sched_getaffinity(0))
    info = {
        "model": model,
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "cgroup_cpu_max": cgroup_cpu_limit(),
        "tf_flags": [flag for flag in TF_RELEVANT_CPU_FLAGS if flag in flags],
        "flags": flags,
    }
    if platform.machine() in ("x86_64", "AMD64") and flags:
        info["missing_required_flags"] = [f for f in TF_REQUIRED_CPU_FLAGS if f not in flags]
    return info


def cgroup_cpu_limit():
    """The container's CPU quota as 'quota/period' (cgroup v2 or v1), or None when unlimited."""
    v2 = read_text("/sys/fs/cgroup/cpu.max")
    if v2:
        value = v2.strip()
        return None if value.startswith("max") else value
    quota = read_text("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    period = read_text("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if quota and period and quota.strip() != "-1":
        return "%s/%s" % (quota.strip(), period.strip())
    return None


def normalize_distribution_name(name):
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions():
    """Every installed distribution with its version, read without importing (venvs included)."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 has no importlib.metadata
        return {}
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalize_distribution_name(name)] = dist.version
    return dict(sorted(found.items()))


def base_fingerprint():
    """Everything that can be known without importing numpy or TensorFlow."""
    glibc = None
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        pass
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {
            "release": os_release(),
            "glibc": glibc,
            "kernel": platform.release(),
        },
        "host": {
            "hostname": socket.gethostname(),
            "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
            "uid": os.getuid() if hasattr(os, "getuid") else None,
            "pid": os.getpid(),
        },
        "cpu": cpu_info(),
        "packages": installed_distributions(),
        "env": allowed_environment(os.environ),
        "gpu": gpu_fingerprint(),
        "cuda_libraries": {"installed": installed_libraries(), "loaded": {}},
    }


# --------------------------------------------------------------------- fingerprint (numpy, TF)

def numpy_fingerprint(np):
    features = None
    for module_name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            module = __import__(module_name, fromlist=["__cpu_features__"])
            features = sorted(k for k, v in module.__cpu_features__.items() if v)
            break
        except (ImportError, AttributeError):
            continue
    return {"version": np.__version__, "cpu_features": features}


def tensorflow_fingerprint(tf, packages):
    def attempt(function, default=None):
        # NOTE: several of these are private or moved between releases; a missing one is a None
        # in the fingerprint, never a failed probe.
        try:
            return function()
        except Exception:  # noqa: BLE001 - any failure here means "unknown"
            return default

    def onednn_enabled():
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())

    def build_info():
        return {str(k): json_safe(v) for k, v in sorted(tf.sysconfig.get_build_info().items())}

    def devices():
        return [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]

    def gpu_devices():
        found = []
        for device in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(device)
            capability = details.get("compute_capability")
            found.append({"name": details.get("device_name", device.name),
                          "compute_capability": "%d.%d" % tuple(capability) if capability else None})
        return found

    def determinism():
        from tensorflow.python.framework import config as tf_config
        return bool(tf_config.is_op_determinism_enabled())

    legacy_keras = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    version = tf.__version__
    keras_3_default = tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (2, 16)
    return {
        "distribution": [name for name in TF_DISTRIBUTIONS if name in packages],
        "version": version,
        "git_version": attempt(lambda: tf.version.GIT_VERSION),
        "compiler_version": attempt(lambda: tf.version.COMPILER_VERSION),
        "build_info": attempt(build_info, {}),
        "onednn_enabled": attempt(onednn_enabled),
        "keras": {
            "keras": packages.get("keras"),
            "tf_keras": packages.get("tf-keras"),
            # Which Keras tf.keras resolves to, decided as TF does, without importing Keras.
            "tf_uses": "tf_keras" if (legacy_keras or not keras_3_default) else "keras3",
        },
        "devices": attempt(devices, []),
        "gpu_devices": attempt(gpu_devices, []),
        "threads": {
            "intra_op": attempt(tf.config.threading.get_intra_op_parallelism_threads),
            "inter_op": attempt(tf.config.threading.get_inter_op_parallelism_threads),
        },
        "jit": attempt(lambda: json_safe(tf.config.optimizer.get_jit())),
        "op_determinism": attempt(determinism),
        "tf32": attempt(tf.config.experimental.tensor_float_32_execution_enabled),
    }


def json_safe(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


# ------------------------------------------------------------------------- fingerprint (GPU)
# Most robust first: NVML through ctypes (present in GPU containers via the NVIDIA container
# toolkit, no Python package needed), then nvidia-smi, then /proc/driver/nvidia/version.

NVML_LIBRARY = "libnvidia-ml.so.1"
# nvmlReturn_t as nvml.h numbers it (24-30 arrived with the CUDA 11.x/12.x headers; a newer driver may
# answer a code this table lacks: it is then shown as the bare number, with nvmlErrorString's text).
NVML_ERRORS = {
    1: "UNINITIALIZED", 2: "INVALID_ARGUMENT", 3: "NOT_SUPPORTED", 4: "NO_PERMISSION",
    5: "ALREADY_INITIALIZED", 6: "NOT_FOUND", 7: "INSUFFICIENT_SIZE", 8: "INSUFFICIENT_POWER",
    9: "DRIVER_NOT_LOADED", 10: "TIMEOUT", 11: "IRQ_ISSUE", 12: "LIBRARY_NOT_FOUND",
    13: "FUNCTION_NOT_FOUND", 14: "CORRUPTED_INFOROM", 15: "GPU_IS_LOST", 16: "RESET_REQUIRED",
    17: "OPERATING_SYSTEM", 18: "LIB_RM_VERSION_MISMATCH", 19: "IN_USE", 20: "MEMORY",
    21: "NO_DATA", 22: "VGPU_ECC_NOT_SUPPORTED", 23: "INSUFFICIENT_RESOURCES", 24: "FREQ_NOT_SUPPORTED",
    25: "ARGUMENT_VERSION_MISMATCH", 26: "DEPRECATED", 27: "NOT_READY", 28: "GPU_NOT_FOUND",
    29: "INVALID_STATE", 30: "RESET_TYPE_NOT_SUPPORTED", 999: "UNKNOWN",
}
NVML_SUCCESS, NVML_NOT_SUPPORTED, NVML_LIBRARY_NOT_FOUND, NVML_FUNCTION_NOT_FOUND = 0, 3, 12, 13
NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2
# Text buffers: nvml.h's NVML_DEVICE_NAME_V2_BUFFER_SIZE (96), NVML_DEVICE_UUID_V2_BUFFER_SIZE (96),
# NVML_DEVICE_SERIAL_BUFFER_SIZE (30) and NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE (80); the V2 sizes
# are the larger ones, so they also satisfy older drivers.
NVML_NAME_SIZE, NVML_UUID_SIZE, NVML_SERIAL_SIZE, NVML_DRIVER_VERSION_SIZE = 96, 96, 30, 80
# Which generation of the NVML API answered, told by the newest entry point the library exports
# (newest first; the headers each generation is read from are listed in fixtures/gpu/README.md).
NVML_API_GENERATIONS = (
    ("11+", "nvmlDeviceGetMigMode"),      # CUDA 11 and later (drivers >= 450): MIG, CUDA version _v2
    ("9-10", "nvmlDeviceGetPciInfo_v3"),  # CUDA 9.x/10.x: 32-byte bus id, CUDA version, compute capability
    ("5-8", "nvmlInit_v2"),               # NVML 5.319 to CUDA 8 (drivers 319-375): _v2 init/count/handle only
    ("1-4", "nvmlInit"),                  # only the unsuffixed entry points
)
# nvidia-smi --query-gpu fields, in the order of the consolidated GPU record. Old drivers reject
# some (compute_cap before ~510): rejected fields are dropped one by one and the query repeated.
SMI_FIELDS = (
    ("index", "index"), ("name", "name"), ("uuid", "uuid"), ("serial", "serial"),
    ("compute_cap", "compute_capability"), ("memory.total", "memory_total_mib"),
    ("pci.bus_id", "pci_bus_id"), ("persistence_mode", "persistence"),
    ("ecc.mode.current", "ecc_current"), ("ecc.mode.pending", "ecc_pending"),
    ("mig.mode.current", "mig_current"), ("mig.mode.pending", "mig_pending"),
    ("power.limit", "power_limit_w"), ("clocks.max.sm", "max_clock_sm_mhz"),
    ("clocks.max.memory", "max_clock_mem_mhz"), ("driver_version", "driver_version"),
)


def nvml_error(code, message, description=None):
    """An NVML failure as recorded in the fingerprint: the code, its nvml.h name, what failed and
    NVML's own words for it (nvmlErrorString, where the library has it)."""
    return {"code": code, "name": NVML_ERRORS.get(code, str(code)), "message": message,
            "description": description}


def nvml_structs():
    """The ctypes layouts of the NVML structs the probe passes (tests/probe/test_nvml_layout.py checks
    them against the C compiler's sizeof/offsetof on declarations written from nvml.h)."""
    import ctypes

    class Memory(ctypes.Structure):  # nvmlMemory_t: 24 bytes
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    class PciInfo(ctypes.Structure):  # nvmlPciInfo_t since API 9 (nvmlDeviceGetPciInfo_v3): 68 bytes
        _fields_ = [("bus_id_legacy", ctypes.c_char * 16), ("domain", ctypes.c_uint), ("bus", ctypes.c_uint),
                    ("device", ctypes.c_uint), ("pci_device_id", ctypes.c_uint),
                    ("pci_subsystem_id", ctypes.c_uint), ("bus_id", ctypes.c_char * 32)]

    class PciInfoLegacy(ctypes.Structure):  # nvmlPciInfo_t up to API 8 (nvmlDeviceGetPciInfo_v2): 52 bytes
        _fields_ = [("bus_id", ctypes.c_char * 16), ("domain", ctypes.c_uint), ("bus", ctypes.c_uint),
                    ("device", ctypes.c_uint), ("pci_device_id", ctypes.c_uint),
                    ("pci_subsystem_id", ctypes.c_uint), ("reserved", ctypes.c_uint * 4)]

    class PciAnswer(ctypes.Union):
        # One buffer for either call: newer drivers still export nvmlDeviceGetPciInfo_v2 but declare it
        # with the 68-byte struct, so a 52-byte buffer could be overrun. Both layouts start with the
        # 16-byte "domain:bus:device.function" text.
        _fields_ = [("v3", PciInfo), ("v2", PciInfoLegacy)]

    return {"nvmlMemory_t": Memory, "nvmlPciInfo_t": PciInfo, "nvmlPciInfo_legacy_t": PciInfoLegacy,
            "PciAnswer": PciAnswer}


class NvmlLibrary(object):
    """libnvidia-ml through ctypes: calls by name, newest exported entry point first, never raising."""

    def __init__(self, cdll):
        self.cdll = cdll

    def first(self, *names):
        """The first of these entry points (newest first) this library exports, else None."""
        return next((name for name in names if getattr(self.cdll, name, None) is not None), None)

    def call(self, name, *args):
        """The nvmlReturn_t of one call (FUNCTION_NOT_FOUND when the library lacks the entry point)."""
        function = getattr(self.cdll, name, None)
        return NVML_FUNCTION_NOT_FOUND if function is None else function(*args)

    def error(self, code, name):
        return nvml_error(code, "%s failed: NVML_ERROR_%s" % (name, NVML_ERRORS.get(code, str(code))),
                          self.describe(code))

    def describe(self, code):
        """nvmlErrorString(code), which knows codes newer than NVML_ERRORS; None where absent."""
        import ctypes

        function = getattr(self.cdll, "nvmlErrorString", None)
        if function is None:
            return None
        function.restype, function.argtypes = ctypes.c_char_p, [ctypes.c_int]
        text = function(code)
        return text.decode("utf-8", "replace") if text else None

    def api_generation(self):
        return next((label for label, name in NVML_API_GENERATIONS if self.first(name)), None)


class NvmlAnswers(object):
    """The answers of one scope (the driver, or one GPU), each missing value with the reason why.

    NOT_SUPPORTED and an entry point this driver lacks are "unsupported" (normal for the board or
    the driver generation); any other code (GPU_IS_LOST, NO_PERMISSION, ...) is an error and is kept
    with its name, so that findings can report it.
    """

    def __init__(self, library):
        self.library = library
        self.unsupported = {}
        self.errors = {}

    def ask(self, field, names, *args):
        """Call the newest exported entry point of `names` for `field`; True when it answered."""
        name = self.library.first(*names)
        if name is None:
            self.unsupported[field] = "FUNCTION_NOT_FOUND: this NVML has no %s" % " or ".join(names)
            return False
        code = self.library.call(name, *args)
        if code == NVML_SUCCESS:
            return True
        if code == NVML_NOT_SUPPORTED:
            self.unsupported[field] = "NOT_SUPPORTED: %s" % name
        else:
            self.errors[field] = self.library.error(code, name)
        return False


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


def parse_smi_value(key, raw):
    """One --query-gpu CSV cell as a typed value ('[N/A]', 'N/A' and '[Not Supported]' are None)."""
    value = raw.strip()
    if value in ("N/A", "[N/A]", "[Not Supported]", "[Unknown Error]", ""):
        return None
    if key in ("memory_total_mib", "power_limit_w", "max_clock_sm_mhz", "max_clock_mem_mhz", "index"):
        number = value.split()[0]
        try:
            return int(number) if key in ("memory_total_mib", "max_clock_sm_mhz", "max_clock_mem_mhz", "index") \
                else float(number)
        except ValueError:
            return None
    if key in ("persistence", "ecc_current", "ecc_pending", "mig_current", "mig_pending"):
        return {"enabled": True, "disabled": False}.get(value.lower())
    return value


def parse_smi_csv(text):
    """`nvidia-smi --query-gpu=… --format=csv` (with its header) as GPU records keyed like NVML's."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return []
    by_query = dict(SMI_FIELDS)
    header = [column.strip().split(" [")[0] for column in lines[0].split(",")]
    keys = [by_query.get(column, column) for column in header]
    return [dict((key, parse_smi_value(key, cell)) for key, cell in zip(keys, row.split(",")))
            for row in lines[1:]]


def rejected_smi_field(output):
    """The field name in 'Field "compute_cap" is not a valid field to query.', else None."""
    marker = "is not a valid field to query"
    if marker in output and '"' in output:
        return output.split('"')[1]
    return None


def nvidia_smi_fingerprint(run=None):
    """GPUs through nvidia-smi, degrading field by field on drivers that reject some fields."""
    import subprocess

    def default_run(arguments):
        completed = subprocess.run(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return completed.returncode, completed.stdout.decode("utf-8", "replace")

    run = run or default_run
    fields = [query for query, _ in SMI_FIELDS]
    rejected = []
    while fields:
        try:
            status, output = run(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv"])
        except (OSError, subprocess.SubprocessError) as error:
            return {"error": "nvidia-smi not runnable: %s" % error, "rejected_fields": rejected}
        field = rejected_smi_field(output)
        if field in fields:
            fields.remove(field)
            rejected.append(field)
            continue
        if status != 0:
            return {"error": output.strip().splitlines()[0] if output.strip() else "exit status %d" % status,
                    "rejected_fields": rejected}
        gpus = parse_smi_csv(output)
        driver = next((g.pop("driver_version") for g in gpus if "driver_version" in g), None)
        for gpu in gpus:
            gpu.pop("driver_version", None)
        return {"driver_version": driver, "gpus": gpus, "rejected_fields": rejected}
    return {"error": "nvidia-smi rejected every field", "rejected_fields": rejected}


def parse_proc_driver_version(text):
    """The kernel module's version from /proc/driver/nvidia/version (proprietary and open modules)."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if not first.startswith("NVRM version:"):
        return None
    for token in first.split():
        parts = token.split(".")
        if len(parts) >= 2 and all(part.isdigit() for part in parts):
            return token
    return None


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
    if nvml["error"]["code"] != 12 or smi is not None:  # no NVML library: usually no driver, skip nvidia-smi too
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


CUDA_LIBRARY_PREFIXES = ("libcudart", "libcudnn", "libcublas", "libnvinfer", "libm.so", "libm-", "libstdc++")


def library_key_and_version(path):
    """'/x/libcudnn_ops.so.9.1.0' -> ('libcudnn_ops', '9.1.0'); version from the resolved file name."""
    name = os.path.basename(os.path.realpath(path))
    stem, _, version = name.partition(".so")
    return stem, version.lstrip(".") or None


def loaded_libraries(maps_text=None):
    """Libraries of interest mapped into this process (after TensorFlow has run the model)."""
    text = read_text("/proc/self/maps") if maps_text is None else maps_text
    found = {}
    for line in (text or "").splitlines():
        path = line.split()[-1] if line.split() else ""
        if path.startswith("/") and os.path.basename(path).startswith(CUDA_LIBRARY_PREFIXES):
            key, version = library_key_and_version(path)
            found[key] = {"version": version, "path": os.path.realpath(path)}
    return dict(sorted(found.items()))


def installed_libraries(ldconfig_text=None):
    """CUDA libraries the dynamic linker knows about (`ldconfig -p`), with versions."""
    import subprocess

    if ldconfig_text is None:
        try:
            ldconfig_text = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           timeout=30).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return {}
    found = {}
    for line in ldconfig_text.splitlines():
        if "=>" not in line:
            continue
        path = line.split("=>")[-1].strip()
        if os.path.basename(path).startswith(CUDA_LIBRARY_PREFIXES[:4]):
            key, version = library_key_and_version(path)
            found.setdefault(key, set()).add(version)
    return dict((key, sorted(v for v in versions if v)) for key, versions in sorted(found.items()))


# ------------------------------------------------------------------------------- model stages

def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ProbeFailure("tensorflow-not-importable",
                           "TensorFlow is not importable in %s: %s" % (sys.executable, error))
    try:
        import numpy as np
    except ImportError as error:
        raise ProbeFailure("numpy-not-importable",
                           "numpy is not importable in %s: %s" % (sys.executable, error))
    return tf, np


def load_signature(tf, model_dir):
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as error:  # noqa: BLE001 - TF raises many types for an unloadable model
        raise ProbeFailure("model-load", "TensorFlow %s cannot load the golden model: %s: %s"
                           % (tf.__version__, type(error).__name__, first_line(error)))
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ProbeFailure("model-load", "the SavedModel has no 'serving_default' signature (has: %s)"
                           % (", ".join(sorted(signatures)) or "none"))
    # Keep `loaded` alive with the signature: its variables die with it.
    return loaded, signatures["serving_default"]


def run_signature(tf, np, signature, inputs):
    specs = signature.structured_input_signature[1]
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ProbeFailure("inputs", "inputs.npz lacks signature input(s): %s" % ", ".join(missing))
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise ProbeFailure("inputs", "inputs.npz has input(s) the signature does not take: %s (it takes: %s)"
                           % (", ".join(unknown), ", ".join(sorted(specs))))
    feeds = {}
    for name, spec in specs.items():
        array = inputs[name]
        if spec.dtype == tf.string and array.dtype.kind in "US":
            array = np.char.encode(array, "utf-8") if array.dtype.kind == "U" else array
        elif array.dtype != np.dtype(spec.dtype.as_numpy_dtype):
            raise ProbeFailure("inputs", "input %r is %s but the signature wants %s"
                               % (name, array.dtype, spec.dtype.name))
        if not spec.shape.is_compatible_with(array.shape):
            raise ProbeFailure("inputs", "input %r has shape %s but the signature wants %s"
                               % (name, list(array.shape), spec.shape.as_list() if spec.shape.rank is not None
                                  else "any"))
        feeds[name] = tf.constant(array)
    try:
        results = signature(**feeds)
    except Exception as error:  # noqa: BLE001
        raise ProbeFailure("model-run", "running the model failed: %s: %s"
                           % (type(error).__name__, first_line(error)))
    return {name: tensor.numpy() for name, tensor in sorted(results.items())}


def make_inputs(tf, np, signature, batch, seed):
    """A seeded input set from the signature's shapes and dtypes (for a model without inputs)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, spec in sorted(signature.structured_input_signature[1].items()):
        dims = spec.shape.as_list() if spec.shape.rank is not None else [None]
        shape = [batch if i == 0 and d is None else (d if d is not None else 8) for i, d in enumerate(dims)]
        dtype = np.dtype(spec.dtype.as_numpy_dtype)
        if dtype.kind == "f":
            inputs[name] = rng.normal(0.0, 1.0, shape).astype(dtype)
        elif dtype.kind in "iu":
            inputs[name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[name] = rng.random(shape) < 0.5
        else:
            raise ProbeFailure("inputs", "cannot generate inputs of dtype %s for %r; pass --inputs"
                               % (dtype, name))
    return inputs


def first_line(error):
    text = str(error).strip().splitlines()
    return text[0][:500] if text else ""


# ---------------------------------------------------------------------------------- writing

def atomic_write(path, write):
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_capture(out_dir, capture):
    data = json.dumps(capture, indent=1, sort_keys=True, default=str).encode("utf-8")
    atomic_write(os.path.join(out_dir, CAPTURE_FILE), lambda handle: handle.write(data))


def keep_stdout_clean():
    """Send fd 1 to stderr: library chatter must never mix with anything a parent might read."""
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
    except OSError:
        pass


# -------------------------------------------------------------------------------------- main

def probe(bundle_dir, out_dir):
    started = time.time()
    capture = {
        "schema": CAPTURE_SCHEMA,
        "probe_version": PROBE_VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "status": "running",
        "stage": "fingerprint",
        "fingerprint": base_fingerprint(),
        "timings": {},
        "outputs": {},
        "error": None,
    }
    write_capture(out_dir, capture)

    def stage(name):
        capture["stage"] = name
        write_capture(out_dir, capture)
        return time.time()

    try:
        began = stage("import-tensorflow")
        tf, np = import_tensorflow()
        capture["timings"]["import_s"] = round(time.time() - began, 4)
        capture["fingerprint"]["numpy"] = numpy_fingerprint(np)
        capture["fingerprint"]["tensorflow"] = tensorflow_fingerprint(tf, capture["fingerprint"]["packages"])

        began = stage("load-model")
        loaded, signature = load_signature(tf, os.path.join(bundle_dir, "model"))
        try:
            with np.load(os.path.join(bundle_dir, "inputs.npz"), allow_pickle=False) as data:
                inputs = {name: data[name] for name in data.files}
        except (OSError, ValueError) as error:
            raise ProbeFailure("inputs", "cannot read inputs.npz: %s" % first_line(error))
        capture["timings"]["load_s"] = round(time.time() - began, 4)

        began = stage("run-model")
        outputs = run_signature(tf, np, signature, inputs)
        capture["timings"]["run_s"] = round(time.time() - began, 4)
        # Now that TensorFlow has touched the GPU (if any), see which CUDA libraries it really loaded.
        capture["fingerprint"]["cuda_libraries"]["loaded"] = loaded_libraries()
        atomic_write(os.path.join(out_dir, OUTPUTS_FILE), lambda handle: np.savez(handle, **outputs))
        capture["outputs"] = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in outputs.items()}
        capture["status"] = "ok"
    except ProbeFailure as failure:
        capture["status"] = "error"
        capture["error"] = {"kind": failure.kind, "message": failure.message, "traceback": ""}
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen failure still yields a capture
        capture["status"] = "error"
        capture["error"] = {"kind": "probe-internal", "message": "%s: %s" % (type(error).__name__, first_line(error)),
                            "traceback": traceback.format_exc()[-4000:]}
    capture["timings"]["total_s"] = round(time.time() - started, 4)
    write_capture(out_dir, capture)
    return 0 if capture["status"] == "ok" else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="envcheck probe (runs inside a target)")
    parser.add_argument("--bundle", required=True, help="directory with model/ and inputs.npz")
    parser.add_argument("--out", required=True, help="directory to write capture.json and outputs.npz to")
    parser.add_argument("--make-inputs", type=int, metavar="BATCH",
                        help="instead of probing, write a seeded inputs.npz for the model's signature")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keep_stdout_clean()
    if not os.path.isdir(args.out):
        os.makedirs(args.out)
    if args.make_inputs:
        try:
            tf, np = import_tensorflow()
            _, signature = load_signature(tf, os.path.join(args.bundle, "model"))
            inputs = make_inputs(tf, np, signature, args.make_inputs, args.seed)
        except ProbeFailure as failure:
            sys.stderr.write("envcheck probe: %s\n" % failure.message)
            return 1
        atomic_write(os.path.join(args.out, "inputs.npz"), lambda handle: np.savez(handle, **inputs))
        return 0
    return probe(args.bundle, args.out)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # NOTE: everything is on disk (fsync'd); skip TensorFlow's interpreter teardown, which costs
    # a noticeable share of a short probe and can crash on some builds after the work is done.
    os._exit(status)
