"""Reading a file that may be absent, and writing one so that a reader never sees half of it."""
import json
import os


def read_text(path):
    """The file's text, or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def read_bundle_manifest(bundle_dir):
    """The bundle's manifest.json as a dict ({} when there is none or it does not parse: the host verified the
    bundle it sent, and a golden create's reference run reads a manifest of the batch size alone)."""
    if not bundle_dir:
        return {}
    try:
        with open(os.path.join(bundle_dir, "manifest.json"), "rb") as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def atomic_write(path, write):
    """Write through `write(handle)` to a temporary file, fsync it, then rename it over `path`."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
