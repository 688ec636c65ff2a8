"""The NVIDIA kernel module's version from /proc/driver/nvidia/version, the last GPU source."""


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
