"""Findings: problems a target's fingerprint shows by itself, the expensive silent ones first.

A driver too old for the image's CUDA makes TensorFlow run on the CPU without a word; a cuDNN other
than the build's changes kernels; a driver upgraded without a reboot breaks NVML. These are found
from the fingerprint alone (and, for GPU and CPU architecture and TF32, the golden's), each with a hint that
says what to do. Default severities are here; a policy rule on `finding.<code>` overrides them.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from envcheck import fields
from envcheck.fields import integrity_finding_severity
from envcheck.model import Finding, Severity

NVML_PLAIN = {
    "LIB_RM_VERSION_MISMATCH": ("the NVIDIA driver was upgraded but the old kernel module is still loaded "
                                "(NVML: driver/library version mismatch)",
                                "Reboot the machine (or unload and reload the nvidia kernel modules)."),
    "DRIVER_NOT_LOADED": ("the NVIDIA kernel driver is not loaded (NVML: driver not loaded)",
                          "Load the nvidia kernel module or reinstall the driver; check dmesg."),
    "NO_PERMISSION": ("this user may not query the NVIDIA driver (NVML: no permission)",
                      "Check the permissions of /dev/nvidia*."),
    "GPU_IS_LOST": ("a GPU has fallen off the bus (NVML: GPU is lost)", "Reset or reseat the GPU; check dmesg."),
}


def find_problems(fingerprint: dict[str, Any], golden: dict[str, Any]) -> tuple[Finding, ...]:
    """Problems a target's own fingerprint shows (CPU fallback, driver too old, …), at their default severities
    (compare/severity.py applies the policy)."""
    found: list[tuple[str, Severity, str, str]] = []
    for check in (_cpu_flags, _cpu_architecture, _emulated, _nvml_error, _gpu_unreachable, _gpu_query_errors,
                  _cpu_fallback, _driver_too_old, _library_mismatch, _libraries_disagree, _gpu_architecture, _tf32,
                  _installed_files, _system_libraries, _startup_code):
        found.extend(check(fingerprint, golden))
    return tuple(Finding(code=code, severity=severity, message=message, hint=hint)
                 for code, severity, message, hint in found)


def version_tuple(text: Any) -> tuple[int, ...] | None:
    """'12.4' -> (12, 4); '8' -> (8,); anything else -> None."""
    if not isinstance(text, str):
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts) or None


def _get(tree: dict[str, Any], path: str, default: Any = None) -> Any:
    for key in path.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree


def _nvml_gpus(fingerprint) -> list[dict]:
    """The GPUs the driver answered for (a GPU NVML counts but could not open is not one)."""
    return [g for g in _all_gpus(fingerprint) if not g.get("error")]


def _all_gpus(fingerprint) -> list[dict]:
    return [g for g in _get(fingerprint, "gpu.gpus", []) or [] if isinstance(g, dict)]


def _build(fingerprint) -> dict:
    return _get(fingerprint, "tensorflow.build_info", {}) or {}


# ------------------------------------------------------------------------------------ checks

def _cpu_flags(fingerprint, golden):
    missing = _get(fingerprint, "cpu.missing_required_flags") or []
    if missing and fields.machine(fingerprint) == fields.X86_64:  # what x86 wheels need: no Arm box lacks it
        yield ("cpu-lacks-tensorflow-instructions", "fail",
               f"this CPU lacks {', '.join(missing)}, which every TensorFlow x86 wheel needs "
               f"({_get(fingerprint, 'cpu.model') or 'unknown CPU'})",
               "TensorFlow dies with SIGILL at import here: use a machine with AVX/SSE4.2 or a TensorFlow "
               "built for this CPU.")


CROSS_ARCHITECTURE = "cross-architecture"
EMULATED = "emulated"
SIMD = {fields.X86_64: "SSE/AVX", fields.AARCH64: "NEON/SVE"}
"""The vector instructions each architecture's kernels use, in words."""


