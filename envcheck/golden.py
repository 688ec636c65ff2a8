"""Golden bundles (schema envcheck.golden/1): write, verify, load.

A bundle is a directory:
    manifest.json     schema, created, envcheck version, description, policy, reference latency, sha256 of every file
    model/            a TensorFlow SavedModel with a serving_default signature
    inputs.npz        the golden input set, keyed by signature input name
    expected.npz      the reference outputs, keyed by signature output name
    fingerprint.json  the reference environment's fingerprint (identifying values hashed)
    model.tflite      (optional, golden create --tflite) the model converted once by the reference's TensorFlow,
    tflite_expected.npz  and its outputs there; the manifest's `tflite` says how it was converted (or why not)
    layers.json       (optional) the reference's layer record: each intermediate tensor's summary, for
                      localising drift (compare/localization.py); the manifest's `layers` summarises it
The manifest's `expected_digests` (per expected output: output_digest) follow expected.npz at every seal: a probe
compares its own outputs' digests with them and records its layers only when one differs (the probe's layers.py).
Every command that reads a bundle verifies it first (the files against their hashes, and a calibration against
its own numbers); any problem names the file. The manifest's format is envcheck/schemas/golden-1.schema.json
(a newer schema is refused with an upgrade message). Every bundle and every change of one is written by
`write_golden`, which keeps what it is not told to change and stores first-match rules in their order.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envcheck import __version__, schemas
from envcheck.capture import NpzError, read_npz
from envcheck.compare.calibration import calibration_problem
from envcheck.compare.policy import build_policy, ordered_table, validate_policy
from envcheck.errors import GoldenError, PolicyError, UsageError
from envcheck.fields import current_fingerprint
from envcheck.files import atomic_write_text, sha256_file
from envcheck.redact import redact_fingerprint

GOLDEN_SCHEMA = "envcheck.golden/1"
MANIFEST_FILE = "manifest.json"
REQUIRED_FILES = ("model/saved_model.pb", "inputs.npz", "expected.npz", "fingerprint.json")
LAYERS_FILE = "layers.json"
TFLITE_FILE = "model.tflite"
TFLITE_EXPECTED_FILE = "tflite_expected.npz"
BUILTIN_PREFIX = "builtin:"
BUILTIN_NAMES = ("default", "edge")
"""The built-in goldens: golden/default, and golden/edge (the edge variant of its model, with model.tflite)."""


@dataclass(frozen=True, slots=True)
class GoldenBundle:
    """A verified bundle, loaded."""

    path: Path
    sha256: str
    """sha256 of manifest.json, which pins every other file: the bundle's identity."""
    manifest: dict[str, Any]
    expected: dict[str, np.ndarray]
    fingerprint: dict[str, Any]
    layers: dict[str, Any] | None = None
    """The reference's layer record (layers.json); None: the golden has none."""
    tflite_expected: dict[str, np.ndarray] | None = None
    """model.tflite's outputs in the reference (tflite_expected.npz); None: the golden has no TFLite model."""

    @property
    def policy(self) -> dict[str, Any]:
        """The policy table the bundle's manifest carries (empty when none)."""
        return self.manifest.get("policy", {})

    @property
    def determinism(self) -> dict[str, Any] | None:
        """Whether the reference target repeated the golden pass bitwise (None: not recorded)."""
        return self.manifest.get("determinism")

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The reference target's calibrated noise and tolerances (None: the golden was not calibrated)."""
        return self.manifest.get("calibration")

    @property
    def reference_image(self) -> dict[str, Any] | None:
        """The image the golden was made in ({ref, id, tags, repo_digests}); None: not made in a Docker target."""
        return self.manifest.get("reference_image")

    @property
    def latency(self) -> dict[str, Any] | None:
        """The reference target's latency and hardware class (None: the golden measured none)."""
        return self.manifest.get("latency")


def reseal(golden: GoldenBundle, **additions: Any) -> GoldenBundle:
    """The bundle with top-level manifest entries added or replaced (its files unchanged) by the one golden
    writer, and verified again: its sha256, the bundle's identity, changes."""
    return load_golden(write_golden(golden.path, additions, keep=golden.manifest))


def builtin_golden_dir(name: str = "default") -> Path:
    """A built-in golden (`default`, or `edge`: the edge variant with model.tflite): packaged beside the code
    when installed, else the repository's golden/NAME."""
    packaged = Path(__file__).parent / "_builtin_golden" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "golden" / name


