"""The capture cache of Docker targets: a probe's capture is reused only when nothing it depends on changed.

The key (CacheKey) holds everything a capture depends on: the image id (never the tag), the golden's manifest
sha256, the probe's own bytes (probe.pyz: envcheck's and the probe's version at once) and its arguments, the
container's limits, the endpoint and the daemon's own ID, the daemon's description of its machine (name,
kernel, OS, CPUs, memory, daemon version, runtimes), the facts of the machine that runs the container read on
that machine (CPU model and flags, NVIDIA kernel module and userspace driver libraries: for a remote daemon
read by a tiny container, docker.py), and the context its latency was measured in (how many probes ran at
once). The comparison is made again on every run, so a changed policy needs no new capture.

An entry is served only when it proves it is the one asked for: its recorded key equals the key asked, its
recorded parts equal the parts asked and hash to that key, it is a real folder holding only regular files (no
symbolic link anywhere: an entry linked or copied in from elsewhere is never followed), and each file's sha256
matches. Anything else is removed and the target probed afresh.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envcheck.capture import read_capture
from envcheck.files import atomic_write_text, sha256_file
from envcheck.model import Capture

ENTRY_FILE = "entry.json"
CAPTURE_FILES = ("capture.json", "outputs.npz", "tflite-outputs.npz")
NVIDIA_VERSION_FILE = "/proc/driver/nvidia/version"
CPUINFO_FILE = "/proc/cpuinfo"
# Where distributions and the NVIDIA container toolkit put the userspace driver: its file names carry the
# version (libcuda.so.550.54.15), which a driver upgraded without reboot changes while the kernel module's
# /proc line does not (the LIB_RM_VERSION_MISMATCH case).
DRIVER_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64",
                   "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib")
DRIVER_LIB_NAME = re.compile(r"^lib(?:nvidia-ml|cuda)\.so\.\d+\.\d[\w.]*$")  # the versioned name, not .so.1


@dataclass(frozen=True)
class MachineFacts:
    """What decides a capture on the machine that runs the container, read on that machine."""

    cpu_model: str | None
    cpu_flags: tuple[str, ...] | None
    nvidia_kernel_module: str | None
    """The first line of /proc/driver/nvidia/version (None: no NVIDIA kernel module)."""
    nvidia_userspace_libraries: tuple[str, ...]
    """Versioned libnvidia-ml / libcuda file names in the usual library folders."""


@dataclass(frozen=True)
class CacheKey:
    """Everything a cached capture depends on; `digest()` names its entry."""

    endpoint: str
    """The daemon's address, normalised (docker.normalise_endpoint)."""
    daemon_id: str | None
    """The daemon's own ID (`docker info`): two boxes cloned from one OS image still differ here."""
    daemon: dict[str, Any]
    """The daemon's description of its machine (name, kernel, OS, CPUs, memory, version, runtimes)."""
    machine: MachineFacts
    """The facts of the machine that runs the container, read there."""
    image_id: str
    golden_sha256: str
    probe_sha256: str
    run: dict[str, Any]
    """The container's options: the probe's arguments (latency budget, layers…) and its limits."""
    latency_context: dict[str, Any] | None
    """How many probes ran at once while its latency was measured (None: no latency measured): a capture
    measured under load is never served to a run that would judge it as measured alone."""

    def parts(self) -> dict[str, Any]:
        """The key as plain JSON values (what an entry records, and what its digest is made of)."""
        return canonical(dataclasses.asdict(self))

    def digest(self) -> str:
        """The entry's name: sha256 of the parts as canonical JSON."""
        return digest_of(self.parts())