def _cpu_architecture(fingerprint, golden):
    """A golden made on another CPU architecture: a known drift class, named with what it changes (warn: the
    outputs are bitwise different by design, and only a policy's band for this architecture says how far)."""
    theirs, mine = fields.machine(golden), fields.machine(fingerprint)
    if theirs == mine:
        return
    # (the target's own vector instructions only: a hint about an Arm box never speaks of AVX)
    vectors = f" ({SIMD[mine]} here)" if mine in SIMD else ""
    yield (CROSS_ARCHITECTURE, "warn",
           f"the golden was made on {_cpu_named(golden, theirs)}, this target is {_cpu_named(fingerprint, mine)}: "
           "another CPU architecture, a known drift class",
           f"Another architecture runs other SIMD kernels{vectors}, other XNNPACK, oneDNN or Arm Compute Library "
           "paths, another libm and other FMA contraction: expect bitwise-different outputs within a bounded noise "
           "band, never identical ones. The golden's calibration cannot model another ISA: its measured noise "
           f"band (the noise units in this report) is from its {theirs} machine. Set a band for {mine} targets in "
           f"the policy ([tolerance.architecture.{mine}] atol, rtol), or make a golden on an {mine} target for a "
           "bitwise baseline.")


def _cpu_named(fingerprint, machine: str) -> str:
    """`aarch64 (ARM Cortex-A72)`, or the architecture alone where the probe could not name the CPU."""
    model = _get(fingerprint, "cpu.model")
    return f"{machine} ({model})" if isinstance(model, str) and model else machine


def _emulated(fingerprint, golden):
    """A target whose CPU an emulator stood in for (qemu-user running an arm64 image on x86). Info: an emulated run
    checks the image's software faithfully (a golden made in the same emulated image stays IDENTICAL), and what
    emulation spoils, latency, is not judged (compare/latency.py); the finding says so, and says whose CPU it was."""
    emulator = fields.emulator(fingerprint)
    if not emulator:
        return
    yield (EMULATED, "info",
           f"this target ran under {emulator} emulation (cpu.emulated): its CPU is the one {emulator} emulates, "
           "not the box's",
           f"Its latency means nothing and is not judged. Its numerics are {emulator}'s: the CPU features, and so the "
           f"kernels TensorFlow or TFLite chose, are those of {emulator}'s emulated CPU, and every instruction ran "
           f"through {emulator}'s translation. Right for checking an image's software; check on the real box (the "
           "on-site kit) for what its own CPU computes.")


def _nvml_error(fingerprint, golden):
    error = _get(fingerprint, "gpu.nvml_error")
    if not error:
        return
    name = error.get("name")
    if name in NVML_PLAIN:
        message, hint = NVML_PLAIN[name]
        yield f"nvml-{name.lower().replace('_', '-')}", "fail", message, hint
    elif name == "LIBRARY_NOT_FOUND" and _nvml_gpus(golden):
        yield ("gpu-driver-not-visible", "fail",
               f"the golden ran on {_describe_gpus(golden)} but this target sees no NVIDIA driver "
               "(libnvidia-ml.so.1 not found)",
               "Start the container with --gpus and the NVIDIA container toolkit, or install the driver.")
    elif name not in ("LIBRARY_NOT_FOUND", None):
        yield "nvml-error", "warn", f"NVML failed: {error.get('message') or name}", "Check the driver with nvidia-smi."


# A GPU NVML counts but cannot open: the others were read, this one is reported on its own.
GPU_UNREACHABLE: dict[str, tuple[str, Severity, str, str]] = {
    "GPU_IS_LOST": ("gpu-lost", "fail", "has fallen off the bus or is otherwise inaccessible (NVML: GPU is lost)",
                    "A hardware fault: check dmesg for Xid 79 / 'fallen off the bus', then reset the GPU "
                    "(nvidia-smi -r) or reboot; if it returns, check the GPU's seating, power and cooling."),
    "NO_PERMISSION": ("gpu-no-permission", "warn", "is counted by the driver but this user or container may not "
                      "open it (NVML: no permission)",
                      "Check the permissions of its /dev/nvidia<N> and the container's GPU list (--gpus, "
                      "NVIDIA_VISIBLE_DEVICES, the device cgroup)."),
}
UNREACHABLE_HINTS = {
    "RESET_REQUIRED": "Reset the GPU (nvidia-smi -r) or reboot the machine.",
    "IRQ_ISSUE": "The kernel driver saw an interrupt problem with this GPU: check dmesg and reboot; if it stays, "
                 "the GPU or its slot is faulty.",
    "CORRUPTED_INFOROM": "The GPU's infoROM is corrupted: contact the vendor (nvidia-smi -q shows the infoROM).",
}


