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
INDEX_FOLDER = ".envcheck-review-index"
"""The review's own index (store.py), kept beside the reports: never searched for reports."""


def report_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular *.json files under `paths` (folders followed through symlinks, each once), and
    (path, why) for the candidates that cannot be reports: special files (a FIFO would block) and
    files too large to be one. A file named on the command line is a candidate whatever its suffix."""
    found, skipped = report_files_with_status(paths)
    return [path for path, _ in found], skipped


def report_files_with_status(paths: list[Path]) -> tuple[list[tuple[Path, os.stat_result]], list[tuple[str, str]]]:
    """report_files, each file with the status it was found with (its size and modification time are
    what the review's index compares): one stat per file, taken before the file is read."""
    files: list[tuple[Path, os.stat_result]] = []
    skipped: list[tuple[str, str]] = []
    seen_folders: set[str] = set()

    def visit(path: Path, named: bool, entry: os.DirEntry[str] | None = None) -> None:
        if _is_dir(path, entry):
            real = os.path.realpath(path)
            if real in seen_folders:  # a symlink loop, or a folder named twice
                return
            seen_folders.add(real)
            with os.scandir(path) as listing:
                children = sorted(listing, key=lambda child: child.name)
            for child in children:
                if child.name == INDEX_FOLDER:
                    continue
                if child.name.endswith(".json") or _is_dir(path, child):
                    visit(path / child.name, False, child)
            return
        try:
            status = entry.stat() if entry is not None else path.stat()
        except OSError as error:
            skipped.append((str(path), f"unreadable: {error.strerror}"))
            return
        if not stat.S_ISREG(status.st_mode):
            skipped.append((str(path), "not a regular file (a pipe, socket or device)"))
        elif status.st_size > MAX_REPORT_BYTES:
            skipped.append((str(path), f"too large to be a report ({status.st_size >> 20} MB > "
                                       f"{MAX_REPORT_BYTES >> 20} MB)"))
        elif named or path.name.endswith(".json"):
            files.append((path, status))

    for path in paths:
        visit(Path(path), named=True)
    return files, skipped


def _is_dir(path: Path, entry: os.DirEntry[str] | None) -> bool:
    """Whether a path is a folder, through symlinks (False where it cannot be told), as Path.is_dir."""
    if entry is None:
        return path.is_dir()
    try:
        return entry.is_dir()
    except OSError:
        return False
