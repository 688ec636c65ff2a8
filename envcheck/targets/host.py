"""Targets that are Python interpreters on this machine: `host` and `python:PATH`.

The probe runs in a subprocess even for `host`, so host and container fingerprints come from the
same code and a TensorFlow crash becomes a reported failure, not a dead CLI.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from envcheck.model import Capture, TargetFailure
from envcheck.targets import integrity_cache
from envcheck.targets.base import UNDER_WAY, probe_running
from envcheck.targets.exits import read_outcome
from envcheck.targets.probe_app import DEFAULT_LATENCY_BUDGET_S, probe_app_path, probe_arguments
from envcheck.targets.process import run_child

# The probe's own (envcheck_probe/integrity.py; the host never imports the probe): tests/integrity checks they agree.
INTEGRITY_MODES = ("full", "numerics", "off")
DEFAULT_INTEGRITY = "numerics"


@dataclass(frozen=True)
class InterpreterTarget:
    """A Python interpreter on this machine (`host` is the one running envcheck)."""

    spec: str
    python: str
    latency_budget: float = DEFAULT_LATENCY_BUDGET_S
    """Seconds the probe spends timing batch-1 calls after the outputs (0: no latency measured)."""
    calibrate: bool = False
    """The probe also runs the calibration perturbations (a golden's reference target)."""
    layers: bool | None = None
    """Record the layer summaries: True (a golden's reference target), False (--no-layers), None (when the
    golden has a layer record)."""
    tflite: bool = False
    """Convert the model to TFLite and run it too (a golden's reference target, golden create --tflite)."""
    integrity: str = DEFAULT_INTEGRITY
    """Installed files the probe checks against their RECORD and dpkg: full, numerics or off (docs/integrity.md)."""

    @classmethod
    def for_host(cls, latency_budget: float = DEFAULT_LATENCY_BUDGET_S) -> InterpreterTarget:
        """The interpreter running envcheck itself."""
        return cls(spec="host", python=sys.executable, latency_budget=latency_budget)

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
        """Run the probe in a child process of this interpreter, with a hard timeout."""
        python = shutil.which(self.python) or self.python
        info = {"kind": "interpreter", "python": python}
        command = [python, str(probe_app_path()), "--bundle", str(Path(bundle_dir).resolve()),
                   "--out", str(Path(out_dir).resolve()),
                   *probe_arguments(self.latency_budget, self.calibrate, self.layers, self.tflite),
                 "--integrity", self.integrity]
        # The interpreter's integrity digest table from its last probe: files whose stat is unchanged are not
        # hashed again (targets/integrity_cache.py).
        identity = f"python\0{os.path.realpath(python)}"
        if self.integrity != "off":
            integrity_cache.hand_in(identity, out_dir)
        try:
            # cwd = the capture directory, so files in the user's cwd cannot shadow imports.
            with probe_running():  # Docker probes measuring latency meanwhile see this one
                UNDER_WAY.set()
                child = run_child(command, timeout=timeout, cwd=out_dir)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
            return TargetFailure(spec=self.spec, kind="interpreter-not-found",
                                 message=f"cannot run the interpreter {self.python}: {error.strerror}",
                                 target_info=info)
        finally:
            if self.integrity != "off":
                integrity_cache.take_back(identity, out_dir)
        return read_outcome(out_dir, self.spec, child, target_info=info)
