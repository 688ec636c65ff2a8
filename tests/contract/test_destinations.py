"""Every command that writes, pointed at a hostile destination: it says so in one line before any work (a
usage error for a place that can never take the file, 3 for one that cannot now), leaves nothing partial,
and never writes through a link it was not given."""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contract.commands import COMMANDS, Command
from contract.conftest import in_shell, require_infrastructure
from helpers import require

WRITERS = [command for command in COMMANDS if command.writes]


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted on `folder` for the test (root, as CI runs): read-only or full."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                             text=True)
    require(mounted.returncode == 0, f"mounting a tmpfs (as root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


def _fifo(root: Path, command: Command) -> Path:
    os.mkfifo(root / "fifo")
    return root / "fifo"


def _directory_for_a_file(root: Path, command: Command) -> Path:
    (root / "a-folder").mkdir()
    return root / "a-folder"


def _file_for_a_folder(root: Path, command: Command) -> Path:
    (root / "a-file").write_text("not a folder")
    return root / "a-file"


def _dangling_folder(root: Path, command: Command) -> Path:
    (root / "gone").symlink_to(root / "nowhere")
    return root / "gone" / "out" if not command.folder else root / "gone"


PLACES: dict[str, tuple[Callable[[Path, Command], Path], bool | None, int]] = {
    # id: (make the destination, for file or folder destinations (None: both), the exit code)
    "fifo": (_fifo, None, 2),
    "a-directory": (_directory_for_a_file, False, 2),
    "a-file-as-folder": (_file_for_a_folder, True, 2),
    "dangling-link": (_dangling_folder, None, 3),
}


def _cases():
    for command in WRITERS:
        for place, (_, kind, _) in PLACES.items():
            if kind is None or kind == command.folder:
                yield pytest.param(command, place, id=f"{command.id}-{place}")


def _refused(result: subprocess.CompletedProcess, code: int, root: Path) -> None:
    assert result.returncode == code, f"exit {result.returncode}, expected {code}\n{result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("envcheck: error: "), result.stderr
    left = [p for p in root.rglob("*") if p.name.startswith(".envcheck-write-test-") or p.name.endswith(".tmp")]
    assert not left, f"partial files left: {left}"


@pytest.mark.parametrize("command, place", list(_cases()))
def test_a_destination_that_cannot_be_written_is_one_line_before_any_work(command: Command, place: str, workdir):
    require_infrastructure(command)
    make, _, code = PLACES[place]
    destination = make(workdir, command)
    result = in_shell([*command.make(workdir), command.writes, str(destination)], "{cmd}", workdir)
    _refused(result, code, workdir)
    assert not list((workdir / "reports").glob("*.json")), "a report was kept for a run that could not publish"


@pytest.mark.parametrize("command", [pytest.param(c, id=c.id) for c in WRITERS if not c.slow])
@pytest.mark.parametrize("options", [pytest.param("ro,size=1m", id="read-only"),
                                     pytest.param("size=64k", id="full")])
def test_a_read_only_or_full_disk_is_one_line_before_any_work(command: Command, options: str, workdir):
    with tmpfs(workdir / "mount", options) as mount:
        if "ro" not in options.split(","):
            _fill(mount)
        destination = mount / ("out-folder" if command.folder else "out-file")
        result = in_shell([*command.make(workdir), command.writes, str(destination)], "{cmd}", workdir)
        _refused(result, 3, mount)


@pytest.mark.parametrize("command", [pytest.param(c, id=c.id) for c in WRITERS if not c.slow and not c.folder])
def test_a_link_it_was_given_is_replaced_never_written_through(command: Command, workdir):
    outside = workdir / "outside.txt"
    outside.write_text("someone else's file\n")
    link = workdir / "link"
    link.symlink_to(outside)
    result = in_shell([*command.make(workdir), command.writes, str(link)], "{cmd}", workdir)
    assert result.returncode == command.code, result.stderr
    assert outside.read_text() == "someone else's file\n"
    assert link.is_file() and not link.is_symlink()
