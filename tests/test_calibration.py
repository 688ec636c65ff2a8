"""Calibrated tolerances: the noise of the reference target's own benign perturbations, measured when a
golden is created (real TensorFlow, the real built-in SavedModel), and what a check does with it."""
from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envcheck.check import layered_policy
from envcheck.compare.calibration import K, calibrate, calibrated_layer
from envcheck.compare.policy import build_policy
from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir, load_golden
from envcheck.model import Tolerance
from envcheck.targets.probe_app import probe_app_path
from helpers import make_golden_here

X86 = platform.machine() in ("x86_64", "AMD64")
PERTURBATIONS = {"repeat", "per-sample", "fresh-process", "intra-op-threads-1", "remapper-off"} | (
    {"onednn-off", "isa-cap"} if X86 else set())

# ------------------------------------------------------------------------------ the arithmetic

GOLDEN = {"e": np.array([[0.5, -2.0], [1.0, 0.25]], np.float32), "n": np.array([3, 4], np.int64)}


def _record(**moved: dict) -> dict:
    return {"perturbations": {name: {"description": name, "outputs": outputs} for name, outputs in moved.items()}}


def test_noise_is_the_largest_move_and_the_tolerance_k_times_it_in_band_units():
    big = GOLDEN["e"].copy()
    big[0, 1] += np.float32(1e-3)  # far above the 1e-5 floor: the calibrated band widens
    small = np.nextafter(GOLDEN["e"], np.float32(np.inf))
    found = calibrate(_record(repeat={"e": GOLDEN["e"].copy(), "n": GOLDEN["n"]}, **{"onednn-off": {"e": big},
                                                                                        "per-sample": {"e": small}}),
                      GOLDEN, build_policy({}))
    e = found["outputs"]["e"]
    assert e["noise"] == pytest.approx(1e-3, rel=1e-3) and e["scale"] == 2.0
    assert e["atol"] == pytest.approx(K * e["noise"] / 2.0) and e["rtol"] == 1e-5
    assert found["perturbations"]["per-sample"]["outputs"]["e"]["max_ulp"] == 1
    assert found["deterministic"] is True and found["k"] == K


def test_a_quiet_reference_keeps_the_policy_floor_and_one_ulp_of_noise():
    floor = build_policy({"tolerance": {"atol": 1e-4}})
    found = calibrate(_record(repeat=dict(GOLDEN), **{"fresh-process": dict(GOLDEN)}), GOLDEN, floor)
    assert found["outputs"]["e"]["noise"] == float(np.spacing(np.float32(2.0)))
    assert found["outputs"]["e"]["atol"] == 1e-4  # the floor: K × one ULP is below it
    assert calibrated_layer(found, floor) == {}  # nothing wider than the floor: no layer to apply or warn about
    zeros = calibrate(_record(repeat={"z": np.zeros(3, np.float32)}), {"z": np.zeros(3, np.float32)}, floor)
    assert zeros["outputs"]["z"]["noise"] == float(np.spacing(np.float32(1.0)))  # not the smallest subnormal


def test_a_repeat_that_moved_makes_the_reference_nondeterministic_and_skips_are_kept():
    moved = GOLDEN["e"].copy()
    moved[1, 1] = np.float32(0.2500001)
    record = _record(**{"fresh-process": {"e": moved, "n": GOLDEN["n"]}})
    record["perturbations"]["isa-cap"] = {"description": "isa", "skipped": "the child probe failed (status 1)"}
    found = calibrate(record, GOLDEN, build_policy({}))
    assert found["deterministic"] is False
    assert found["perturbations"]["isa-cap"] == {"description": "isa", "skipped": "the child probe failed (status 1)"}


# ------------------------------------------------------------------------ real golden, real checks

