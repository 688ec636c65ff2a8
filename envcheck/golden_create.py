"""`envcheck golden create`, `golden calibrate` and --envcheck-update-golden: run a model in a reference target
and save what it computed as a bundle, measure its noise, or measure it again (each written by golden.write_golden).

TensorFlow work happens in child processes only (the model builder, the probe), so a crash there is
an error message, and the host tool itself never imports TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from envcheck.compare.calibration import calibrate
from envcheck.compare.determinism import reference_determinism
from envcheck.compare.latency import reference_latency
from envcheck.compare.outputs import compare_output
from envcheck.compare.policy import build_policy
from envcheck.destinations import check_folder_destination, refuse_dangling_link
from envcheck.errors import GoldenError, UsageError
from envcheck.golden import (
    MANIFEST_FILE,
    TFLITE_FILE,
    BundleFiles,
    GoldenBundle,
    first_symlink,
    load_golden,
    reseal,
    write_golden,
)
from envcheck.model import Capture, TargetFailure, Tolerance
from envcheck.runner import run_probe_into, run_target
from envcheck.targets.base import PROBE_DIR, Target
from envcheck.targets.probe_app import DEFAULT_BATCH_SIZE, probe_app_path
from envcheck.targets.process import run_child

BUILDER_FILE = PROBE_DIR / "builtin_model.py"
GENERATED_INPUT_BATCH = 16
DEFAULT_POLICY = {"tolerance": {"atol": 1e-5, "rtol": 1e-5}}
BUILTIN_POLICY = {"tolerance": {"atol": 1e-5, "rtol": 1e-5, "outputs": {"class_probs": {"classification": True}}}}
BUILTIN_DESCRIPTION = ("envcheck built-in golden: conv + batch norm + depthwise conv + GELU/tanh + attention + GRU, "
                       "two heads (class_probs, embedding); 24 seeded rows + 4 edge rows (zeros, ±1e3, 1e-30, σ=50)")
EDGE_DESCRIPTION = ("envcheck built-in edge golden: conv + batch norm + depthwise conv + GELU/tanh, two heads "
                    "(class_probs, embedding), with model.tflite; 24 seeded images + 4 edge images (zeros, 1e3, 1e-30, "
                    "σ=50)")
CHILD_TIMEOUT_S = 600.0
CALIBRATION_RUNS = 6
"""Processes a calibrated reference run may start, an upper bound of its time: the probe and its child probes
(calibrate.py: four on x86, which run side by side where there are cores)."""


def create_golden(*, out: Path, target: Target, builtin: bool, model: Path | None, inputs: Path | None,
                  description: str, force: bool, timeout: float, allow_nonfinite: bool = False,
                  calibrated: bool = True, samples: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, layers: bool = True, tflite: bool = False,
                  edge: bool = False, policy: dict[str, Any] | None = None) -> Path:
    """Run the model in `target` and write a golden bundle to `out`; returns its path. `calibrated`: measure
    the reference's noise under benign perturbations too (compare/calibration.py); `samples`: generate that
    many seeded inputs from the signature (the built-in model's own rows otherwise); `batch_size`: samples per
    call, for this run and every probe of the golden; `layers`: record every layer's summary (layers.json), from
    which checks localise drift; `tflite`: convert the model to TFLite in the reference target and keep
    model.tflite with its outputs there (a model that does not convert is recorded as unsupported); `edge`: with
    `builtin`, the built-in model's edge variant (it converts); `policy`: the golden's policy (default: the
    built-in golden's or the default one), the floor of its calibration."""
    check_destination(Path(out), force)
    with tempfile.TemporaryDirectory(prefix="envcheck-golden-") as work:
        staging = Path(work) / "bundle"
        staging.mkdir()
        if builtin:
            _run_tf_child([str(BUILDER_FILE), "--out-model", str(staging / "model"),
                           "--out-inputs", str(staging / "inputs.npz"), *(["--edge"] if edge else [])],
                          "building the built-in model")
            if samples is not None:
                _generate_inputs(staging, samples)
        else:
            _stage_model(model, inputs, staging, samples)
        check_inputs(staging / "inputs.npz", allow_nonfinite)
        # The reference probe reads its batch size where every probe does: the bundle's manifest.
        (staging / MANIFEST_FILE).write_text(json.dumps({"batch_size": batch_size}))
        probed = Path(work) / "capture"
        outcome = _reference_run(dataclasses.replace(target, layers=layers, tflite=tflite),  # type: ignore[type-var]
                                 staging, timeout, calibrated, probed)
        if policy is None:
            policy = BUILTIN_POLICY if builtin else DEFAULT_POLICY
        edge_model = _edge_model(outcome, probed) if tflite else {}
        files = BundleFiles(model_dir=staging / "model", inputs_npz=staging / "inputs.npz", expected=outcome.outputs,
                            fingerprint=outcome.fingerprint, layers=outcome.layers,
                            tflite_model=edge_model.get("tflite_model"),
                            tflite_expected=edge_model.get("tflite_expected"))
        fields = {"description": description or _builtin_description(builtin, edge), "policy": policy,
                  "batch_size": batch_size, **measured_fields(outcome, policy), "tflite": edge_model.get("tflite")}
        return write_golden(out, fields, files=files, force=force)


def measured_fields(outcome: Capture, policy: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields a reference run measures (None: it measured none), beside its files."""
    return {"latency": reference_latency(outcome.latency, outcome.fingerprint) or None,
            "determinism": reference_determinism(outcome.determinism) or None,
            "calibration": _calibration(outcome, policy),
            "reference_image": reference_image(outcome.target_info)}


def calibrate_golden(path: Path, target: Target, timeout: float) -> tuple[GoldenBundle, float | None]:
    """`golden calibrate`: measure an existing bundle's noise in `target` and re-seal its manifest with it.
    Also returns how far the calibrating run's own outputs were from the golden's (None: bitwise equal),
    since noise measured in another environment than the golden's says less about it."""
    golden = load_golden(path)
    check_folder_destination(golden.path, f"the re-sealed manifest to {golden.path}")  # before minutes of probing
    # Its latency would not be stored: measure none.
    outcome = _reference_run(dataclasses.replace(target, latency_budget=0.0, layers=False),  # type: ignore[type-var]
                             golden.path, timeout, calibrated=True)
    if outcome.edge or not outcome.calibration:
        raise GoldenError(f"{target.spec} has no TensorFlow to calibrate the golden's SavedModel with; calibrate in "
                          "the reference target the golden was made in")
    moved = [compare_output(name, expected, outcome.outputs[name], Tolerance()) for name, expected in golden.expected.items()
             if name in outcome.outputs]
    apart = [m.max_abs for m in moved if m.status != "identical" and m.max_abs is not None]
    return reseal(golden, calibration=_calibration(outcome, golden.policy)), max(apart) if apart else None


KEPT_WHERE_PRESENT = ("determinism", "calibration", "layers", "tflite")
"""Records an update measures again only where the golden has them: it never adds one (docs/pytest.md)."""


def update_golden(golden_dir: Path, target: Target, timeout: float) -> tuple[GoldenBundle, GoldenBundle]:
    """--envcheck-update-golden: run the golden's own model and inputs in its reference `target` (in the golden's
    batch size) and rewrite through the one writer its expected outputs, fingerprint, latency and reference image,
    and the determinism, calibration (over the golden's own policy), layer record and TFLite model it already
    has; every other field (description, policy, ...) stays. Returns the golden before and after."""
    old = load_golden(golden_dir)
    if old.reference_image and not target.spec.startswith("docker:"):
        raise UsageError(f"{old.path} was made in the image {old.reference_image['ref']}: rebuild it there "
                         f"(docker:{old.reference_image['ref']}), not in {target.spec}")
    batch_size = old.manifest.get("batch_size", DEFAULT_BATCH_SIZE)
    with tempfile.TemporaryDirectory(prefix="envcheck-update-golden-") as work:
        fresh = load_golden(create_golden(
            out=Path(work) / "bundle", target=target, builtin=False, model=old.path / "model",
            inputs=old.path / "inputs.npz", description="", force=False, timeout=timeout, batch_size=batch_size,
            calibrated="calibration" in old.manifest, layers="layers" in old.manifest,
            tflite="tflite" in old.manifest, policy=old.policy))
        fields = {"latency": fresh.latency, "reference_image": fresh.reference_image,
                  **{key: fresh.manifest.get(key) if key in old.manifest else None for key in KEPT_WHERE_PRESENT}}
        files = BundleFiles(model_dir=fresh.path / "model", inputs_npz=fresh.path / "inputs.npz",
                            expected=fresh.expected, fingerprint=fresh.fingerprint, layers=fresh.layers,
                            tflite_model=fresh.path / TFLITE_FILE if fresh.tflite_expected is not None else None,
                            tflite_expected=fresh.tflite_expected)
        write_golden(old.path, {**fields, "batch_size": batch_size}, keep=old.manifest, files=files, force=True)
    return old, load_golden(old.path)


def reference_image(target_info: dict) -> dict | None:
    """The manifest's `reference_image` from a Docker reference target's facts; None for any other target."""
    image = target_info.get("image") if target_info.get("kind") == "docker" else None
    if not isinstance(image, dict) or not image.get("id"):
        return None
    return {"ref": target_info.get("image_ref") or image["id"], "id": image["id"], "tags": list(image.get("tags") or []),
            "repo_digests": list(image.get("repo_digests") or [])}


def _builtin_description(builtin: bool, edge: bool) -> str:
    if not builtin:
        return ""
    return EDGE_DESCRIPTION if edge else BUILTIN_DESCRIPTION


def _edge_model(outcome: Capture, probed: Path) -> dict:
    """The TFLite parts of a bundle from a reference run with --tflite: the manifest's record (how it was
    converted and run, or why it does not convert), and when it converted the file and its outputs."""
    record = outcome.tflite or {}
    conversion = record.get("conversion") or {"status": "unsupported", "reason": "the reference probe did not convert"}
    if conversion.get("status") == "ok" and record.get("error"):
        conversion = {**conversion, "status": "unsupported",
                      "reason": f"it converts but does not run here: {record['error'].get('message')}"}
    if conversion.get("status") != "ok" or outcome.tflite_outputs is None:
        return {"tflite": conversion}
    summary = {**conversion, "runtime": record.get("runtime"), "version": record.get("version"),
               "op_resolver": record.get("op_resolver")}
    return {"tflite": summary, "tflite_model": probed / TFLITE_FILE, "tflite_expected": outcome.tflite_outputs}


def _reference_run(target: Target, bundle_dir: Path, timeout: float, calibrated: bool,
                   out_dir: Path | None = None) -> Capture:
    """The reference probe (its capture left in `out_dir` when given); calibrating, it runs the model in up to
    CALIBRATION_RUNS processes, each of which --timeout bounds as it bounds one probe."""
    if calibrated:
        target = dataclasses.replace(target, calibrate=True)  # type: ignore[type-var]
        timeout *= CALIBRATION_RUNS
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        outcome = run_probe_into(target, bundle_dir, out_dir, timeout)
    else:
        outcome = run_target(target, bundle_dir, timeout)
    if isinstance(outcome, TargetFailure):
        raise GoldenError(f"the reference target {target.spec} could not run the model: {outcome.message}")
    return outcome


def _calibration(outcome: Capture, policy: dict) -> dict | None:
    """The manifest's calibration from the reference run, its floor the golden's policy (None: not calibrated)."""
    return calibrate(outcome.calibration, outcome.outputs, build_policy(policy)) if outcome.calibration else None


def check_destination(out: Path, force: bool) -> None:
    """--force replaces a golden bundle, nothing else: never a source folder, the cwd or a parent of it."""
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents:
        raise UsageError(f"--out {out}: is the current directory or one of its parents; name a new directory")
    refuse_dangling_link(out, f"the golden bundle {out}")
    check_folder_destination(out.resolve().parent, f"the golden bundle {out}")
    if not out.exists():
        return
    if not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    if out.is_symlink() or not out.is_dir() or not (out / MANIFEST_FILE).is_file():
        raise UsageError(f"--force replaces only a golden bundle, and {out} is not one (no {MANIFEST_FILE}); "
                         "remove it yourself if you mean it")


def check_inputs(path: Path, allow_nonfinite: bool) -> None:
    """A golden that cannot lie: no empty input set, no NaN/Inf unless asked for, nothing pickled."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path.name}: not a readable .npz of arrays ({_first_line(error)})") from None
    if not arrays:
        raise UsageError(f"{path.name}: holds no arrays")
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape[0] == 0:
            raise UsageError(f"input {name!r} has no rows (shape {array.shape}): every check would be vacuous")
        if array.dtype.kind in "fc" and not allow_nonfinite and not np.all(np.isfinite(array)):
            count = int(np.sum(~np.isfinite(array)))
            raise UsageError(f"input {name!r} holds {count} NaN/Inf value(s); pass --allow-nonfinite if that is "
                             "what the golden should test")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _refuse_symlinks(root: Path) -> None:
    link = first_symlink(root)
    if link is not None:
        raise UsageError(f"{link}: is a symbolic link; a golden bundle holds regular files only "
                         "(copy the model without links)")


def _stage_model(model: Path | None, inputs: Path | None, staging: Path, samples: int | None) -> None:
    if model is None or not (Path(model) / "saved_model.pb").is_file():
        raise UsageError(f"{model}: not a SavedModel directory (no saved_model.pb)")
    _refuse_symlinks(Path(model))
    shutil.copytree(model, staging / "model")
    if inputs is not None:
        if not Path(inputs).is_file():
            raise UsageError(f"{inputs}: inputs file not found")
        shutil.copyfile(inputs, staging / "inputs.npz")
    else:
        _generate_inputs(staging, samples or GENERATED_INPUT_BATCH)


def _generate_inputs(staging: Path, samples: int) -> None:
    _run_tf_child([str(probe_app_path()), "--bundle", str(staging), "--out", str(staging),
                   "--make-inputs", str(samples)], "generating inputs from the signature")


def _run_tf_child(arguments: list[str], doing: str) -> None:
    """Run a TensorFlow script with this interpreter; its failure is a one-line error."""
    child = run_child([sys.executable, *arguments], timeout=CHILD_TIMEOUT_S)
    if child.timed_out or child.returncode != 0:
        lines = [line for line in child.stderr_tail.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {child.returncode}"
        if "No module named 'tensorflow'" in child.stderr_tail or "No module named 'keras'" in child.stderr_tail:
            last = f"TensorFlow is not installed in {sys.executable} (pip install 'envcheck[tf]')"
        raise GoldenError(f"{doing} failed: {last}")
