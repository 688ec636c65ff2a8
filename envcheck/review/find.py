"""Which files a review reads: the regular *.json files under the paths it is given.

Only the file system's own metadata is looked at here (no file is opened): a FIFO would block a read,
and a file far larger than any report is refused before its bytes are loaded.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_REPORT_BYTES = 64 << 20
"""A real report is kilobytes to a few megabytes; anything far larger is not read at all."""


def report_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular *.json files under `paths` (folders followed through symlinks, each once), and
    (path, why) for the candidates that cannot be reports: special files (a FIFO would block) and
    files too large to be one. A file named on the command line is a candidate whatever its suffix."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen_folders: set[str] = set()

    def visit(path: Path, named: bool) -> None:
        if path.is_dir():
            real = os.path.realpath(path)
            if real in seen_folders:  # a symlink loop, or a folder named twice
                return
            seen_folders.add(real)
            for child in sorted(path.iterdir()):
                if child.is_dir() or child.name.endswith(".json"):
                    visit(child, named=False)
            return
        try:
            status = path.stat()
        except OSError as error:
            skipped.append((str(path), f"unreadable: {error.strerror}"))
            return
        if not stat.S_ISREG(status.st_mode):
            skipped.append((str(path), "not a regular file (a pipe, socket or device)"))
        elif status.st_size > MAX_REPORT_BYTES:
            skipped.append((str(path), f"too large to be a report ({status.st_size >> 20} MB > "
                                       f"{MAX_REPORT_BYTES >> 20} MB)"))
        elif named or path.name.endswith(".json"):
            files.append(path)

    for path in paths:
        visit(Path(path), named=True)
    return files, skipped