def _gpu_unreachable(fingerprint, golden):
    """GPUs whose handle NVML could not get (lost, refused, ...): one finding per kind, naming each GPU."""
    by_code: dict[str, list[str]] = {}
    wording: dict[str, tuple[Severity, str]] = {}
    for gpu in _all_gpus(fingerprint):
        error = gpu.get("error")
        if not isinstance(error, dict):
            continue
        name = error.get("name") or str(error.get("code"))
        severity: Severity
        if name in GPU_UNREACHABLE:
            code, severity, what, hint = GPU_UNREACHABLE[name]
        else:
            code, severity = "gpu-inaccessible", "fail"
            what = f"cannot be opened: NVML_ERROR_{name}" + (f" ({error['description']})" if error.get("description")
                                                            else "")
            hint = UNREACHABLE_HINTS.get(name, "Check the GPU with nvidia-smi -q and dmesg.")
        by_code.setdefault(code, []).append(f"GPU {gpu.get('index')} {what}")
        wording.setdefault(code, (severity, hint))
    readable = len(_nvml_gpus(fingerprint))
    for code, lines in by_code.items():
        severity, hint = wording[code]
        others = f"; the other {readable} GPU(s) were read" if readable else ""
        yield code, severity, "; ".join(lines) + others, hint


def _gpu_query_errors(fingerprint, golden):
    """A query that failed for a reason other than "not supported": lost mid-read, or a real error."""
    lost, failed = [], []
    for gpu in _nvml_gpus(fingerprint):
        errors = gpu.get("errors") or {}
        names = {field: (e or {}).get("name") for field, e in errors.items()}
        label = f"GPU {gpu.get('index')} ({gpu.get('name') or 'unknown GPU'})"
        if "GPU_IS_LOST" in names.values():
            lost.append(label)
        elif names:
            failed.append(f"{label}: " + ", ".join(f"{field} ({name})" for field, name in sorted(names.items())))
    if lost:
        yield ("gpu-lost", "fail", f"{', '.join(lost)} fell off the bus while being read (NVML: GPU is lost)",
               GPU_UNREACHABLE["GPU_IS_LOST"][3])
    if failed:
        yield ("gpu-query-error", "warn", "NVML could not read " + "; ".join(failed) + ": these values are missing "
               "from the fingerprint", "NO_PERMISSION is usual for some queries on MIG-enabled GPUs without root; "
               "otherwise check the GPU with nvidia-smi -q and dmesg.")


def _cpu_fallback(fingerprint, golden):
    """GPUs visible to the driver, none to TensorFlow: the model silently runs on the CPU."""
    gpus = _nvml_gpus(fingerprint)
    tensorflow = fingerprint.get("tensorflow")
    if not gpus or not tensorflow or tensorflow.get("gpu_devices"):
        return
    yield ("gpu-cpu-fallback", "fail",
           f"{_describe_gpus(fingerprint)} visible to the driver, but TensorFlow sees no GPU: "
           "the model runs on the CPU", _fallback_reason(fingerprint))


def _fallback_reason(fingerprint) -> str:
    build = _build(fingerprint)
    distribution = ", ".join(_get(fingerprint, "tensorflow.distribution", []) or []) or "tensorflow"
    if not build.get("is_cuda_build"):
        return (f"Likely reason: this TensorFlow build has no CUDA support ({distribution}); install a CUDA "
                "build (e.g. tensorflow[and-cuda]).")
    driver, built = version_tuple(_get(fingerprint, "gpu.cuda_driver_version")), version_tuple(build.get("cuda_version"))
    if driver and built and driver < built[:len(driver)]:
        return (f"Likely reason: the driver supports CUDA {_get(fingerprint, 'gpu.cuda_driver_version')}, older than "
                f"the CUDA {build.get('cuda_version')} TensorFlow was built with; upgrade the driver.")
    if not driver and built and built[:2] >= NVML_CUDA_VERSION_SINCE and _nvml_too_old_for_cuda_version(fingerprint):
        return (f"Likely reason: the driver ({_get(fingerprint, 'gpu.driver_version')}) predates CUDA 9.1, older than "
                f"the CUDA {build.get('cuda_version')} TensorFlow was built with; upgrade the driver.")
    libraries = {**(_get(fingerprint, "native_libraries.installed", {}) or {}),
                 **(_get(fingerprint, "native_libraries.loaded", {}) or {})}
    missing = [name for name in ("libcudart", "libcudnn", "libcublas") if name not in libraries]
    if missing:
        return (f"Likely reason: CUDA libraries missing ({', '.join(missing)} neither loaded nor known to ldconfig); "
                "install the CUDA/cuDNN the build needs or the nvidia-* pip packages.")
    return "Likely reason unknown: read TensorFlow's log (the probe's stderr) for 'Cannot dlopen some GPU libraries'."


