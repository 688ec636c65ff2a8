"""Run a child process with a hard timeout that kills its whole process group."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from envcheck.targets.base import CANCELLED
from envcheck.targets.exits import ChildExit

STDERR_TAIL_CHARS = 4000

# Children still running, so that Ctrl-C in the main thread can end them: they run in their own
# session (their own process group), where the terminal's SIGINT does not reach them.
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def run_child(command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> ChildExit:
    """Run `command`; stdout is discarded (the probe's results travel in files), stderr's tail kept.

    Raises FileNotFoundError / PermissionError when the program cannot be started at all.
    """
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=dict(env) if env is not None else None,
                             cwd=cwd, start_new_session=True)
    with _live_lock:
        _live.add(child)
    if CANCELLED.is_set():  # started while the run was being cancelled: the sweep missed it
        _kill_group(child)
    try:
        _, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        _, stderr = child.communicate()
        return ChildExit(returncode=child.returncode, timed_out=True, timeout_s=timeout,
                         stderr_tail=_tail(stderr))
    except BaseException:  # Ctrl-C in this thread: leave no orphan behind
        _kill_group(child)
        child.wait()
        raise
    finally:
        with _live_lock:
            _live.discard(child)
    return ChildExit(returncode=child.returncode, stderr_tail=_tail(stderr))


def cancel_children() -> None:
    """Kill every running child's process group (called on Ctrl-C; their threads then return)."""
    with _live_lock:
        children = list(_live)
    for child in children:
        _kill_group(child)


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _tail(stderr: bytes | None) -> str:
    return (stderr or b"").decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
