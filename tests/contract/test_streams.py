"""Every command under hostile standard streams: a reader that leaves, a stream closed before start, a full
disk behind a redirect. The exit code is the verdict's, the reports are written, no traceback is printed.

(Before the shared console, `check … 2>&1 | head -1` under pipefail exited 0 for a FAIL: a progress line from
a worker thread raised BrokenPipeError before the verdict existed.)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.commands import COMMANDS, Command
from contract.conftest import in_shell, require_infrastructure

SCENARIOS = {
    # id: the shell line ({cmd}: envcheck and its arguments); it exits with envcheck's own status
    "undisturbed": "{cmd}",
    "stdout-closed": "{cmd} >&-",
    "stderr-closed": "{cmd} 2>&-",
    "both-closed": "{cmd} >&- 2>&-",
    "head-1": "set -o pipefail; {cmd} 2>&1 | head -1 >/dev/null",
    "head-0": "{cmd} 2>&1 | head -n 0; exit ${{PIPESTATUS[0]}}",
    "stdout-full": "{cmd} >/dev/full",
    "stderr-full": "{cmd} 2>/dev/full",
}
FEW = ("undisturbed", "stderr-closed", "head-1")
STDERR_READABLE = ("undisturbed", "stdout-closed", "stdout-full")
"""Commands that run TensorFlow meet these (the ones that bent the verdict), to keep the suite quick."""


def _cases():
    for command in COMMANDS:
        for scenario in SCENARIOS:
            if command.slow and scenario not in FEW:
                continue
            yield pytest.param(command, scenario, id=f"{command.id}-{scenario}")


def with_destination(command: Command, root: Path) -> tuple[list[str], Path | None]:
    """The command's argv, its `writes` option pointed at an ordinary new place under `root`."""
    argv = command.make(root)
    if command.writes is None:
        return argv, None
    destination = root / ("out-folder" if command.folder else "out-file")
    return [*argv, command.writes, str(destination)], destination


@pytest.mark.parametrize("command, scenario", list(_cases()))
def test_the_exit_code_is_the_verdicts_whatever_the_streams(command: Command, scenario: str, workdir: Path):
    require_infrastructure(command)
    argv, destination = with_destination(command, workdir)
    result = in_shell(argv, SCENARIOS[scenario], workdir)
    assert result.returncode == command.code, f"exit {result.returncode}, expected {command.code}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    if command.says and scenario in STDERR_READABLE:
        assert command.says in result.stderr, result.stderr
    if destination is not None and command.code in (0, 1):  # nothing lost: what it writes is there, whole
        assert destination.exists(), f"{command.writes} {destination} was not written"
        if command.writes == "--json":
            assert json.loads(destination.read_text())["exit_code"] == command.code