# nvmlSystemGetCudaDriverVersion is in nvml.h since CUDA 9.1: an NVML without it is an older driver's.
NVML_CUDA_VERSION_SINCE = (9, 1)


def _nvml_too_old_for_cuda_version(fingerprint) -> bool:
    reason = _get(fingerprint, "gpu.nvml_unsupported.cuda_driver_version")
    return isinstance(reason, str) and reason.startswith("FUNCTION_NOT_FOUND")


def _driver_too_old(fingerprint, golden):
    build = _build(fingerprint)
    driver_text = _get(fingerprint, "gpu.cuda_driver_version")
    driver, built = version_tuple(driver_text), version_tuple(build.get("cuda_version"))
    if build.get("is_cuda_build") and not driver and built and built[:2] >= NVML_CUDA_VERSION_SINCE \
            and _nvml_too_old_for_cuda_version(fingerprint):
        yield ("driver-cuda-too-old", "fail",
               f"the NVIDIA driver ({_get(fingerprint, 'gpu.driver_version')}) predates CUDA 9.1: its NVML (API "
               f"{_get(fingerprint, 'gpu.nvml_api')}) cannot report a CUDA version, and this TensorFlow was built "
               f"with CUDA {build.get('cuda_version')}",
               "Upgrade the host's driver, or use an image whose TensorFlow was built for the older CUDA.")
        return
    if build.get("is_cuda_build") and driver and built and driver < built[:2]:
        yield ("driver-cuda-too-old", "fail",
               f"the NVIDIA driver ({_get(fingerprint, 'gpu.driver_version')}) supports CUDA {driver_text}, older than "
               f"the CUDA {build.get('cuda_version')} this TensorFlow was built with",
               "Upgrade the host's driver, or use an image whose TensorFlow was built for the older CUDA.")


def _library_mismatch(fingerprint, golden):
    """The cuDNN / cuBLAS really loaded against what the build expects."""
    build = _build(fingerprint)
    loaded = _get(fingerprint, "native_libraries.loaded", {}) or {}
    expected = {"libcudnn": build.get("cudnn_version"), "libcublas": build.get("cuda_version")}
    for name, want in expected.items():
        have = (loaded.get(name) or {}).get("version")
        want_tuple, have_tuple = version_tuple(want), version_tuple(have)
        if not want_tuple or not have_tuple:
            continue
        # cuDNN must match the build at the precision the build states (major or major.minor);
        # cuBLAS ships with CUDA: its major version must be the build's CUDA major.
        depth = min(len(want_tuple), 2) if name == "libcudnn" else 1
        if have_tuple[:depth] != want_tuple[:depth]:
            what = "cuDNN" if name == "libcudnn" else "cuBLAS"
            yield (f"{what.lower()}-mismatch", "fail",
                   f"loaded {what} {have} ({loaded[name]['path']}) differs from the build's "
                   f"{'cuDNN' if name == 'libcudnn' else 'CUDA'} {want}",
                   f"Install the {what} version TensorFlow was built with, or pin the image to a matching one.")


def _libraries_disagree(fingerprint, golden):
    loaded = _get(fingerprint, "native_libraries.loaded", {}) or {}
    installed = _get(fingerprint, "native_libraries.installed", {}) or {}
    for name in ("libcudart", "libcudnn", "libcublas"):
        have = (loaded.get(name) or {}).get("version")
        versions = installed.get(name) or []
        if have and versions and not any(v == have or have.startswith(v + ".") or v.startswith(have + ".")
                                         for v in versions):
            yield (f"{name}-copies-disagree", "warn",
                   f"{name} {have} was loaded from {loaded[name]['path']}, but ldconfig knows "
                   f"{', '.join(versions)}", "Two copies of the library are installed; make sure the intended one "
                   "is first (pip's nvidia-* packages vs the system's).")


