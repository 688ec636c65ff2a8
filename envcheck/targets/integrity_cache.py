"""The integrity digest table a target's probe leaves, kept between runs so the next probe of the same target
re-hashes only the files whose stat changed (docs/integrity.md, "What it costs").

The probe hashes every installed file of the distributions it checks (TensorFlow alone is 1.2 GB); its
HashTable (envcheck_probe/integrity.py) holds, per file, [size, mtime_ns, ctime_ns, inode, RECORD digest]. The
target hands the table of its last probe in (TABLE_IN: in the probe's output folder on a host, beside the capture
folder in a container) and takes the new one back (TABLE_OUT) into the user's cache folder, one file per target
identity: a Docker image's id on one daemon, a host interpreter's resolved path, with the probe's own sha256 (a new
probe starts afresh). A probe whose rows all equal those it was handed leaves no table: the kept one stays as it is,
and a container's table (3.5 MB for the reference image) never travels back to be read and written again.

The table comes from the target, so it is untrusted data: read through read_regular_file with a size bound,
its shape checked row by row, never executed; a table that is missing, too large or damaged is not kept (the
probe then hashes everything: a cache is never an error). The probe checks what it is handed again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from envcheck.files import atomic_write_text, read_regular_file
from envcheck.targets.probe_app import probe_app_bytes

# The probe's own names and bounds (envcheck_probe/integrity.py; the host never imports the probe):
# tests/integrity/test_hash_table.py checks they agree.
TABLE_IN = "integrity-hashes-in.json"
TABLE_OUT = "integrity-hashes.json"
SCHEMA = "envcheck-integrity-hashes-1"
MAX_BYTES = 16 << 20
MAX_FILES = 200_000
RECORD_DIGEST_LENGTH = 43


def cache_folder() -> Path:
    """Where the tables live: $XDG_CACHE_HOME/envcheck/integrity (~/.cache when it is not set)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "envcheck" / "integrity"


def table_file(identity: str) -> Path:
    """The cache file of one target identity (its name a hash: an image id or a path says nothing there)."""
    probe = hashlib.sha256(probe_app_bytes()).hexdigest()
    return cache_folder() / (hashlib.sha256(f"{identity}\0{probe}".encode()).hexdigest()[:32] + ".json")


def table_to_hand_in(identity: str) -> bytes:
    """The identity's kept table (an empty one when there is none), for its probe's folder as TABLE_IN: a probe
    leaves its own table only where it was handed one. Its bytes as kept: take_back validated them, and the
    probe validates what it is handed (a table damaged since is ignored there)."""
    try:
        return read_regular_file(table_file(identity), limit=MAX_BYTES)
    except OSError:
        return json.dumps({"schema": SCHEMA, "files": {}}).encode("utf-8")


def hand_in(identity: str, out_dir: Path) -> None:
    """Put the identity's table into the probe's output folder (a probe on this machine); where it cannot be
    written, the probe hashes everything."""
    with contextlib.suppress(OSError):
        (Path(out_dir) / TABLE_IN).write_bytes(table_to_hand_in(identity))


def take_back(identity: str, out_dir: Path) -> None:
    """Keep the table the probe left, when it is valid, and remove both tables from the probe's folder (they are
    no part of the capture)."""
    table = read_table(Path(out_dir) / TABLE_OUT)
    for name in (TABLE_IN, TABLE_OUT):
        (Path(out_dir) / name).unlink(missing_ok=True)
    if table is not None:
        # An unwritable cache costs the next run time, never this one its result.
        with contextlib.suppress(OSError):
            atomic_write_text(table_file(identity), json.dumps(table, separators=(",", ":")))


def read_table(path: Path) -> dict[str, Any] | None:
    """The table at `path` with its valid rows, or None when it is absent, too large or not a table."""
    try:
        table = json.loads(read_regular_file(path, limit=MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return None
    files = table.get("files") if isinstance(table, dict) and table.get("schema") == SCHEMA else None
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        return None
    return {"schema": SCHEMA, "files": {name: row for name, row in files.items() if valid_row(row)}}


def valid_row(row: Any) -> bool:
    """[size, mtime_ns, ctime_ns, inode, RECORD digest]: four non-negative integers and a RECORD digest."""
    return (isinstance(row, list) and len(row) == 5
            and all(type(number) is int and number >= 0 for number in row[:4])
            and isinstance(row[4], str) and len(row[4]) == RECORD_DIGEST_LENGTH)
