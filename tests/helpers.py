"""Helpers shared by tests (import them; fixtures stay in conftest.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _default_signals() -> None:
    # CI may run the suite as a background job, with SIGINT ignored; an ignored signal stays ignored
    # across exec, so the child would never see the Ctrl-C the test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn_envcheck(*argv: str, **options) -> subprocess.Popen:
    """`python -m envcheck ARGV` in a child whose SIGINT and SIGTERM have their default meaning."""
    return subprocess.Popen([sys.executable, "-m", "envcheck", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals, **options)


def hanging_interpreter(directory: Path, seconds: int = 601) -> tuple[Path, Path]:
    """A fake `python` that writes its PID to a file and sleeps: (interpreter, pid file)."""
    pid_file = directory / "hang.pid"
    interpreter = directory / "python"
    interpreter.write_text(f"#!/bin/sh\necho $$ > {pid_file}\n"
                           f"exec {sys.executable} -c 'import time; time.sleep({seconds})'\n")
    interpreter.chmod(0o755)
    return interpreter, pid_file


def wait_for_pid(pid_file: Path, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.1)
    return None


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def kill_quietly(*pids: int | None) -> None:
    """Leave nothing running, whatever the test's outcome: only the processes it started, by PID."""
    for pid in pids:
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
