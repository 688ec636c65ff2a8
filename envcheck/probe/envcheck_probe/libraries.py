"""CUDA and math libraries: those the dynamic linker knows (`ldconfig -p`) and those really mapped into
this process once TensorFlow has run the model (`/proc/self/maps`)."""
import os

from .files import read_text

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
                                           timeout=30, check=False).stdout.decode("utf-8", "replace")
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
