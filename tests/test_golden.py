"""Golden bundles: the built-in one verifies; every kind of corruption is exit 3 naming the file."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from envcheck.errors import ExitCode, GoldenError
from envcheck.files import sha256_file
from envcheck.golden import GOLDEN_SCHEMA, builtin_golden_dir, load_golden


def _rewrite_manifest(bundle: Path, change) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _garbage_npz_with_matching_digest(bundle: Path) -> None:
    _replace_listed(bundle, "expected.npz", b"not a zip archive")


def _relist(bundle: Path, name: str) -> None:
    """Record a tampered file's new digest, as someone editing a bundle by hand would."""
    _rewrite_manifest(bundle, lambda m: m["files"].update({name: sha256_file(bundle / name)}))


def _replace_listed(bundle: Path, name: str, content: bytes) -> None:
    (bundle / name).write_bytes(content)
    _relist(bundle, name)


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["expected.npz", "inputs.npz"])
@pytest.mark.parametrize("content, says", [
    pytest.param(b"", "empty or truncated", id="empty"),
    pytest.param(_npz_bytes(a=np.arange(100))[:150], "not a readable .npz archive", id="truncated"),
    pytest.param(_npz_bytes(a=np.array([{"x": 1}], dtype=object)), "object array", id="object-array"),
    pytest.param(b"\x80\x04K\x01.", "unpickle", id="pickle"),
])
def test_damaged_npz_in_a_relisted_bundle_names_the_file(golden_copy, name, content, says):
    _replace_listed(golden_copy, name, content)
    with pytest.raises(GoldenError) as caught:
        load_golden(golden_copy)
    assert str(caught.value).startswith(str(golden_copy / name)) and says in str(caught.value)


def test_bad_manifest_policy_exits_3_naming_the_manifest(golden_copy, run_cli):
    _rewrite_manifest(golden_copy, lambda m: m["policy"].update(tolerance={"atol": -1}))
    code, _, err, _ = run_cli("golden", "verify", str(golden_copy))
    assert code == ExitCode.UNDECIDED and "manifest.json" in err and "non-negative" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


CORRUPTIONS = [
    pytest.param(lambda b: (b / "manifest.json").unlink(), "manifest.json", "missing", id="no-manifest"),
    pytest.param(lambda b: (b / "manifest.json").write_text("{not json"), "manifest.json", "not valid JSON",
                 id="manifest-not-json"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(schema="envcheck.golden/99")), "manifest.json",
                 "written by a newer envcheck (schema envcheck.golden/99; this envcheck reads envcheck.golden/1): "
                 "upgrade envcheck", id="newer-schema"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(schema="acme.bundle/1")), "manifest.json",
                 "expected 'envcheck.golden/1'", id="foreign-schema"),
    pytest.param(lambda b: (b / "manifest.json").write_text("[1, 2]"), "manifest.json", "not a JSON object",
                 id="manifest-not-object"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(polcy={})), "manifest.json",
                 "$.polcy: unknown key; did you mean 'policy'?", id="unknown-top-level-key"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(files=["inputs.npz"])), "manifest.json",
                 "$.files: must be an object, got an array", id="files-not-object"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["files"].update({"inputs.npz": "md5:abc"})),
                 "manifest.json", "$.files['inputs.npz']", id="digest-not-sha256"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.pop("created")), "manifest.json",
                 "$.created: required but missing", id="no-created"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(policy={"tolerence": {"atol": 1e-3}})),
                 "manifest.json", "`[tolerence]`: did you mean `[tolerance]`?", id="policy-typo"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["policy"]["tolerance"]["outputs"]["class_probs"].update(
        classification="false")), "manifest.json", 'classification` must be true or false, got "false"',
        id="policy-classification-string"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["policy"].update(severity={"env.X": "loud"})),
                 "manifest.json", "expected one of", id="policy-unknown-severity"),
    pytest.param(lambda b: _replace_listed(b, "fingerprint.json", b"[]"), "fingerprint.json", "not a JSON object",
                 id="fingerprint-not-object"),
    pytest.param(lambda b: (b / "inputs.npz").unlink(), "inputs.npz", "missing", id="missing-file"),
    pytest.param(lambda b: (b / "model" / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64),
                 "variables.data-00000-of-00001", "sha256", id="corrupt-variables"),
    pytest.param(lambda b: (b / "fingerprint.json").write_text("{}"), "fingerprint.json", "sha256",
                 id="edited-fingerprint"),
    pytest.param(lambda b: (b / "notes.txt").write_text("hello"), "notes.txt", "not listed", id="extra-file"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["files"].pop("expected.npz")), "expected.npz",
                 "required", id="unlisted-required"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["files"].update({"../x": "0" * 64})), "manifest.json",
                 "outside the bundle", id="path-traversal"),
    pytest.param(_garbage_npz_with_matching_digest, "expected.npz", "npz", id="unreadable-npz"),
]


def test_builtin_golden_verifies_and_is_small():
    golden = load_golden()
    assert golden.manifest["schema"] == GOLDEN_SCHEMA
    assert set(golden.expected) == {"class_probs", "embedding"}
    assert golden.expected["class_probs"].dtype == np.float32
    total = sum(p.stat().st_size for p in builtin_golden_dir().rglob("*") if p.is_file())
    assert total < 1_000_000


def test_the_builtin_edge_golden_verifies_with_its_tflite_model():
    golden = load_golden("builtin:edge")
    assert golden.path == builtin_golden_dir("edge")
    assert golden.manifest["tflite"]["status"] == "ok" and golden.manifest["tflite"]["schema_version"] == 3
    assert golden.tflite_expected is not None and set(golden.tflite_expected) == set(golden.expected)
    assert golden.layers is not None and golden.layers["status"] == "ok"
    assert sum(p.stat().st_size for p in golden.path.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.parametrize("corrupt, names, says", CORRUPTIONS)
def test_corrupt_bundle_is_rejected_naming_the_file(golden_copy, corrupt, names, says):
    corrupt(golden_copy)
    with pytest.raises(GoldenError) as caught:
        load_golden(golden_copy)
    assert names in str(caught.value)
    assert says in str(caught.value)


@pytest.mark.parametrize("command", [["golden", "verify"], ["check", "--golden"]], ids=["verify", "check"])
def test_corrupt_bundle_exits_3_with_one_line(golden_copy, run_cli, command):
    (golden_copy / "inputs.npz").write_bytes(b"tampered")
    code, out, err, _ = run_cli(*command, str(golden_copy))
    assert code == ExitCode.UNDECIDED
    assert "inputs.npz" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_bundle_directory(tmp_path, run_cli):
    code, _, err, _ = run_cli("golden", "verify", str(tmp_path / "nowhere"))
    assert code == ExitCode.UNDECIDED and "not found" in err


def test_golden_create_help_names_the_default_batch_size(capsys):
    from envcheck.cli import main
    from envcheck.targets.probe_app import DEFAULT_BATCH_SIZE

    with pytest.raises(SystemExit):
        main(["golden", "create", "--help"])
    assert f"(default {DEFAULT_BATCH_SIZE};" in " ".join(capsys.readouterr().out.split())


def test_a_bundle_with_half_a_tflite_model_is_refused(tmp_path):
    import shutil
    bundle = tmp_path / "edge"
    shutil.copytree(builtin_golden_dir("edge"), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "tflite_expected.npz").unlink()
    del manifest["files"]["tflite_expected.npz"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError) as caught:
        load_golden(bundle)
    assert "belong together" in str(caught.value)
