"""The policy that applied is visible in every report, and a golden cannot switch the gate off unseen."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from envcheck.compare.policy import build_policy
from envcheck.compare.policy_record import loosenings, policy_record
from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir, load_golden

GATE_OFF = {"severity": {"*": "ignore"}, "tolerance": {"atol": 1e6, "rtol": 1e6}}


def test_a_policy_that_switches_the_gate_off_is_named_in_words():
    found = loosenings(GATE_OFF)
    assert any("atol = 1e+06 is above 0.001" in w for w in found)
    assert any('"*" = "ignore" lowers fail-level checks (tensorflow.version' in w for w in found)
    assert loosenings({"severity": {"env.TF_ENABLE_ONEDNN_OPTS": "fail", "packages.requests": "ignore"}}) == []
    assert loosenings({"tolerance": {"outputs": {"embedding": {"atol": 1e-2}}}}) == [
        "[tolerance.outputs.embedding] atol = 0.01 is above 0.001: it accepts drift far beyond float32 noise (~1e-6)"]
    assert loosenings({"acceptance": {"min_consistency": 0.999, "min_top1_agreement": 1.0}}) == [
        "[acceptance] min_consistency = 0.999 is below 1: an output that drifts beyond its tolerance on up to "
        "0.10% of samples is a WARN, not a FAIL"]


def test_the_record_names_each_layer_and_hashes_the_effective_policy():
    layers = [("golden manifest", GATE_OFF), ("site.toml", {"tolerance": {"atol": 1e-5}})]
    record = policy_record(layers, build_policy(*(t for _, t in layers)), "golden manifest")
    assert [layer["source"] for layer in record["layers"]] == ["defaults", "golden manifest", "site.toml"]
    assert record["effective"]["tolerance"]["atol"] == 1e-5 and record["effective"]["tolerance"]["rtol"] == 1e6
    assert record["effective"]["severity"] == [["*", "ignore"]]
    assert len(record["sha256"]) == 64 and record["warnings"]
    same = policy_record(layers, build_policy(*(t for _, t in layers)), "golden manifest")
    assert same["sha256"] == record["sha256"]


@pytest.fixture
def loosened_golden(tmp_path):
    """The built-in golden with a manifest policy that ignores everything (and no calibration layer over
    it); it still verifies."""
    bundle = tmp_path / "golden"
    shutil.copytree(builtin_golden_dir(), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["policy"] = GATE_OFF
    manifest.pop("calibration", None)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _capture_of(golden_dir, directory):
    """A capture whose outputs drift far beyond float32 noise, made against `golden_dir`."""
    golden = load_golden(golden_dir)
    directory.mkdir()
    np.savez(directory / "outputs.npz", **{k: v * np.float32(1.5) for k, v in golden.expected.items()})
    document = {"schema": "envcheck.capture/1", "probe_version": "1", "started": "2026-11-29T08:00:00Z",
                "status": "ok", "stage": "run-model", "fingerprint": golden.fingerprint, "timings": {},
                "outputs": {}, "error": None, "target": {"spec": "host", "site": "x", "info": {}},
                "golden_sha256": golden.sha256}
    (directory / "capture.json").write_text(json.dumps(document))
    return directory


def test_verify_and_compare_say_what_the_golden_loosens(run_cli, loosened_golden, tmp_path):
    code, out, err, _ = run_cli("golden", "verify", str(loosened_golden))
    assert code == ExitCode.OK and "warning: the golden's own policy loosens the defaults" in err
    code, out, err, report = run_cli("compare", str(_capture_of(loosened_golden, tmp_path / "c")),
                                     "--golden", str(loosened_golden))
    assert "loosens the defaults" in err
    assert report["policy"]["warnings"] and report["policy"]["effective"]["severity"] == [["*", "ignore"]]
    assert [layer["source"] for layer in report["policy"]["layers"]] == ["defaults", "golden manifest"]
    assert report["exit_code"] == code


def test_ci_pins_the_golden_it_trusts(run_cli, loosened_golden, tmp_path):
    capture = _capture_of(loosened_golden, tmp_path / "c")
    trusted = load_golden().sha256
    code, _, err, report = run_cli("compare", str(capture), "--golden", str(loosened_golden),
                                   "--golden-sha256", trusted[:16])
    assert code == ExitCode.UNDECIDED and "--golden-sha256 pins" in err and report is None
    pinned = load_golden(loosened_golden).sha256
    code, *_ = run_cli("compare", str(capture), "--golden", str(loosened_golden), "--golden-sha256", pinned)
    assert code == ExitCode.OK  # the pinned bundle is used: its (visible) policy decides
