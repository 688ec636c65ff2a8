"""How a probe's process ended, and what an abnormal end is called: the same names for a subprocess and a
container (SIGILL, SIGABRT, out of memory, timeout), so a crash reads alike whatever the target."""
from __future__ import annotations

import signal
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from envcheck.capture import ChildEnd, read_capture
from envcheck.model import Capture, TargetFailure


@dataclass(frozen=True, slots=True)
class ChildExit:
    """How the process (or container) that ran the probe ended."""

    returncode: int | None
    """Negative: killed by that signal (subprocess); 128+N: the same seen through a shell or Docker."""
    timed_out: bool = False
    timeout_s: float | None = None
    stderr_tail: str = ""


def read_outcome(capture_dir: Path, spec: str, child: ChildExit, target_info: dict[str, Any] | None = None,
                 site: str | None = None) -> Capture | TargetFailure:
    """The capture a probe left, read in the light of how its process ended (an abnormal end decides)."""
    end = ChildEnd(exit_code=child.returncode, stderr_tail=child.stderr_tail, death=partial(classify_exit, child))
    return read_capture(capture_dir, spec, end, target_info, site)


def classify_exit(child: ChildExit, stage: str | None, fingerprint: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, plain message) for a child that died abnormally, or None for a normal exit."""
    where = f" while {stage.replace('-', ' ')}" if stage else ""
    if child.timed_out:
        return "timeout", f"the probe did not finish within {child.timeout_s:g} s{where}; it was killed"
    signum = _signal_number(child.returncode)
    if signum == signal.SIGILL:
        missing = fingerprint.get("cpu", {}).get("missing_required_flags") or []
        lacking = f" (this CPU lacks {', '.join(missing)})" if missing else ""
        return "sigill", ("illegal instruction (SIGILL) — this CPU lacks instructions the TensorFlow build "
                          f"needs{lacking}{where}")
    if signum == signal.SIGABRT:
        return "sigabrt", (f"TensorFlow aborted (SIGABRT){where} — often its CPU-feature guard or a "
                           "library version mismatch; see stderr")
    if signum == signal.SIGKILL:
        return "killed", f"the probe was killed (SIGKILL){where} — most likely out of memory"
    if signum == signal.SIGSEGV:
        return "sigsegv", f"the probe crashed with a segmentation fault (SIGSEGV){where}"
    if signum is not None:
        return "signal", f"the probe died from signal {signal.Signals(signum).name}{where}"
    return None


def _signal_number(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None
