"""The CPU: model, the instruction sets TensorFlow's kernels depend on, and the container's CPU quota."""
import os
import platform

from .files import read_text

# CPU flags that decide which TensorFlow/oneDNN kernels run; the first three are required by
# every TensorFlow x86 wheel (without them the import dies with SIGILL).
TF_REQUIRED_CPU_FLAGS = ("avx", "sse4_1", "sse4_2")
TF_RELEVANT_CPU_FLAGS = TF_REQUIRED_CPU_FLAGS + (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def cpu_info():
    """Model, flags (all, and those TensorFlow cares about), CPU counts and quota."""
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
