"""The CPU: model, the instruction sets TensorFlow's kernels depend on, page size, emulation, and the container's
CPU quota. x86 reads /proc/cpuinfo's `model name` and `flags`; arm64 reads its Features and MIDR fields and the
kernel's hwcaps (cpu_arm.py)."""
import os
import platform

from .cpu_arm import (
    ARM64_MACHINES,
    ARM_RELEVANT_CPU_FLAGS,
    arm_identity,
    arm_model,
    decode_hwcaps,
    detect_emulation,
    parse_cpuinfo,
    processors,
    read_hwcaps,
)
from .files import read_text

# CPU flags that decide which TensorFlow/oneDNN kernels run; the first three are required by
# every TensorFlow x86 wheel (without them the import dies with SIGILL).
TF_REQUIRED_CPU_FLAGS = ("avx", "sse4_1", "sse4_2")
TF_RELEVANT_CPU_FLAGS = TF_REQUIRED_CPU_FLAGS + (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def cpu_info(machine=None, cpuinfo_text=None, hwcaps=None):
    """Model, flags (all, and those TensorFlow cares about), CPU counts, quota and page size; on arm64 also the
    hwcaps and the MIDR identity; `emulated` only under emulation. The arguments stand in for
    platform.machine(), /proc/cpuinfo and getauxval's (AT_HWCAP, AT_HWCAP2) in tests."""
    machine = platform.machine() if machine is None else machine
    text = (read_text("/proc/cpuinfo") or "") if cpuinfo_text is None else cpuinfo_text
    emulated = detect_emulation(machine, text)
    if machine in ARM64_MACHINES:
        identity = _arm64_identity(text, read_hwcaps() if hwcaps is None else hwcaps, emulated)
    else:
        identity = _cpuinfo_identity(text)
    affinity = None
    if hasattr(os, "sched_getaffinity"):
        affinity = len(os.sched_getaffinity(0))
    info = {
        "model": identity.pop("model"),
        "machine": machine,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "cgroup_cpu_max": cgroup_cpu_limit(),
        "tf_flags": identity.pop("tf_flags"),
        "flags": identity.pop("flags"),
    }
    if machine in ("x86_64", "AMD64") and info["flags"]:
        info["missing_required_flags"] = [f for f in TF_REQUIRED_CPU_FLAGS if f not in info["flags"]]
    info.update(identity)
    page_size = _page_size()
    if page_size:
        info["page_size"] = page_size
    if emulated:
        info["emulated"] = emulated
    return info


def _cpuinfo_identity(text):
    """x86 (and any non-arm64) /proc/cpuinfo: the first `model name`, the first `flags` or `Features` line."""
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = sorted(set(value.split()))
    return {"model": model, "flags": flags, "tf_flags": [flag for flag in TF_RELEVANT_CPU_FLAGS if flag in flags]}


def _arm64_identity(text, hwcaps, emulated):
    """arm64: Features from an ARM cpuinfo (else the hwcaps' names: under qemu-user the file is the host's),
    the MIDR identity and its "<vendor> <core>" model (None when emulated: the file then describes no CPU
    this process runs on)."""
    cpus = processors(parse_cpuinfo(text))
    arm = arm_identity(cpus)
    hwcap_names = decode_hwcaps(*hwcaps) if hwcaps else None
    features = next((cpu["Features"] for cpu in cpus if "Features" in cpu and "CPU implementer" in cpu), None)
    if arm and features is not None:
        flags = sorted(set(features.split()))
    else:
        flags = hwcap_names or []
    identity = {"model": arm_model(arm) if arm and not emulated else None, "flags": flags,
                "tf_flags": [flag for flag in ARM_RELEVANT_CPU_FLAGS if flag in flags]}
    if hwcap_names is not None:
        identity["hwcaps"] = hwcap_names
    if arm:
        identity["arm"] = arm
    return identity


def _page_size():
    """os.sysconf's page size in bytes, None where it cannot say."""
    try:
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return size if isinstance(size, int) and size > 0 else None


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


CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def cpu_quota_cpus():
    """The CPU quota in CPUs (cgroup v2 cpu.max, else v1 cfs quota/period), the tightest of this
    process's cgroup and its parents; None when unlimited or unknown."""
    paths = {}
    for line in (read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2].strip() or "/"
    quotas = [_v2_quota(d) for d in _own_and_parents(CGROUP_ROOT, paths.get("", "/"))]
    for mount in CGROUP_V1_CPU_MOUNTS:
        quotas += [_v1_quota(d) for d in _own_and_parents("%s/%s" % (CGROUP_ROOT, mount), paths.get("cpu", "/"))]
    found = [quota for quota in quotas if quota is not None]
    return round(min(found), 4) if found else None


def _own_and_parents(root, path):
    """The cgroup directories from `root + path` up to `root` that exist here (in a container without its
    own cgroup namespace the host's path is not mounted: only the root is)."""
    parts = [part for part in path.split("/") if part and part != ".."]
    seen = []
    for depth in range(len(parts), -1, -1):
        directory = "/".join([root] + parts[:depth])
        if directory not in seen and os.path.isdir(directory):
            seen.append(directory)
    return seen


def _v2_quota(directory):
    fields = (read_text(directory + "/cpu.max") or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_quota(directory):
    quota = (read_text(directory + "/cpu.cfs_quota_us") or "").strip()
    period = (read_text(directory + "/cpu.cfs_period_us") or "").strip()
    if not quota or not period or quota.startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota, period):
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    return quota / float(period) if quota > 0 and period > 0 else None