def canonical(value: Any) -> Any:
    """`value` as JSON would give it back (tuples as lists, objects as strings): comparable with a read entry."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def digest_of(parts: Any) -> str:
    """sha256 of `parts` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def machine_facts(cpuinfo: str, nvidia_version: str, library_names: list[str]) -> MachineFacts:
    """The facts from what was read on the machine (the same parser for this machine and a remote one)."""
    model: str | None = None
    flags: tuple[str, ...] | None = None
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name" and model is None:
            model = value.strip()
        elif name.strip() in ("flags", "Features") and flags is None:
            flags = tuple(sorted(value.split()))
    driver = next((line.strip() for line in nvidia_version.splitlines() if line.strip()), None)
    libraries = sorted({Path(name).name for name in library_names if DRIVER_LIB_NAME.match(Path(name).name)})
    return MachineFacts(cpu_model=model, cpu_flags=flags, nvidia_kernel_module=driver,
                        nvidia_userspace_libraries=tuple(libraries))


def local_machine() -> MachineFacts:
    """This machine's facts (for a daemon on this machine)."""
    def read(path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    names: list[str] = []
    for folder in DRIVER_LIB_DIRS:
        with contextlib.suppress(OSError):
            names += os.listdir(folder)
    return machine_facts(read(CPUINFO_FILE), read(NVIDIA_VERSION_FILE), names)


def load(cache_dir: Path, key: CacheKey, spec: str, target_info: dict[str, Any]) -> Capture | None:
    """The capture cached under `key` (its target info marked as from the cache), or None: no entry, or one
    that does not prove it is the entry asked for (then removed)."""
    digest = key.digest()
    entry = Path(cache_dir) / digest
    record = _verified_record(entry, digest, key.parts())
    if record is None:
        discard(entry)
        return None
    info = {**target_info, **record.get("probe_info", {}),
            "cache": {"hit": True, "captured": record.get("captured"), "key": digest[:16]}}
    outcome = read_capture(entry, spec, target_info=info)
    return outcome if isinstance(outcome, Capture) else None


def _verified_record(entry: Path, digest: str, parts: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's record when the entry is what it says and what was asked for; None otherwise."""
    try:
        if not stat.S_ISDIR(os.lstat(entry).st_mode):  # a link (dangling or not) or a file: never followed
            return None
        names = set(os.listdir(entry))
        if not all(stat.S_ISREG(os.lstat(entry / name).st_mode) for name in names):
            return None
        record = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        files = record["files"]
        if (record["key"] != digest or record["parts"] != parts or digest_of(record["parts"]) != digest
                or names != {ENTRY_FILE, *files}):
            return None
        intact = all(name in CAPTURE_FILES and sha256_file(entry / name) == sha256 for name, sha256 in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record if intact and isinstance(record, dict) else None


def discard(entry: Path) -> None:
    """Remove an entry, whatever it is (a folder, a link, a file); never what a link points to."""
    with contextlib.suppress(OSError):
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink()
        else:
            shutil.rmtree(entry)


def store(cache_dir: Path, key: CacheKey, capture_dir: Path, probe_info: dict[str, Any]) -> None:
    """Keep a successful capture under `key` with what its probe said of the target from outside
    (`probe_info`: the container's user, the time it took), so a served capture reports what the probe did.
    Written whole or not at all (a staging folder renamed); when another run stored the same key meanwhile,
    the first one stays: both captures answer the same key."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = key.digest()
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{digest[:16]}-"))
    try:
        files = {}
        for name in CAPTURE_FILES:
            if (Path(capture_dir) / name).is_file():
                shutil.copyfile(Path(capture_dir) / name, staging / name)
                files[name] = sha256_file(staging / name)
        atomic_write_text(staging / ENTRY_FILE, json.dumps(
            {"key": digest, "parts": key.parts(), "files": files, "probe_info": canonical(probe_info),
             "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1, sort_keys=True))
        _publish(staging, cache_dir / digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, entry: Path) -> None:
    """Rename `staging` to `entry`. Whatever is there and is not a real folder (a link, a file) is removed
    first; a real folder there is another writer's entry of the same key (first wins)."""
    if entry.is_symlink() or (entry.exists() and not entry.is_dir()):
        discard(entry)
    try:
        staging.rename(entry)
    except OSError as error:
        # NOTE: rename onto a non-empty folder fails with ENOTEMPTY (EEXIST on some systems): a concurrent
        # store of the same key got there first.
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
