"""The capture cache of Docker targets: a probe's capture is reused only when nothing it depends on changed.

The key is the sha256 of everything a capture depends on: the image id (never the tag), the golden's manifest
sha256, the probe's own bytes (probe.pyz: envcheck's and the probe's version at once) and its arguments, the
container's limits, and the machine that runs it as the daemon describes it (its name, kernel, OS, CPUs,
memory, daemon version, runtimes; for a local daemon also this machine's CPU model and flags and NVIDIA driver). The comparison
is made again on every run, so a changed policy needs no new capture. An entry holds the capture files and the
sha256 of each, checked before use: a damaged entry is removed and the target probed afresh.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from envcheck.capture import read_capture
from envcheck.files import atomic_write_text, sha256_file
from envcheck.model import Capture

ENTRY_FILE = "entry.json"
CAPTURE_FILES = ("capture.json", "outputs.npz", "tflite-outputs.npz")


def cache_key(parts: dict[str, Any]) -> str:
    """The entry's name: sha256 of the key parts as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def local_machine() -> dict[str, Any]:
    """This machine's CPU model and flags and NVIDIA driver (for a daemon on this machine: what the daemon does
    not say)."""
    model, flags, driver = None, None, None
    with contextlib.suppress(OSError, IndexError):
        driver = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace").splitlines()[0]
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model is None:
                model = value.strip()
            elif name.strip() in ("flags", "Features") and flags is None:
                flags = sorted(value.split())
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": flags, "nvidia_driver": driver}


def load(cache_dir: Path, key: str, spec: str, target_info: dict[str, Any]) -> Capture | None:
    """The cached capture under `key` (its target info marked as from the cache), or None: no entry, or one
    that fails its sha256 check (then removed)."""
    entry = Path(cache_dir) / key
    try:
        record = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        intact = all(sha256_file(entry / name) == digest for name, digest in record["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        intact, record = False, None
    if not intact or record is None:
        shutil.rmtree(entry, ignore_errors=True)
        return None
    info = {**target_info, "cache": {"hit": True, "captured": record.get("captured"), "key": key[:16]}}
    outcome = read_capture(entry, spec, target_info=info)
    return outcome if isinstance(outcome, Capture) else None


def store(cache_dir: Path, key: str, capture_dir: Path, parts: dict[str, Any]) -> None:
    """Keep a successful capture under `key`, written whole or not at all (a staging folder renamed)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{key[:16]}-"))
    try:
        files = {}
        for name in CAPTURE_FILES:
            if (Path(capture_dir) / name).is_file():
                shutil.copyfile(Path(capture_dir) / name, staging / name)
                files[name] = sha256_file(staging / name)
        atomic_write_text(staging / ENTRY_FILE, json.dumps(
            {"key": key, "parts": parts, "files": files,
             "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1, sort_keys=True, default=str))
        shutil.rmtree(cache_dir / key, ignore_errors=True)
        staging.rename(cache_dir / key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
