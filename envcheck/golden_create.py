"""`envcheck golden create`: run a model in a reference target and save what it computed as a bundle.

TensorFlow work happens in child processes only (the model builder, the probe), so a crash there is
an error message, and the host tool itself never imports TensorFlow.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from envcheck.errors import GoldenError, UsageError
from envcheck.golden import write_bundle
from envcheck.model import TargetFailure
from envcheck.runner import run_target
from envcheck.targets.base import PROBE_DIR, PROBE_FILE, Target
from envcheck.targets.process import run_child

BUILDER_FILE = PROBE_DIR / "builtin_model.py"
GENERATED_INPUT_BATCH = 16
DEFAULT_POLICY = {"tolerance": {"atol": 1e-5, "rtol": 1e-5}}
BUILTIN_POLICY = {"tolerance": {"atol": 1e-5, "rtol": 1e-5, "outputs": {"class_probs": {"classification": True}}}}
BUILTIN_DESCRIPTION = ("envcheck built-in golden: conv + batch norm + depthwise conv + GELU/tanh + attention + GRU, "
                       "two heads (class_probs, embedding); 24 seeded rows + 4 edge rows (zeros, ±1e3, 1e-30, σ=50)")
CHILD_TIMEOUT_S = 600.0


def create_golden(*, out: Path, target: Target, builtin: bool, model: Path | None, inputs: Path | None,
                  description: str, force: bool, timeout: float) -> Path:
    if Path(out).exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="envcheck-golden-") as work:
        staging = Path(work) / "bundle"
        staging.mkdir()
        if builtin:
            _run_tf_child([str(BUILDER_FILE), "--out-model", str(staging / "model"),
                           "--out-inputs", str(staging / "inputs.npz")], "building the built-in model")
        else:
            _stage_model(model, inputs, staging)
        outcome = run_target(target, staging, timeout)
        if isinstance(outcome, TargetFailure):
            raise GoldenError(f"the reference target {target.spec} could not run the model: {outcome.message}")
        return write_bundle(out, model_dir=staging / "model", inputs_npz=staging / "inputs.npz",
                            expected=outcome.outputs, fingerprint=outcome.fingerprint,
                            description=description or (BUILTIN_DESCRIPTION if builtin else ""),
                            policy=BUILTIN_POLICY if builtin else DEFAULT_POLICY, force=force)


def _stage_model(model: Path | None, inputs: Path | None, staging: Path) -> None:
    if model is None or not (Path(model) / "saved_model.pb").is_file():
        raise UsageError(f"{model}: not a SavedModel directory (no saved_model.pb)")
    shutil.copytree(model, staging / "model")
    if inputs is not None:
        if not Path(inputs).is_file():
            raise UsageError(f"{inputs}: inputs file not found")
        shutil.copyfile(inputs, staging / "inputs.npz")
    else:
        _run_tf_child([str(PROBE_FILE), "--bundle", str(staging), "--out", str(staging),
                       "--make-inputs", str(GENERATED_INPUT_BATCH)], "generating inputs from the signature")


def _run_tf_child(arguments: list[str], doing: str) -> None:
    """Run a TensorFlow script with this interpreter; its failure is a one-line error."""
    child = run_child([sys.executable, *arguments], timeout=CHILD_TIMEOUT_S)
    if child.timed_out or child.returncode != 0:
        lines = [line for line in child.stderr_tail.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {child.returncode}"
        if "No module named 'tensorflow'" in child.stderr_tail or "No module named 'keras'" in child.stderr_tail:
            last = f"TensorFlow is not installed in {sys.executable} (pip install 'envcheck[tf]')"
        raise GoldenError(f"{doing} failed: {last}")
