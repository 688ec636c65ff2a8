"""The one method every target kind provides, and what all kinds share: the cancel flag and the count of
probes running at once in this process (the context a latency is measured in)."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from envcheck.model import Capture, TargetFailure

# The probe's sources; targets get them packed as one zipapp (targets/probe_app.py).
PROBE_DIR = Path(__file__).resolve().parents[1] / "probe"

CANCELLED = threading.Event()
"""Set on Ctrl-C / SIGTERM: a probe that starts after the cancel sweep stops itself at once."""

UNDER_WAY = threading.Event()
"""Set once a probe of this process is under way (its container started, its child spawned): work that can wait
for it (the CLI's imports for judging and reporting) then runs beside the probe instead of slowing its start."""


class Target(Protocol):
    """Somewhere the probe can run: it runs the probe on a golden bundle and returns what came back."""

    @property
    def spec(self) -> str:
        """The target as the user wrote it: host, python:PATH, docker:IMAGE."""
        ...

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
        """Run the probe on `bundle_dir` (model/ + inputs.npz); leave its capture in `out_dir`."""
        ...


class ProbeLoad:
    """The most probes this process had running at once while one probe ran (itself included)."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.peak = 0


_running: set[ProbeLoad] = set()
_running_lock = threading.Lock()


@contextlib.contextmanager
def probe_running() -> Iterator[ProbeLoad]:
    """Count a probe as running for the duration of the block; the ProbeLoad yielded says how many ran
    at once at most meanwhile (of every target kind, every site of a fleet: they share this process)."""
    load = ProbeLoad()
    with _running_lock:
        _running.add(load)
        for each in _running:
            each.peak = max(each.peak, len(_running))
    try:
        yield load
    finally:
        with _running_lock:
            _running.discard(load)