def _gpu_architecture(fingerprint, golden):
    mine, theirs = _capabilities(fingerprint), _capabilities(golden)
    if theirs and not mine:
        yield ("gpu-golden-on-cpu", "fail",
               f"the golden ran on GPU (compute capability {', '.join(theirs)}); this target ran on the CPU",
               "Expect drift beyond float32 noise: GPU and CPU kernels differ. Compare against a CPU golden, or "
               "fix the GPU access.")
    elif theirs and mine and mine != theirs:
        yield ("gpu-architecture-differs", "fail",
               f"GPU architecture differs: compute capability {', '.join(theirs)} in the golden, "
               f"{', '.join(mine)} here ({_describe_gpus(fingerprint)})",
               "Kernels, cuDNN algorithms and TF32 use differ between architectures: expect round-off-level "
               "drift (TF32: ~5e-4 relative). Make a golden per architecture or widen the tolerance knowingly.")


def _tf32(fingerprint, golden):
    mine, theirs = _tf32_in_effect(fingerprint), _tf32_in_effect(golden)
    if mine is not None and theirs is not None and mine != theirs:
        yield ("tf32-one-side", "fail",
               f"TF32 is {'on' if mine else 'off'} here but was {'on' if theirs else 'off'} for the golden",
               "TF32 rounds matmul/conv inputs to 10 mantissa bits on compute capability ≥ 8.0 (~5e-4 relative); "
               "set NVIDIA_TF32_OVERRIDE or tf.config.experimental.enable_tensor_float_32_execution alike.")


def _capabilities(fingerprint) -> list[str]:
    devices = _get(fingerprint, "tensorflow.gpu_devices", []) or []
    return sorted({d.get("compute_capability") for d in devices if d.get("compute_capability")})


def _tf32_in_effect(fingerprint) -> bool | None:
    """TF32 only acts on Ampere (8.0) and newer; None when TensorFlow used no GPU."""
    capabilities = [version_tuple(c) for c in _capabilities(fingerprint)]
    if not capabilities:
        return None
    enabled = _get(fingerprint, "tensorflow.tf32")
    if _get(fingerprint, "env.NVIDIA_TF32_OVERRIDE") == "0":
        enabled = False
    return bool(enabled) and any(c and c >= (8, 0) for c in capabilities)


def _describe_gpus(fingerprint) -> str:
    gpus = _nvml_gpus(fingerprint)
    names = sorted({g.get("name") or "unknown GPU" for g in gpus})
    return f"{len(gpus)} × {', '.join(names)}" if gpus else "no GPU"


# ------------------------------------------------------------------ installed files and start-up code
# (the probe's integrity.py and startup.py; docs/integrity.md). What the golden's own record also shows is the
# reference's state, not drift: only what the golden lacks is a finding.

Found = Iterator[tuple[str, Severity, str, str]]
SHOWN_FILES = 5
LIKELY_CAUSE = " When the outputs drift and nothing else differs from the golden, this is the likely cause."
INSTALLED_FILES = {
    "modified": ("installed-file-modified", "differ{s} from {its} RECORD sha256 (changed after install)",
                 "A file changed after install (a hand-applied hotfix?): reinstall {name}=={version} "
                 "(pip install --force-reinstall --no-deps) or rebuild the image."),
    "missing": ("installed-file-missing", "{is_are} listed in RECORD but missing",
                "Files were deleted after install: reinstall {name}=={version} or rebuild the image."),
    "unowned": ("installed-file-unowned", "{is_are} in the package's folders but in no RECORD",
                "Code that no package installed sits among {name}'s files (copied in by hand?): remove it or "
                "rebuild the image."),
}


def _files(paths: list[str]) -> str:
    """`a, b, c and 4 more`: the files a finding names."""
    shown = ", ".join(paths[:SHOWN_FILES])
    return shown + (f" and {len(paths) - SHOWN_FILES} more" if len(paths) > SHOWN_FILES else "")


