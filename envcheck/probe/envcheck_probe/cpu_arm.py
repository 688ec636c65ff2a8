"""ARM (aarch64) CPU identity: /proc/cpuinfo's Features and MIDR fields, the kernel's AT_HWCAP/AT_HWCAP2 bits,
and whether the process runs under qemu's emulation.

On arm64 /proc/cpuinfo has no `model name`: each processor block says `Features` (the hwcaps by name) and the
MIDR fields `CPU implementer`/`CPU part`/`CPU variant`/`CPU revision`, which the tables here name ("ARM
Cortex-A72"). Under qemu-user before 8.1 an arm64 process reads the x86 host's own /proc/cpuinfo, so the
features come from getauxval(AT_HWCAP/AT_HWCAP2) instead, which qemu answers for the CPU it emulates.

Emulation is named because an emulated run's latency means nothing and its numerics are qemu's:
    - the machine and /proc/cpuinfo disagree (machine aarch64/arm*, cpuinfo x86-shaped with `vendor_id` or
      `flags`; or machine x86 and cpuinfo ARM-shaped): qemu-user up to 8.0 passes the host's file through;
    - qemu-user 8.1+ writes its own cpuinfo (linux-user/aarch64/target_proc.h, open_cpuinfo): every processor
      has `model name : ARMv8 Processor rev N (v8l)` and `BogoMIPS : 100.00`, a pair no arm64 kernel prints
      for a 64-bit process (the kernel writes `model name` only for 32-bit tasks, NVIDIA's L4T kernel writes
      it with its own BogoMIPS, 62.50 on Xavier); and its default CPU (`-cpu max`, aarch64_max_tcg_initfn)
      has implementer 0x00, which the Arm ARM reserves for software: no silicon carries it.
Standard library only (ctypes inside a function), Python >= 3.8 syntax; nothing here raises.
"""

ARM64_MACHINES = ("aarch64", "arm64")
X86_MACHINES = ("x86_64", "AMD64", "amd64", "i386", "i486", "i586", "i686")

AT_HWCAP = 16
AT_HWCAP2 = 26

# Bit n of AT_HWCAP / AT_HWCAP2 is the n-th name, as the Linux kernel numbers them
# (arch/arm64/include/uapi/asm/hwcap.h) and names them in /proc/cpuinfo (arch/arm64/kernel/cpuinfo.c,
# hwcap_str; torvalds/linux as of v6.16). A bit set beyond these lists is named hwcap_bit_N / hwcap2_bit_N.
HWCAP_NAMES = (
    "fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32",  # 0-7
    "atomics", "fphp", "asimdhp", "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc",  # 8-15
    "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm",  # 16-23
    "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg",  # 24-31
    "gcs", "cmpbr", "fprcvt", "f8mm8", "f8mm4", "svef16mm", "sveeltperm", "sveaes2",  # 32-39
    "svebfscale", "sve2p2", "sme2p2", "smesbitperm", "smeaes", "smesfexpa", "smestmop", "smesmop4",  # 40-47
)
HWCAP2_NAMES = (
    "dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2",  # 0-7
    "frint", "svei8mm", "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh",  # 8-15
    "rng", "bti", "mte", "ecv", "afp", "rpres", "mte3", "sme",  # 16-23
    "smei16i64", "smef64f64", "smei8i32", "smef16f32", "smeb16f32", "smef32f32", "smefa64", "wfxt",  # 24-31
    "ebf16", "sveebf16", "cssc", "rprfm", "sve2p1", "sme2", "sme2p1", "smei16i32",  # 32-39
    "smebi32i32", "smeb16b16", "smef16f16", "mops", "hbc", "sveb16b16", "lrcpc3", "lse128",  # 40-47
    "fpmr", "lut", "faminmax", "f8cvt", "f8fma", "f8dp4", "f8dp2", "f8e4m3",  # 48-55
    "f8e5m2", "smelutv2", "smef8f16", "smef8f32", "smesf8fma", "smesf8dp4", "smesf8dp2", "poe",  # 56-63
)

# The features that decide which TensorFlow/XNNPACK kernels run on arm64 (dot product and int8 matrix
# multiply for quantized models, half precision and bfloat16, the scalable vector extensions), in this order.
ARM_RELEVANT_CPU_FLAGS = ("asimd", "asimdhp", "asimddp", "asimdfhm", "asimdrdm", "fphp", "i8mm", "bf16",
                          "sve", "sve2", "svei8mm", "svebf16", "sme")

# MIDR implementer codes and part numbers (Linux arch/arm64/include/asm/cputype.h; Arm's Technical Reference
# Manuals). Anything not listed keeps its hex alone.
IMPLEMENTERS = {
    0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu", 0x48: "HiSilicon", 0x4e: "NVIDIA",
    0x50: "APM", 0x51: "Qualcomm", 0x53: "Samsung", 0x56: "Marvell", 0x61: "Apple", 0x6d: "Microsoft",
    0xc0: "Ampere",
}
PARTS = {
    0x41: {
        0xd03: "Cortex-A53", 0xd04: "Cortex-A35", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57", 0xd08: "Cortex-A72",
        0xd09: "Cortex-A73", 0xd0a: "Cortex-A75", 0xd0b: "Cortex-A76", 0xd0c: "Neoverse-N1", 0xd0d: "Cortex-A77",
        0xd0e: "Cortex-A76AE", 0xd40: "Neoverse-V1", 0xd41: "Cortex-A78", 0xd42: "Cortex-A78AE",
        0xd44: "Cortex-X1", 0xd46: "Cortex-A510", 0xd47: "Cortex-A710", 0xd48: "Cortex-X2", 0xd49: "Neoverse-N2",
        0xd4b: "Cortex-A78C", 0xd4c: "Cortex-X1C", 0xd4d: "Cortex-A715", 0xd4e: "Cortex-X3",
        0xd4f: "Neoverse-V2", 0xd80: "Cortex-A520", 0xd81: "Cortex-A720", 0xd82: "Cortex-X4",
        0xd83: "Neoverse-V3AE", 0xd84: "Neoverse-V3", 0xd85: "Cortex-X925", 0xd87: "Cortex-A725",
        0xd8e: "Neoverse-N3",
    },
    0x4e: {0x003: "Denver", 0x004: "Carmel"},
    0x46: {0x001: "A64FX"},
    0x61: {0x022: "M1 Icestorm", 0x023: "M1 Firestorm"},
    0xc0: {0xac3: "Ampere-1", 0xac4: "Ampere-1a"},
}

