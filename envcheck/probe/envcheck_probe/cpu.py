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