def resolve_golden_dir(path: str | Path | None) -> Path:
    """The bundle directory to load: the given path, `builtin:NAME` for a built-in golden (builtin:edge), or
    the built-in default golden."""
    if path is None:
        return builtin_golden_dir()
    name = str(path).removeprefix(BUILTIN_PREFIX)
    if name in BUILTIN_NAMES and str(path).startswith(BUILTIN_PREFIX):
        return builtin_golden_dir(name)
    if str(path).startswith(BUILTIN_PREFIX) and not Path(path).exists():
        known = ", ".join(BUILTIN_PREFIX + known for known in BUILTIN_NAMES)
        raise GoldenError(f"{path}: no such built-in golden (the built-in ones: {known})")
    return Path(path)


def load_golden(path: str | Path | None = None) -> GoldenBundle:
    """Verify the bundle at `path` (default: built-in) and load it; GoldenError names any bad file."""
    root = resolve_golden_dir(path)
    if not root.is_dir():
        raise GoldenError(f"{root}: golden bundle not found (no such directory)")
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise GoldenError(f"{manifest_path}: missing (not a golden bundle)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise GoldenError(f"{manifest_path}: unreadable ({error.strerror})") from None
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError is a ValueError)
        raise GoldenError(f"{manifest_path}: not valid JSON ({error})") from None
    _check_manifest(manifest, manifest_path)
    _verify_files(root, manifest["files"])
    expected = _load_npz(root / "expected.npz")
    _load_npz(root / "inputs.npz")
    try:
        fingerprint = json.loads((root / "fingerprint.json").read_text(encoding="utf-8"))
    except OSError as error:
        raise GoldenError(f"{root / 'fingerprint.json'}: unreadable ({error.strerror})") from None
    except (ValueError, RecursionError) as error:
        raise GoldenError(f"{root / 'fingerprint.json'}: not valid JSON ({error})") from None
    if not isinstance(fingerprint, dict):
        raise GoldenError(f"{root / 'fingerprint.json'}: not a JSON object")
    _check_calibration(manifest, expected, manifest_path)
    _check_expected_digests(manifest, expected, manifest_path)
    # A bundle keeps the bytes it was sealed with; an older probe's field names are read as today's.
    return GoldenBundle(path=root, sha256=sha256_file(manifest_path), manifest=manifest, expected=expected,
                        fingerprint=current_fingerprint(fingerprint), layers=_load_layers(root, manifest["files"]),
                        tflite_expected=_load_tflite_expected(root, manifest))


