"""The one method every target kind provides."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from envcheck.model import Capture, TargetFailure

# The probe's sources; targets get them packed as one zipapp (targets/probe_app.py).
PROBE_DIR = Path(__file__).resolve().parents[1] / "probe"

CANCELLED = threading.Event()
"""Set on Ctrl-C / SIGTERM: a probe that starts after the cancel sweep stops itself at once."""


class Target(Protocol):
    """Somewhere the probe can run: it runs the probe on a golden bundle and returns what came back."""

    @property
    def spec(self) -> str:
        """The target as the user wrote it: host, python:PATH, docker:IMAGE."""
        ...

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
        """Run the probe on `bundle_dir` (model/ + inputs.npz); leave its capture in `out_dir`."""
        ...
