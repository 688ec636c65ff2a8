"""Hash identifying values (hostnames, GPU UUIDs and serials) in anything meant to be shared.

The digest is salted and stable, so the same host gives the same token in every report of a fleet
and a reviewer can still group by it, yet the raw value never leaves the local capture.
Set ENVCHECK_REDACTION_SALT to make tokens unlinkable to another organisation's reports.

File system paths (the registry's `holds_paths` fields: where a library or a start-up file lies) keep their
shape: only the folder that names a person or a machine is hashed, `/home/alice/venv/x.pth` ->
`/home/sha256:…/venv/x.pth`, so that a finding still names its file and the same path compares equal.
System and package folders (/usr, /opt, site-packages, /root: no person) stay as they are.
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import os
import re
from typing import Any

from envcheck import fields

# Exact paths from the field registry (envcheck/fields.py), list indexes written [*] so that one entry
# covers every GPU. _redact names list items [*] too and compares exactly: never a glob, which would also
# hash the reason beside a value (gpu.gpus[0].unsupported.uuid).
IDENTIFYING_PATHS = fields.identifying_paths()
DEFAULT_SALT = "envcheck/1"
REDACTED_PREFIX = "sha256:"
PATH_FIELDS = fields.path_fields()
"""Globs (fnmatch form) of the values holding paths; the kit applies them too (kit.py's kit_record)."""
# Folders whose next part names a person (a home, a user's removable media) or a machine (autofs's /net/<host>).
PERSONAL_FOLDERS = ("/home/", "/Users/", "/var/home/", "/media/", "/run/media/", "/net/")
PERSONAL_PART = (r"(?:^|(?<=[\s:;,='\"]))(" + "|".join(re.escape(folder) for folder in PERSONAL_FOLDERS) + r")"
                 + r"(?!" + re.escape(REDACTED_PREFIX) + r")([^/:;,'\"\r\n]+)")
"""Where such a folder begins a path (also one of several in LD_LIBRARY_PATH or LD_PRELOAD), the part after it up to
the next `/` (a space included: `/Users/Carol Smith/`), unless already hashed: a regular expression, which the kit
applies as the same data (kit.py, kit_capture.py)."""


def hash_identifier(value: str) -> str:
    """A salted, truncated sha256 of an identifying value: equal values stay equal, the value is not shown."""
    salt = os.environ.get("ENVCHECK_REDACTION_SALT", DEFAULT_SALT)
    return REDACTED_PREFIX + hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()[:16]


def any_of_globs(globs: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    """One expression matching what any of `globs` does (none: nothing); the kit builds it the same way."""
    return re.compile("|".join(fnmatch.translate(pattern) for pattern in globs) or "(?!)")


_HOLDS_PATHS = any_of_globs(PATH_FIELDS)
_PERSONAL = re.compile(PERSONAL_PART)


def without_personal_folders(text: str) -> str:
    """`/home/alice/venv/lib/x.so` -> `/home/sha256:…/venv/lib/x.so`, in each path of `text` (idempotent)."""
    return _PERSONAL.sub(lambda found: found.group(1) + hash_identifier(found.group(2)), text)


def redact_fingerprint(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """A copy of `fingerprint` with every identifying value hashed and the personal folder of every path it
    records (idempotent)."""
    shared = copy.deepcopy(fingerprint)
    _redact(shared, "")
    return shared


def _redact(node: Any, path: str) -> None:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(children):
        child = f"{path}{fields.ANY_INDEX}" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        if isinstance(value, (dict, list)):
            _redact(value, child)
        elif (isinstance(value, str) and child in IDENTIFYING_PATHS
              and not value.startswith(REDACTED_PREFIX)):
            node[key] = hash_identifier(value)
        elif isinstance(value, str) and _HOLDS_PATHS.match(child):
            node[key] = without_personal_folders(value)


# Transports whose address names a machine (user@host, an IP); a unix socket path names none.
IDENTIFYING_SCHEMES = ("tcp://", "ssh://", "http://", "https://")


def redact_daemon_url(url: str | None) -> str | None:
    """`ssh://ops@edge-17` -> `ssh://sha256:…`: the transport stays readable, the machine does not."""
    if not isinstance(url, str) or url.startswith(REDACTED_PREFIX):
        return url
    for scheme in IDENTIFYING_SCHEMES:
        if url.startswith(scheme) and not url[len(scheme):].startswith(REDACTED_PREFIX):
            return scheme + hash_identifier(url[len(scheme):])
    return url


def redact_target_info(info: dict[str, Any]) -> dict[str, Any]:
    """A copy of a target's outside view (image, daemon…) with the daemon's address hashed."""
    shared = copy.deepcopy(info)
    daemon = shared.get("daemon")
    if isinstance(daemon, dict):
        if "host" in daemon:
            daemon["host"] = redact_daemon_url(daemon["host"])
        if isinstance(daemon.get("name"), str) and not daemon["name"].startswith(REDACTED_PREFIX):
            daemon["name"] = hash_identifier(daemon["name"])  # the daemon machine's hostname
    return shared


# In a capture meant to travel (a technician sends it back), paths and process ids name a machine's
# layout and a moment; they are hashed or dropped like hostnames. `envcheck probe --raw` keeps them.
TRAVELLING_PATHS = ("python.executable",)
DROPPED_IN_TRANSIT = ("pid",)


def redact_for_sending(fingerprint: dict[str, Any], target_info: dict[str, Any]) -> tuple[dict, dict]:
    """(fingerprint, target_info) as they may leave the site: identifying values hashed, pids dropped."""
    shared = redact_fingerprint(fingerprint)
    python = shared.get("python")
    if isinstance(python, dict) and isinstance(python.get("executable"), str):
        python["executable"] = _hash_once(python["executable"])
    host = shared.get("host")
    if isinstance(host, dict):
        for key in DROPPED_IN_TRANSIT:
            host.pop(key, None)
    info = redact_target_info(target_info)
    if isinstance(info.get("python"), str):
        info["python"] = _hash_once(info["python"])
    return shared, info


def _hash_once(value: str) -> str:
    return value if value.startswith(REDACTED_PREFIX) else hash_identifier(value)
