"""Shared by the contract tests: run `python -m envcheck` as a real process, in a shell when a stream must be
closed or piped, with SIGINT and SIGTERM at their defaults (CI may start the suite with SIGINT ignored)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from contract.commands import Command
from helpers import TF_OLDER_PYTHON, docker_with_images, require, restore_default_signals, tensorflow_installed

ENVCHECK = [sys.executable, "-m", "envcheck"]
RUN_TIMEOUT_S = 300


def require_infrastructure(command: Command) -> None:
    if command.needs == "tf-older":
        require(TF_OLDER_PYTHON.exists(), f"the older-TensorFlow interpreter {TF_OLDER_PYTHON}")
    elif command.needs == "tensorflow":
        require(tensorflow_installed(), "TensorFlow")
    elif command.needs == "docker":
        docker_with_images().close()
    elif command.needs == "tmpfs":
        require(os.geteuid() == 0, "root, to mount a small tmpfs")


def in_shell(argv: list[str], redirections: str, cwd: Path) -> subprocess.CompletedProcess:
    """`envcheck ARGV` under bash with `redirections` ({cmd} stands for the command); stderr is captured
    unless the redirections take it."""
    command = " ".join(shlex.quote(part) for part in [*ENVCHECK, *argv])
    script = redirections.format(cmd=command)
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          env={**os.environ, "COLUMNS": "100"}, preexec_fn=restore_default_signals)


@pytest.fixture
def workdir(tmp_path: Path):
    """A fresh folder the command runs in (its default reports/ lands here, never in the checkout); any tmpfs a
    command's input mounted under it is unmounted after."""
    folder = tmp_path / "work"
    folder.mkdir()
    yield folder
    for mount in reversed(mounts_under(tmp_path)):
        subprocess.run(["umount", "-l", mount], check=False)


def mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder`, outermost first (from /proc/self/mounts)."""
    prefix = str(folder.resolve()) + "/"
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return sorted(line.split()[1] for line in lines if line.split()[1].startswith(prefix))
