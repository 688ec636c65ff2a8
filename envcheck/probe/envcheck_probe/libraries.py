"""Native libraries (the fingerprint's `native_libraries`): those really mapped into this process once
TensorFlow has run the model (`/proc/self/maps`), each with its kind, and the CUDA libraries the dynamic
linker knows (`ldconfig -p`). Besides CUDA: the C math library and C++ runtime, the OpenMP runtime, oneDNN,
the BLAS (OpenBLAS, NumPy's bundled copy, MKL) and TensorFlow's own libraries, the ones whose version changes
CPU numerics. `searched_kinds` says which kinds this probe looked for: an older probe's section, named
`cuda_libraries`, looked for cuda, math and c++-runtime only (the host reads it as this one: envcheck/fields.py).
"""
import os
import re

from .files import read_text

# (file name prefix, kind), first match wins ("libm.so"/"libm-": not libmkl_rt nor libmkldnn).
LIBRARY_KINDS = (
    ("libcudart", "cuda"), ("libcudnn", "cuda"), ("libcublas", "cuda"), ("libnvinfer", "cuda"),
    ("libm.so", "math"), ("libm-", "math"),
    ("libstdc++", "c++-runtime"),
    ("libgomp", "threading"), ("libiomp5", "threading"),
    ("libdnnl", "dnn"), ("libmkldnn", "dnn"),
    ("libopenblas", "blas"), ("libscipy_openblas", "blas"), ("libmkl_rt", "blas"),
    ("libtensorflow_framework", "tensorflow"), ("libtensorflow_cc", "tensorflow"),
)
SEARCHED_KINDS = sorted(set(kind for _, kind in LIBRARY_KINDS))
CUDA_PREFIXES = tuple(prefix for prefix, kind in LIBRARY_KINDS if kind == "cuda")

# A copy that auditwheel bundled into a wheel (numpy.libs/libscipy_openblas64_-32a4b2a6.so,
# libopenblas64_p-r0-15028c96.3.21.so): NAME-HASH[-HASH][.VERSION]. The hash changes with every build of the
# wheel, so it is no part of the library's name (the path still shows it).
_BUNDLED_COPY = re.compile(r"(?P<name>.+?)(?:-[0-9a-f]{8})+(?:\.(?P<version>\d.*))?$")


def library_kind(file_name):
    """'libgomp.so.1' -> 'threading'; None for a library the probe does not look for."""
    return next((kind for prefix, kind in LIBRARY_KINDS if file_name.startswith(prefix)), None)


def library_key_and_version(path):
    """'/x/libcudnn_ops.so.9.1.0' -> ('libcudnn_ops', '9.1.0'); version from the resolved file name."""
    name = os.path.basename(os.path.realpath(path))
    stem, _, version = name.partition(".so")
    bundled = _BUNDLED_COPY.match(stem)
    if bundled:
        stem, version = bundled.group("name"), bundled.group("version") or version
    return stem, version.lstrip(".") or None


def native_libraries(ldconfig_text=None):
    """The section before the model has run: `loaded` is filled by loaded_libraries() once it has."""
    return {"installed": installed_libraries(ldconfig_text), "loaded": {}, "searched_kinds": list(SEARCHED_KINDS)}


def loaded_libraries(maps_text=None):
    """Libraries of interest mapped into this process (after TensorFlow has run the model), with their kind."""
    text = read_text("/proc/self/maps") if maps_text is None else maps_text
    found = {}
    for line in (text or "").splitlines():
        path = line.split()[-1] if line.split() else ""
        kind = library_kind(os.path.basename(path)) if path.startswith("/") else None
        if kind:
            key, version = library_key_and_version(path)
            found[key] = {"kind": kind, "version": version, "path": os.path.realpath(path)}
    return dict(sorted(found.items()))


def installed_libraries(ldconfig_text=None):
    """CUDA libraries the dynamic linker knows about (`ldconfig -p`), with versions."""
    import subprocess

    if ldconfig_text is None:
        try:
            ldconfig_text = subprocess.run(["ldconfig", "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           timeout=30, check=False).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return {}
    found = {}
    for line in ldconfig_text.splitlines():
        if "=>" not in line:
            continue
        path = line.split("=>")[-1].strip()
        if os.path.basename(path).startswith(CUDA_PREFIXES):
            key, version = library_key_and_version(path)
            found.setdefault(key, set()).add(version)
    return dict((key, sorted(v for v in versions if v)) for key, versions in sorted(found.items()))