def _words(paths: list[str]) -> dict[str, str]:
    one = len(paths) == 1
    return {"s": "s" if one else "", "its": "its" if one else "their", "is_are": "is" if one else "are"}


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _installed_files(fingerprint, golden) -> Found:
    """Per distribution: files changed, missing, or no RECORD owns, that the golden's record does not show."""
    mine, theirs = _get(fingerprint, "integrity.python", {}), _get(golden, "integrity.python", {})
    if not isinstance(mine, dict):
        return
    for name, found in sorted(mine.items()):
        record = found if isinstance(found, dict) else {}  # a site's capture is data: any shape may come
        reference = theirs.get(name) if isinstance(theirs, dict) else None
        for kind, (code, what, hint) in INSTALLED_FILES.items():
            known = set(_strings((reference or {}).get(kind))) if isinstance(reference, dict) else set()
            paths = [path for path in _strings((record or {}).get(kind)) if path not in known]
            if paths:
                version = (record or {}).get("version")
                yield (code, integrity_finding_severity(code, name),
                       f"{_files(paths)} ({name} {version}) " + what.format(**_words(paths)),
                       hint.format(name=name, version=version) + LIKELY_CAUSE)


def _system_libraries(fingerprint, golden) -> Found:
    """Shared objects the model mapped that differ from dpkg's md5sums, or that no package installed."""
    mine, theirs = _get(fingerprint, "integrity.system", {}) or {}, _get(golden, "integrity.system", {}) or {}
    wording = {
        "modified": ("system-library-modified", "loaded, and differ{s} from dpkg's md5sums",
                     "A system library changed after its package was installed: reinstall the package "
                     "(apt-get install --reinstall) or rebuild the image."),
        "unowned": ("system-library-unowned", "loaded, and no package installed {it}",
                    "A library copied in by hand (a cuDNN or BLAS from elsewhere?) was loaded by the model: "
                    "install it from a package or remove it."),
    }
    for kind, (code, what, hint) in wording.items():
        known = set(_strings(theirs.get(kind))) if isinstance(theirs, dict) else set()
        paths = [path for path in _strings(mine.get(kind) if isinstance(mine, dict) else None) if path not in known]
        if paths:
            yield (code, integrity_finding_severity(code), f"{_files(paths)} " + what.format(
                s="s" if len(paths) == 1 else "", it="it" if len(paths) == 1 else "them"), hint + LIKELY_CAUSE)


# Start-up code: (key in integrity.startup, what it is in words). A record's identity is its file name and
# sha256 (the same code installed elsewhere is the same code).
STARTUP = (("pth", ".pth file with lines run at every interpreter start"),
           ("sitecustomize", "sitecustomize module imported at every interpreter start"),
           ("usercustomize", "usercustomize module imported at every interpreter start"),
           ("ld_so_preload", "library in /etc/ld.so.preload, loaded into every process"),
           ("ld_preload", "library in LD_PRELOAD, loaded into every process"),
           ("pythonstartup", "PYTHONSTARTUP file"))


def _startup_code(fingerprint, golden) -> Found:
    """Start-up code the golden does not have. Against a golden without a start-up record (made before envcheck
    recorded one), only code that no package installed is named."""
    mine, theirs = _get(fingerprint, "integrity.startup"), _get(golden, "integrity.startup")
    if not isinstance(mine, dict):
        return
    for key, what in STARTUP:
        known = {_identity(entry) for entry in _entries(theirs.get(key))} if isinstance(theirs, dict) else None
        for entry in _entries(mine.get(key)):
            if (known is None and entry.get("owner")) or (known is not None and _identity(entry) in known):
                continue
            lines = _strings(entry.get("lines"))
            shown = f": {' | '.join(lines[:3])}" if lines else ""
            owner = f"installed by {entry['owner']}" if entry.get("owner") else "installed by no package"
            yield ("startup-code", integrity_finding_severity("startup-code"),
                   f"{entry.get('path')} ({what}; {owner}; sha256 {str(entry.get('sha256'))[:12]}){shown}",
                   "Code that runs before the model can change its numerics (environment variables, thread "
                   "counts, library loading): remove it, or make the golden where it is in place." + LIKELY_CAUSE)
    # NOTE: PYTHONPATH is recorded and differs at info level, but is no finding: a runner's own entries (pytest's,
    # a CI job's) are the common case. A directory there that shadows a numerics package is not told apart yet.


def _entries(value: Any) -> list[dict[str, Any]]:
    """A start-up record's entries: a list of them, or one (sitecustomize), or none."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _identity(entry: dict[str, Any]) -> tuple[Any, Any]:
    return os.path.basename(str(entry.get("path") or entry.get("name"))), entry.get("sha256")