def _load_tflite_expected(root: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """tflite_expected.npz when the golden has a TFLite model: model.tflite, its outputs and a manifest `tflite`
    of status ok come together or not at all."""
    listed = manifest["files"]
    present = {name for name in (TFLITE_FILE, TFLITE_EXPECTED_FILE) if name in listed}
    ok = (manifest.get("tflite") or {}).get("status") == "ok"
    if not present and not ok:
        return None
    if present != {TFLITE_FILE, TFLITE_EXPECTED_FILE} or not ok:
        raise GoldenError(f"{root / MANIFEST_FILE}: {TFLITE_FILE}, {TFLITE_EXPECTED_FILE} and a `tflite` record of "
                          "status ok belong together, and this bundle has only part of them")
    return _load_npz(root / TFLITE_EXPECTED_FILE)


def _load_layers(root: Path, listed: dict[str, str]) -> dict[str, Any] | None:
    """layers.json (already verified against the manifest), or None when the bundle has none."""
    if LAYERS_FILE not in listed:
        return None
    path = root / LAYERS_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise GoldenError(f"{path}: not a readable JSON layer record ({error})") from None
    if not isinstance(record, dict):
        raise GoldenError(f"{path}: not a JSON object")
    return record


def layers_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `layers`: the record's status (and why, when unsupported), tensors, samples and size."""
    summary: dict[str, Any] = {"file": LAYERS_FILE, "status": record.get("status")}
    if record.get("status") == "ok":
        summary.update(tensors=len(record.get("tensors") or []), samples=record.get("samples"), mode=record.get("mode"),
                       unfused_equals_fused=record.get("unfused_equals_fused"))
    else:
        summary["reason"] = record.get("reason")
    return summary


def _check_manifest(manifest: Any, manifest_path: Path) -> None:
    """The manifest against envcheck/schemas/golden-1.schema.json; its policy as strictly as a
    --policy file, but a bad one is the bundle's fault: GoldenError (exit 3), not a usage error."""
    if isinstance(manifest, dict) and manifest.get("schema") == GOLDEN_SCHEMA and "policy" in manifest:
        try:
            validate_policy(manifest["policy"], f"{manifest_path}: $.policy")
        except PolicyError as error:
            raise GoldenError(str(error)) from None
    problem = schemas.check(manifest, GOLDEN_SCHEMA, str(manifest_path))
    if problem:
        raise GoldenError(problem)


def _check_calibration(manifest: dict[str, Any], expected: dict[str, np.ndarray], manifest_path: Path) -> None:
    """A calibration whose tolerances do not follow from its own recorded moves, the golden's outputs and the
    golden's policy (the floor) is refused: an atol written by hand would otherwise pass as measured noise."""
    if "calibration" not in manifest:
        return
    problem = calibration_problem(manifest["calibration"], expected, build_policy(manifest.get("policy") or {}))
    if problem:
        raise GoldenError(f"{manifest_path}: $.calibration: {problem}; forged or stale: calibrate the golden again "
                          "(envcheck golden calibrate)")


def output_digest(array: np.ndarray) -> str | None:
    """sha256 of an output's dtype (numpy's dtype.str), shape and C-order bytes, hashed as `<dtype.str>|<d0,d1,...>|`
    then the bytes; None for an array whose bytes are not its values (object dtype). The probe's layers.py holds
    the same rule (the host never imports the probe; tests/test_expected_digests.py holds the two equal)."""
    if array.dtype.hasobject:
        return None
    digest = hashlib.sha256(f"{array.dtype.str}|{','.join(map(str, array.shape))}|".encode("ascii"))
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def expected_digests(expected: dict[str, np.ndarray]) -> dict[str, str] | None:
    """The manifest's `expected_digests`: output name -> output_digest; None when an output has none."""
    digests = {name: output_digest(array) for name, array in expected.items()}
    return None if None in digests.values() else digests  # type: ignore[return-value]


def _check_expected_digests(manifest: dict[str, Any], expected: dict[str, np.ndarray], manifest_path: Path) -> None:
    """Digests that do not follow expected.npz are refused: a probe that matched them would skip the layer record
    of a target whose outputs differ from the golden's, and its drift would not be localised."""
    if "expected_digests" in manifest and manifest["expected_digests"] != expected_digests(expected):
        raise GoldenError(f"{manifest_path}: $.expected_digests: do not match expected.npz; forged or stale: "
                          "re-seal the golden with envcheck (envcheck golden calibrate)")


def first_symlink(root: Path) -> Path | None:
    """The first symbolic link under `root`, not following any: bundles hold regular files only,
    since a link can point outside the bundle (past its seal) or loop."""
    for directory, folders, files in os.walk(root, followlinks=False):
        for name in sorted(folders + files):
            if (Path(directory) / name).is_symlink():
                return Path(directory) / name
    return None


def _verify_files(root: Path, listed: dict[str, str]) -> None:
    link = first_symlink(root)
    if link is not None:
        raise GoldenError(f"{link}: is a symbolic link; a golden bundle holds regular files only")
    for name in REQUIRED_FILES:
        if name not in listed:
            raise GoldenError(f"{root / name}: required but not listed in {MANIFEST_FILE}")
    for name, digest in sorted(listed.items()):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise GoldenError(f"{root / MANIFEST_FILE}: lists a path outside the bundle: {name!r}")
        path = root / name
        if not path.is_file():
            raise GoldenError(f"{path}: listed in {MANIFEST_FILE} but missing")
        try:
            actual = sha256_file(path)
        except OSError as error:
            raise GoldenError(f"{path}: unreadable ({error.strerror})") from None
        if actual != digest:
            raise GoldenError(f"{path}: sha256 does not match {MANIFEST_FILE} (corrupt or modified)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {MANIFEST_FILE})
    if extra:
        raise GoldenError(f"{root / extra[0]}: not listed in {MANIFEST_FILE} (unexpected file in the bundle)")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except NpzError as error:
        raise GoldenError(f"{path}: {error}") from None


def reference_class(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The class of machine a golden was made on, in the manifest for people to read: another CPU
    class (vendor, AVX-512/AMX or not, oneDNN on or off) computes a few ULP differently."""
    cpu = fingerprint.get("cpu") or {}
    tensorflow = fingerprint.get("tensorflow") or {}
    return {"cpu": cpu.get("model"), "machine": cpu.get("machine"), "tf_flags": list(cpu.get("tf_flags") or []),
            "tensorflow": tensorflow.get("version"), "onednn_enabled": tensorflow.get("onednn_enabled")}


@dataclass(frozen=True, slots=True)
class BundleFiles:
    """What a bundle's files are made of, for a writer that makes them (create, update); a reseal keeps them."""

    model_dir: Path
    inputs_npz: Path
    expected: dict[str, np.ndarray]
    fingerprint: dict[str, Any]
    layers: dict[str, Any] | None = None
    """The layer record (layers.json); None: the bundle has none."""
    tflite_model: Path | None = None
    tflite_expected: dict[str, np.ndarray] | None = None


def write_golden(out: Path, fields: dict[str, Any], *, keep: dict[str, Any] | None = None,
                 files: BundleFiles | None = None, force: bool = False) -> Path:
    """The one golden writer: `golden create`, `golden calibrate`, --envcheck-update-golden and every reseal
    write through here. The manifest is `keep` (the bundle's manifest as it stands; None for a new one) with
    `fields` over it, a field given as None removed; every field neither names is kept as it was. With `files`,
    the bundle's files are made anew in a staging directory beside `out`, swapped in whole (never half-written),
    and the fields that describe them (files, reference, layers, created, envcheck_version) follow them;
    without, the files stay and only the manifest is rewritten, atomically. Severity rules are stored as an
    ordered list of pairs: the manifest's keys are sorted, and first-match rules must keep their order."""
    out = Path(out)
    manifest = {**(keep or {}), **fields}
    if files is None:
        return _seal(out, manifest, _load_npz(out / "expected.npz"), out)
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    staging.chmod(0o755)  # mkdtemp makes it 0700
    try:
        _write_files(staging, files)
        _seal(staging, {**manifest, **_described_files(staging, files)}, files.expected, out)
        if out.exists():
            retired = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _seal(root: Path, manifest: dict[str, Any], expected: dict[str, np.ndarray], named: Path) -> Path:
    """Write the manifest of the bundle at `root` (None fields dropped), atomically, after the checks a load
    makes of it: nothing a load would refuse is written. Problems name the bundle as `named` (not its staging)."""
    # The digests follow expected.npz whatever the writer was told (computed here, never kept from before).
    manifest = {key: value for key, value in {**manifest, "expected_digests": expected_digests(expected)}.items()
                if value is not None}
    if "policy" in manifest:
        manifest["policy"] = ordered_table(manifest["policy"])
    _check_manifest(manifest, named / MANIFEST_FILE)
    _check_calibration(manifest, expected, named / MANIFEST_FILE)
    atomic_write_text(root / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True))
    return root


def _write_files(staging: Path, files: BundleFiles) -> None:
    shutil.copytree(files.model_dir, staging / "model")
    shutil.copyfile(files.inputs_npz, staging / "inputs.npz")
    np.savez(staging / "expected.npz", **files.expected)  # type: ignore[arg-type]  # (numpy's stub)
    (staging / "fingerprint.json").write_text(
        json.dumps(redact_fingerprint(files.fingerprint), indent=1, sort_keys=True), encoding="utf-8")
    if files.tflite_model is not None and files.tflite_expected is not None:
        shutil.copyfile(files.tflite_model, staging / TFLITE_FILE)
        np.savez(staging / TFLITE_EXPECTED_FILE, **files.tflite_expected)  # type: ignore[arg-type]
    if files.layers is not None:  # compact: about 0.7 KB per tensor
        (staging / LAYERS_FILE).write_text(json.dumps(files.layers, sort_keys=True, separators=(",", ":")),
                                           encoding="utf-8")


def _described_files(staging: Path, files: BundleFiles) -> dict[str, Any]:
    """The manifest fields that follow a bundle's files: their hashes, the reference machine, the layer summary."""
    return {"schema": GOLDEN_SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "envcheck_version": __version__, "reference": reference_class(files.fingerprint),
            "files": {p.relative_to(staging).as_posix(): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()},
            "layers": layers_summary(files.layers) if files.layers is not None else None}
