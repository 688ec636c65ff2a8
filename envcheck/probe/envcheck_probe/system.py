"""The Python, the operating system and the host the probe runs on."""
import os
import platform
import socket
import sys

from .files import read_text


def os_release():
    """ID, VERSION_ID and PRETTY_NAME from os-release, keys lower case."""
    text = read_text("/etc/os-release") or read_text("/usr/lib/os-release") or ""
    fields = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip().strip('"')
    return {key.lower(): fields[key] for key in ("ID", "VERSION_ID", "PRETTY_NAME") if key in fields}


def glibc_version():
    """'glibc 2.36', or None on a libc that does not say (musl) or a platform without confstr."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None


def python_info():
    """The interpreter running the probe."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def os_info():
    """The distribution, its C library and the kernel (the host's kernel, inside a container)."""
    return {
        "release": os_release(),
        "glibc": glibc_version(),
        "kernel": platform.release(),
    }


def host_info():
    """The machine or container and the user the probe runs as."""
    return {
        "hostname": socket.gethostname(),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
        "uid": os.getuid() if hasattr(os, "getuid") else None,
        "pid": os.getpid(),
    }