@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
def test_a_golden_made_here_carries_every_perturbation_and_a_check_here_is_identical_in_noise_units(
        run_cli, host_golden):
    calibration = json.loads((host_golden / "manifest.json").read_text())["calibration"]
    assert set(calibration["perturbations"]) == PERTURBATIONS
    for name, entry in calibration["perturbations"].items():
        assert "skipped" not in entry, (name, entry)
        assert set(entry["outputs"]) == {"class_probs", "embedding"}
    assert calibration["deterministic"] is True  # on a CPU: repeats are bitwise identical
    # What create recorded is what load recomputes from the recorded moves (else the golden would not load).
    assert load_golden(host_golden).calibration == calibration
    # (No latency: on a busy machine it warns, and this test is about the outputs.)
    code, _, _, report = run_cli("check", "--golden", str(host_golden), "--latency-budget", "0")
    target = report["targets"][0]
    assert (code, target["verdict"]) == (ExitCode.OK, "IDENTICAL")
    assert {name: o["noise_units"] for name, o in target["outputs"].items()} == {"class_probs": 0.0, "embedding": 0.0}
    assert any(layer["source"] == "golden calibration" for layer in report["policy"]["layers"])


@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
@pytest.mark.skipif(not X86, reason="oneDNN's switch is an x86 perturbation")
def test_onednn_off_against_a_calibrated_golden_is_within_its_band_in_noise_units(run_cli, host_golden, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # the host target's probe inherits it
    code, out, _, report = run_cli("check", "--golden", str(host_golden), "--latency-budget", "0")
    target = report["targets"][0]
    calibration = json.loads((host_golden / "manifest.json").read_text())["calibration"]
    for name, output in target["outputs"].items():
        assert output["status"] in ("identical", "noise"), output
        # The calibration measured this very perturbation: never more than the noise scale.
        assert output["noise_units"] == pytest.approx(output["max_abs"] / calibration["outputs"][name]["noise"])
        assert output["noise_units"] <= 1.0
    # Outputs within the band decide nothing: the verdict is the switch's own, a warning.
    assert {d["path"]: d["severity"] for d in target["fingerprint_diff"]}.get("env.TF_ENABLE_ONEDNN_OPTS") == "warn"
    assert code == ExitCode.OK and target["verdict"] == "WARN"


@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
def test_golden_calibrate_adds_a_calibration_and_reseals(run_cli, tmp_path):
    golden = make_golden_here(tmp_path / "golden", calibrate=False)
    before = load_golden(golden)
    assert "calibration" not in before.manifest
    code, out, err, _ = run_cli("golden", "calibrate", str(golden))
    assert code == ExitCode.OK, err
    after = load_golden(golden)  # verified: the manifest still seals every file
    assert after.sha256 != before.sha256 and after.manifest["files"] == before.manifest["files"]
    assert set(after.manifest["calibration"]["perturbations"]) == PERTURBATIONS
    assert f"sha256 {after.sha256}" in out


def test_golden_calibrate_refuses_a_broken_bundle(run_cli, tmp_path):
    golden = tmp_path / "golden"
    shutil.copytree(builtin_golden_dir(), golden)
    (golden / "inputs.npz").write_bytes(b"not the inputs")
    code, _, err, _ = run_cli("golden", "calibrate", str(golden))
    assert code == ExitCode.UNDECIDED and "inputs.npz" in err


def test_a_policy_replaces_exactly_the_calibrated_keys_it_sets_and_says_so(tmp_path):
    golden = load_golden(builtin_golden_dir())
    manifest = dict(golden.manifest, calibration={"k": K, "perturbations": {}, "deterministic": True, "outputs": {
        "embedding": {"noise": 1e-4, "scale": 1.0, "atol": 4e-4, "rtol": 1e-5}}})
    calibrated = type(golden)(path=golden.path, sha256=golden.sha256, manifest=manifest, expected=golden.expected,
                              fingerprint=golden.fingerprint)
    policy, record = layered_policy(calibrated, None)
    assert policy.tolerance_for("embedding").atol == 4e-4
    assert [layer["source"] for layer in record["layers"]][-1] == "golden calibration"
    general = tmp_path / "general.toml"
    general.write_text("[tolerance]\natol = 2e-5\n")
    policy, record = layered_policy(calibrated, general)
    # The file's default applies where no band of the golden's is: the calibrated one stays, in words.
    assert policy.tolerance_for("embedding").atol == 4e-4 and policy.tolerance_for("class_probs").atol == 2e-5
    assert any("keeps its atol for embedding" in warning for warning in record["warnings"])
    own = tmp_path / "own.toml"
    own.write_text("[tolerance.outputs.embedding]\natol = 2e-5\n")
    policy, record = layered_policy(calibrated, own)
    assert policy.tolerance_for("embedding") == Tolerance(atol=2e-5, rtol=1e-5)
    assert record["replaced"] == [{"layer": str(own), "replaces": "golden calibration",
                                   "key": "`[tolerance.outputs.embedding] atol`", "was": 4e-4, "now": 2e-5}]
    assert f"{own} replaces the golden's calibration: `[tolerance.outputs.embedding] atol` = 0.0004 → 2e-05" \
        in record["warnings"]


def test_a_calibration_that_would_open_the_gate_is_named_in_words(run_cli, tmp_path):
    from envcheck.golden import reseal

    shutil.copytree(builtin_golden_dir(), tmp_path / "golden")
    golden = load_golden(tmp_path / "golden")
    # Honest numbers (a reference whose perturbation moved the embedding by 1.0), so the bundle loads: a band
    # that wide is then said in words at every verify and check.
    wild = {"onednn-off": {"description": "d", "outputs": {"embedding": golden.expected["embedding"] + np.float32(1.0)}}}
    reseal(golden, calibration=calibrate({"perturbations": wild}, golden.expected, build_policy(golden.policy)))
    code, _, err, _ = run_cli("golden", "verify", str(tmp_path / "golden"))
    assert code == ExitCode.OK
    assert "warning: the golden's calibration loosens the defaults: [tolerance.outputs.embedding] atol = " in err


@pytest.mark.parametrize("file_name", ["../outputs.npz", "outputs.npz", "calibration-x.npz/../../y"])
def test_a_calibration_file_is_read_only_by_the_name_the_probe_gives_it(tmp_path, file_name):
    from envcheck.capture import _calibration

    np.savez(tmp_path / "outputs.npz", e=GOLDEN["e"])
    found = _calibration(tmp_path, {"perturbations": {"repeat": {"description": "r", "file": file_name}}})
    assert "outputs" not in found["perturbations"]["repeat"]
    assert "not a calibration file name" in found["perturbations"]["repeat"]["skipped"]


def _probe(out: Path, *options: str) -> None:
    """The probe zipapp on the built-in golden, as a target runs it (no latency, layers or integrity)."""
    out.mkdir()
    subprocess.run([sys.executable, str(probe_app_path()), "--bundle", str(builtin_golden_dir()), "--out", str(out),
                    "--latency-budget", "0", "--no-layers", "--integrity", "off", *options], check=True,
                   capture_output=True, timeout=600)


@pytest.mark.usefixtures("needs_tensorflow")
def test_remapper_off_in_the_calibrating_process_equals_a_child_that_set_it_before_loading(tmp_path):
    """Grappler's remapper is switched off in the calibrating process and the model loaded again (one child
    fewer): its outputs are bitwise those of a fresh process that set the option before loading the model."""
    _probe(tmp_path / "calibrating", "--calibrate")
    capture = json.loads((tmp_path / "calibrating" / "capture.json").read_text())
    perturbations = capture["calibration"]["perturbations"]
    assert "file" in perturbations["remapper-off"], perturbations["remapper-off"]
    assert "loaded again" in perturbations["remapper-off"]["setting"]
    _probe(tmp_path / "child", "--perturb", "remapper-off", "--no-tflite")
    with np.load(tmp_path / "calibrating" / "calibration-remapper-off.npz") as in_process, \
            np.load(tmp_path / "child" / "outputs.npz") as child:
        assert sorted(in_process.files) == sorted(child.files) == ["class_probs", "embedding"]
        for name in child.files:
            assert in_process[name].tobytes() == child[name].tobytes(), name
