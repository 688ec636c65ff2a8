"""The ctypes binding of libnvidia-ml: its error codes, struct layouts and API generations, and calls
by name that try the newest entry point a driver exports first and never raise (nvml.py reads the
driver and the GPUs through it)."""

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


class NvmlLibrary:
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
        """An NVML error record for `name`'s return code, with NVML's own description."""
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
        """The newest NVML API generation this library exports (None when it exports none of them)."""
        return next((label for label, name in NVML_API_GENERATIONS if self.first(name)), None)


class NvmlAnswers:
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
