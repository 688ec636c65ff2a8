"""The on-site kit, built on the host: the probe's modules and a golden bundle in ONE zipapp that any box runs
with its own Python (`python3 envcheck-kit.pyz --site NAME --out capture.tar.gz`), installing nothing.

The kit's runtime is part of the probe package (probe/envcheck_probe/kit*.py: verify the golden, probe in a
child, redact, write a tar.gz); here it is only packed, by the probe's own packer (targets/probe_app.py), so
the kit is the same bytes for the same golden and the same envcheck. Its members:

    __main__.py                 the launcher (envcheck_probe.kit:run)
    envcheck_probe/*.py         the probe, exactly as probe.pyz holds it
    golden/manifest.json, …     the golden bundle, every file its manifest lists
    kit.json                    envcheck.kit/1: envcheck's version, the golden's sha256 and how headquarters
                                names it, the probe's default arguments, and the redaction rules of
                                envcheck/redact.py as data

Limit: a kit is a ZIP that the box's Python imports its code from, and zipimport reads ZIP64 archives only
from Python 3.13; a kit therefore stays under zipfile.ZIP64_LIMIT (2 GiB). The golden is also read into
memory here to pack it, and unpacked into the box's temporary directory there (Docker's /dev/shm is 64 MiB
unless --shm-size raises it, which matters only on a read-only root). A larger model is checked with
`envcheck probe --golden DIR` on the box, or through its Docker API.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass

from envcheck import __version__
from envcheck.errors import GoldenError, UsageError
from envcheck.golden import MANIFEST_FILE, GoldenBundle
from envcheck.redact import (
    DEFAULT_SALT,
    DROPPED_IN_TRANSIT,
    IDENTIFYING_PATHS,
    PATH_FIELDS,
    PERSONAL_PART,
    REDACTED_PREFIX,
    TRAVELLING_PATHS,
)
from envcheck.targets.probe_app import DEFAULT_LATENCY_BUDGET_S, pack_zipapp, probe_arguments, probe_entries

KIT_SCHEMA = "envcheck.kit/1"
"""Mirrors probe/envcheck_probe/kit_golden.py's KIT_SCHEMA (the host does not import the probe; a test holds
them equal)."""
KIT_RECORD = "kit.json"
KIT_ENTRY_POINT = "envcheck_probe.kit:run"
GOLDEN_PREFIX = "golden/"
DEFAULT_KIT_NAME = "envcheck-kit.pyz"
MAX_KIT_BYTES = zipfile.ZIP64_LIMIT
"""Past this, zipfile writes ZIP64 records, which zipimport reads only from Python 3.13."""
REDACTION_SALT_VARIABLE = "ENVCHECK_REDACTION_SALT"
"""The variable envcheck/redact.py salts its hashes with, read on the box as `envcheck probe` reads it there."""


@dataclass(frozen=True, slots=True)
class Kit:
    """A built kit."""

    data: bytes
    """The zipapp's bytes."""
    golden_sha256: str
    envcheck_version: str

    @property
    def sha256(self) -> str:
        """The kit's own sha256: what a technician or a fleet tool checks before running it."""
        return hashlib.sha256(self.data).hexdigest()


def build_kit(golden: GoldenBundle, golden_name: str | None) -> Kit:
    """The kit of `golden` (verified already); `golden_name` is how headquarters names it in `envcheck compare
    --golden` (None: the built-in default)."""
    entries = {**probe_entries(), **_golden_entries(golden),
               KIT_RECORD: _json(kit_record(golden.sha256, golden_name))}
    size = sum(len(data) for data in entries.values())
    if size > MAX_KIT_BYTES:
        raise UsageError(f"{golden.path}: a kit of this golden would be {size / 2**30:.1f} GiB, past the "
                         f"{MAX_KIT_BYTES / 2**30:.0f} GiB that Python before 3.13 can run as one file (zipimport "
                         "reads no ZIP64); probe the box with `envcheck probe --golden DIR` instead")
    return Kit(data=pack_zipapp(entries, KIT_ENTRY_POINT), golden_sha256=golden.sha256, envcheck_version=__version__)


def kit_record(golden_sha256: str, golden_name: str | None) -> dict:
    """kit.json: what the kit's runtime needs from the host, redaction rules included (as data, so the box
    redacts exactly the registry's paths without importing envcheck)."""
    return {
        "schema": KIT_SCHEMA, "envcheck_version": __version__, "golden_sha256": golden_sha256, "golden": golden_name,
        # The probe runs as a host or Docker target runs it by default, so the capture compares alike.
        "probe_arguments": probe_arguments(DEFAULT_LATENCY_BUDGET_S),
        "redaction": {"hashed": sorted({*IDENTIFYING_PATHS, *TRAVELLING_PATHS}),
                      "dropped": sorted(f"host.{key}" for key in DROPPED_IN_TRANSIT),
                      "prefix": REDACTED_PREFIX, "default_salt": DEFAULT_SALT, "salt_variable": REDACTION_SALT_VARIABLE,
                      # values holding paths (globs), and the part of a path naming a person (a regular expression)
                      "paths": {"fields": list(PATH_FIELDS), "personal": PERSONAL_PART}},
    }


def _golden_entries(golden: GoldenBundle) -> dict[str, bytes]:
    """golden/<file> for the manifest and every file it lists, checked again as read (the bundle may have changed
    since it was verified)."""
    listed: dict[str, str] = golden.manifest["files"]
    manifest = (golden.path / MANIFEST_FILE).read_bytes()
    if hashlib.sha256(manifest).hexdigest() != golden.sha256:
        raise GoldenError(f"{golden.path / MANIFEST_FILE}: changed while the kit was being built")
    entries = {GOLDEN_PREFIX + MANIFEST_FILE: manifest}
    for name, digest in sorted(listed.items()):
        data = (golden.path / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise GoldenError(f"{golden.path / name}: changed while the kit was being built")
        entries[GOLDEN_PREFIX + name] = data
    return entries


def _json(document: dict) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")