QEMU_BOGOMIPS = "100.00"
SOFTWARE_IMPLEMENTER = 0x00


def parse_cpuinfo(text):
    """/proc/cpuinfo as a list of blocks ({key: value}), one per blank-line separated stanza. Lines end at "\n"
    alone: a copy that went through a web form may carry stray "\r"s, which are stripped as white space."""
    blocks, block = [], {}
    for line in (text or "").split("\n"):
        key, colon, value = line.partition(":")
        if not colon:
            if not line.strip() and block:
                blocks.append(block)
                block = {}
            continue
        block.setdefault(key.strip(), value.strip())
    if block:
        blocks.append(block)
    return blocks


def processors(blocks):
    """The blocks that describe a processor (they carry a `processor` line)."""
    return [block for block in blocks if "processor" in block]


def cpuinfo_shape(blocks):
    """"arm" when cpuinfo has MIDR fields, "x86" when it has x86's vendor_id/flags, else None."""
    keys = set()
    for block in blocks:
        keys.update(block)
    if "CPU implementer" in keys:
        return "arm"
    if "vendor_id" in keys or "flags" in keys:
        return "x86"
    return None


def detect_emulation(machine, cpuinfo_text):
    """"qemu" when this process runs under qemu's emulation (see the module docstring), else None."""
    blocks = parse_cpuinfo(cpuinfo_text)
    shape = cpuinfo_shape(blocks)
    if machine in X86_MACHINES:
        return "qemu" if shape == "arm" else None
    arm_machine = machine in ARM64_MACHINES or machine.startswith("arm")
    if arm_machine and (shape == "x86" or (shape == "arm" and qemu_wrote_cpuinfo(processors(blocks)))):
        return "qemu"
    return None


def qemu_wrote_cpuinfo(cpus):
    """Whether an ARM-shaped cpuinfo is the one qemu-user 8.1+ writes rather than a kernel's."""
    if not cpus:
        return False
    if any(_hex(cpu.get("CPU implementer")) == SOFTWARE_IMPLEMENTER for cpu in cpus):
        return True
    return all(cpu.get("BogoMIPS") == QEMU_BOGOMIPS and cpu.get("model name", "").startswith("ARMv")
               for cpu in cpus)


def decode_hwcaps(hwcap, hwcap2):
    """Sorted feature names of AT_HWCAP and AT_HWCAP2 values."""
    return sorted(_bit_names(hwcap, HWCAP_NAMES, "hwcap_bit_") + _bit_names(hwcap2, HWCAP2_NAMES, "hwcap2_bit_"))


def _bit_names(value, names, unknown_prefix):
    found, bit = [], 0
    while value >> bit:
        if value >> bit & 1:
            found.append(names[bit] if bit < len(names) else unknown_prefix + str(bit))
        bit += 1
    return found


def read_hwcaps():
    """(AT_HWCAP, AT_HWCAP2) from the C library's getauxval, or None where it cannot be asked."""
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        getauxval.argtypes = [ctypes.c_ulong]
        return getauxval(AT_HWCAP), getauxval(AT_HWCAP2)
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        return None


def arm_identity(cpus):
    """{implementer, vendor, part, core, variant, revision} of the first ARM processor, named where the tables
    know it; "cores" lists the distinct core names of a board with several core types (big.LITTLE)."""
    described = [cpu for cpu in cpus if "CPU implementer" in cpu]
    if not described:
        return None
    first = described[0]
    identity = {"implementer": _normal_hex(first["CPU implementer"])}
    vendor = IMPLEMENTERS.get(_hex(first["CPU implementer"]))
    if vendor:
        identity["vendor"] = vendor
    if "CPU part" in first:
        identity["part"] = _normal_hex(first["CPU part"])
        core = _core_name(first)
        if core:
            identity["core"] = core
    for key, name in (("CPU variant", "variant"), ("CPU revision", "revision")):
        if key in first:
            identity[name] = first[key]
    cores = sorted({_core_name(cpu) or _normal_hex(cpu.get("CPU part", "?")) for cpu in described})
    if len(cores) > 1:
        identity["cores"] = cores
    return identity


def arm_model(identity):
    """"<vendor> <core>" ("ARM Cortex-A72"); a big.LITTLE board names its core types ("ARM Cortex-A55 +
    Cortex-A76"); unknown names keep their hex."""
    vendor = identity.get("vendor") or identity["implementer"]
    cores = identity.get("cores") or [identity.get("core") or identity.get("part", "?")]
    return "%s %s" % (vendor, " + ".join(cores))


def _core_name(cpu):
    return PARTS.get(_hex(cpu.get("CPU implementer")), {}).get(_hex(cpu.get("CPU part")))


def _hex(text):
    try:
        return int(text, 16)
    except (TypeError, ValueError):
        return None


def _normal_hex(text):
    """"0x41", "0xd08": the kernel's spelling, lower case, whatever case the file used."""
    return text.strip().lower()
