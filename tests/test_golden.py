"""Golden bundles: the built-in one verifies; every kind of corruption is exit 3 naming the file."""
from __future__ import annotations

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
    (bundle / "expected.npz").write_bytes(b"not a zip archive")
    _rewrite_manifest(bundle, lambda m: m["files"].update({"expected.npz": sha256_file(bundle / "expected.npz")}))


CORRUPTIONS = [
    pytest.param(lambda b: (b / "manifest.json").unlink(), "manifest.json", "missing", id="no-manifest"),
    pytest.param(lambda b: (b / "manifest.json").write_text("{not json"), "manifest.json", "not valid JSON",
                 id="manifest-not-json"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m.update(schema="envcheck.golden/99")), "manifest.json",
                 "schema", id="wrong-schema"),
    pytest.param(lambda b: (b / "inputs.npz").unlink(), "inputs.npz", "missing", id="missing-file"),
    pytest.param(lambda b: (b / "model" / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 64),
                 "variables.data-00000-of-00001", "sha256", id="corrupt-variables"),
    pytest.param(lambda b: (b / "fingerprint.json").write_text("{}"), "fingerprint.json", "sha256",
                 id="edited-fingerprint"),
    pytest.param(lambda b: (b / "notes.txt").write_text("hello"), "notes.txt", "not listed", id="extra-file"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["files"].pop("expected.npz")), "expected.npz",
                 "required", id="unlisted-required"),
    pytest.param(lambda b: _rewrite_manifest(b, lambda m: m["files"].update({"../x": "0"})), "manifest.json",
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
