"""Which files a review reads: the regular *.json files under the paths it is given.

Only the file system's own metadata is looked at here (no file is opened): a FIFO would block a read,
and a file far larger than any report is refused before its bytes are loaded. Folders whose name begins
with a dot (the review's own index, `fleet run`'s capture cache in REPORTS_DIR/.cache, .git…) are no
report folders: they are not searched, and nothing in them is listed as skipped, unless named.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_REPORT_BYTES = 64 << 20
"""A real report is kilobytes to a few megabytes; anything far larger is not read at all."""
INDEX_FOLDER = ".envcheck-review-index"
"""The review's own index (store.py), kept beside the reports: a dot-folder, never searched for reports."""
STATUS_COLUMNS = ("size", "mtime_ns", "ctime_ns", "inode")
"""What tells a file the review's index knows from one rewritten since: size and mtime alone do not, as
`cp -p`, `rsync -t` and `touch -r` set them back; the ctime changes on every write and no user tool sets
it, and a file renamed over another (rsync's way) has another inode."""


@dataclass
class Found:
    """The report files found, as columns: path (as the review shows it), absolute path (the index's key)
    and each of STATUS_COLUMNS."""

    paths: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    mtime_ns: list[int] = field(default_factory=list)
    ctime_ns: list[int] = field(default_factory=list)
    inode: list[int] = field(default_factory=list)
    listed_ns: int = field(default_factory=time.time_ns)
    """The time (ns since the epoch) before any file was looked at: a file whose ctime is later may have
    been changed again after it was looked at, within the same tick of a coarse file system clock."""

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: str, key: str, status: os.stat_result) -> None:
        """One more file, with the status it was found with."""
        self.paths.append(path)
        self.keys.append(key)
        self.size.append(status.st_size)
        self.mtime_ns.append(status.st_mtime_ns)
        self.ctime_ns.append(status.st_ctime_ns)
        self.inode.append(status.st_ino)


def report_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular *.json files under `paths` (folders followed through symlinks, each once), and
    (path, why) for the candidates that cannot be reports: special files (a FIFO would block) and
    files too large to be one. A file named on the command line is a candidate whatever its suffix."""
    found, skipped = report_files_with_status(paths)
    return [Path(path) for path in found.paths], skipped


def report_files_with_status(paths: list[Path]) -> tuple[Found, list[tuple[str, str]]]:
    """report_files, each file with the status it was found with (STATUS_COLUMNS: what the review's index
    compares): one stat per file, taken before the file is read. Paths stay texts: a review of 100,000
    files would spend longer building Path objects than reading its index."""
    files = Found()
    skipped: list[tuple[str, str]] = []
    seen_folders: set[str] = set()
    here = os.getcwd()

    def visit(path: str, named: bool) -> None:
        if os.path.isdir(path):
            visit_folder(path)
            return
        try:
            status = os.stat(path)
        except OSError as error:
            skipped.append((path, f"unreadable: {error.strerror}"))
            return
        take(path, os.path.join(here, path), status, named)

    def visit_folder(path: str) -> None:
        real = os.path.realpath(path)
        if real in seen_folders:  # a symlink loop, or a folder named twice
            return
        seen_folders.add(real)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            visit_entries(path, folder)
        finally:
            os.close(folder)

    def visit_entries(path: str, folder: int) -> None:
        # The loop every file of a fleet goes through: names sorted as texts, one stat each by the folder's
        # descriptor (measured: a third cheaper than sorting os.scandir's entries and asking each for its stat).
        prefix, key_prefix = os.path.join(path, ""), os.path.join(here, path, "")
        for name in sorted(os.listdir(folder)):
            report = name.endswith(".json")
            if not report and name.startswith("."):  # the index, the capture cache: no reports, not searched
                continue
            try:
                status = os.stat(name, dir_fd=folder)
            except OSError as error:
                if report:
                    skipped.append((prefix + name, f"unreadable: {error.strerror}"))
                continue
            if stat.S_ISDIR(status.st_mode):  # (a folder named like a report too)
                if not name.startswith("."):
                    visit_folder(prefix + name)
            elif report:
                take(prefix + name, key_prefix + name, status, False)

    def take(path: str, key: str, status: os.stat_result, named: bool) -> None:
        if not stat.S_ISREG(status.st_mode):
            skipped.append((path, "not a regular file (a pipe, socket or device)"))
        elif status.st_size > MAX_REPORT_BYTES:
            skipped.append((path, f"too large to be a report ({status.st_size >> 20} MB > "
                                  f"{MAX_REPORT_BYTES >> 20} MB)"))
        elif named or path.endswith(".json"):
            files.add(path, key, status)

    for path in paths:
        visit(str(Path(path)), named=True)  # (as Path shows it: "./a/" is "a")
    return files, skipped
