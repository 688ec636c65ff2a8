"""Where a command will write, checked before any work starts: a bad destination is one line and its exit
code now, not a crash after an hour of probing or a review of 100,000 reports.

Every command that writes goes through these two checks (check, compare, probe, review, fleet run, golden).
A destination is tried for real: a small temporary file is written and removed, so a read-only folder, a
full disk, a FIFO or a device where a file should go, and a dangling link in the way are all found here.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from envcheck.errors import EnvcheckError, UsageError

PROBE_BYTES = b"\0" * 4096
"""Written and removed to find a full disk (creating an empty file still succeeds on one)."""


def check_file_destination(path: Path, what: str) -> None:
    """`path` can take a file written atomically beside it: not a folder, FIFO or device; its folder writable."""
    path = Path(path)
    check_folder_destination(path.parent, f"{what} {path}")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise EnvcheckError(f"cannot write {what} {path}: {error.strerror or error}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"cannot write {what} {path}: it is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        raise UsageError(f"cannot write {what} {path}: it is not a regular file (a FIFO or a device)")


def refuse_dangling_link(path: Path, what: str) -> None:
    """A link to nothing where something will be written: following it would write somewhere nobody named."""
    if os.path.lexists(path) and not Path(path).exists():
        raise EnvcheckError(f"cannot write {what}: {path} is a link to nothing")


def check_folder_destination(folder: Path, what: str) -> None:
    """`folder` exists or can be made, and a file can be written in it."""
    folder = Path(folder)
    refuse_dangling_link(folder, what)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"cannot write {what}: {folder} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".envcheck-write-test-") as trial:
            trial.write(PROBE_BYTES)
            trial.flush()
    except OSError as error:
        raise EnvcheckError(f"cannot write {what}: {error.strerror or error}") from None
