"""The decision core cannot be bent: rules keep their order through every writer, one writer keeps what it does not
regenerate, a --policy replaces exactly the keys it sets, a calibration must follow from its own numbers, and every
finding's severity comes from the policy. No TensorFlow and no Docker: a fake reference target answers with the
golden's own outputs (moved as a test asks), so create, calibrate, update and reseal run as they do for real."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from envcheck.capture import save_capture_dir
from envcheck.check import build_report, compare_captures, layered_policy
from envcheck.compare.calibration import calibrate
from envcheck.compare.policy import build_policy
from envcheck.errors import ExitCode, GoldenError, UsageError
from envcheck.golden import (
    MANIFEST_FILE,
    BundleFiles,
    GoldenBundle,
    builtin_golden_dir,
    load_golden,
    reseal,
    write_golden,
)
from envcheck.golden_create import calibrate_golden, update_golden
from envcheck.model import Capture, TargetFailure

ORDERED = {"packages.numpy": "fail", "packages.*": "info"}
"""First match wins: numpy fails although every other package is only information (sorted keys would swap them)."""
IMAGE = {"id": "sha256:" + "ab" * 32, "tags": ["team/vision:1.4"], "repo_digests": []}


@dataclasses.dataclass(frozen=True)
class FakeReference:
    """A reference target that computes what `outputs` says (the golden's own by default), in a Docker image or
    on the host, honouring the flags create and calibrate set (layers, calibrate, latency budget)."""

    outputs: dict[str, np.ndarray]
    fingerprint: dict[str, Any]
    docker: bool = True
    move: float = 1e-4
    """How far the calibration's perturbation moves the embedding (absolute)."""
    layers: bool | None = None
    tflite: bool = False
    calibrate: bool = False
    latency_budget: float = 2.0

    @property
    def spec(self) -> str:
        return "docker:team/vision:1.4" if self.docker else "host"

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture:
        moved = {name: value + np.float32(self.move) if name == "embedding" else value
                 for name, value in self.outputs.items()}
        calibration = {"perturbations": {"onednn-off": {"description": "oneDNN off", "outputs": moved},
                                         "repeat": {"description": "again", "outputs": dict(self.outputs)}}}
        info = {"kind": "docker", "image_ref": "team/vision:1.4", "image": IMAGE} if self.docker else {"kind": "host"}
        return Capture(spec=self.spec, fingerprint=self.fingerprint, outputs=dict(self.outputs), target_info=info,
                       determinism={"bitwise_repeatable": True, "max_abs_spread": {}},
                       calibration=calibration if self.calibrate else None,
                       layers={"status": "unsupported", "reason": "fake"} if self.layers else None)


def _builtin() -> GoldenBundle:
    return load_golden(builtin_golden_dir())


def team_golden(out: Path, **fields: Any) -> GoldenBundle:
    """The built-in model as a team's golden, made in an image, with ordered rules: no latency, layers or
    calibration unless `fields` give them."""
    builtin = _builtin()
    files = BundleFiles(model_dir=builtin.path / "model", inputs_npz=builtin.path / "inputs.npz",
                        expected=builtin.expected, fingerprint=builtin.fingerprint)
    base = {"description": "vision team golden", "policy": {"severity": dict(ORDERED)}, "batch_size": 256,
            "reference_image": {"ref": "team/vision:1.4", **IMAGE}}
    return load_golden(write_golden(out, {**base, **fields}, files=files))


def fake(golden: GoldenBundle, **options: Any) -> FakeReference:
    return FakeReference(outputs=dict(golden.expected), fingerprint=golden.fingerprint, **options)


def hand_written(golden_dir: Path, **changes: Any) -> None:
    """Rewrite a manifest as a person or another tool would: keys in the order given, nothing checked."""
    path = golden_dir / MANIFEST_FILE
    manifest = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps(manifest, indent=1))


def with_numpy(golden: GoldenBundle, version: str) -> dict[str, Any]:
    return {**golden.fingerprint, "packages": {**golden.fingerprint.get("packages", {}), "numpy": version}}


def verdicts(golden: GoldenBundle, captures: list[Capture], policy_file: Path | None = None) -> list[str]:
    policy, record = layered_policy(golden, policy_file)
    return [t.verdict for t in build_report(golden, captures, policy, "fail", record).targets]


# --------------------------------------------------------------- 1. rules keep their order through every writer

def test_a_hand_written_manifest_reads_its_rules_in_the_order_written(tmp_path):
    shutil.copytree(builtin_golden_dir(), tmp_path / "golden")
    hand_written(tmp_path / "golden", policy={"severity": dict(ORDERED)})
    assert build_policy(load_golden(tmp_path / "golden").policy).severity_for("packages.numpy") == "fail"


@pytest.mark.parametrize("writer", ["reseal", "calibrate", "update"])
def test_no_writer_reorders_first_match_rules(tmp_path, writer):
    shutil.copytree(builtin_golden_dir(), tmp_path / "golden")
    hand_written(tmp_path / "golden", policy={"severity": dict(ORDERED)})
    golden = load_golden(tmp_path / "golden")
    drifted = Capture(spec="docker:x", fingerprint=with_numpy(golden, "0.0.1"), outputs=dict(golden.expected))
    assert verdicts(golden, [drifted]) == ["FAIL"]
    if writer == "reseal":
        rewritten = reseal(golden, description="resealed")
    elif writer == "calibrate":
        rewritten, _ = calibrate_golden(golden.path, fake(golden, docker=False), timeout=60)
    else:
        rewritten = update_golden(golden.path, fake(golden, docker=False), timeout=60)[1]
    assert build_policy(rewritten.policy).severity_for("packages.numpy") == "fail"
    assert rewritten.policy["severity"] == [list(rule) for rule in ORDERED.items()]  # stored as an ordered list
    assert verdicts(rewritten, [drifted]) == ["FAIL"]


def test_a_policy_file_may_write_rules_as_an_ordered_list_too(tmp_path):
    own = tmp_path / "policy.toml"
    own.write_text('severity = [["packages.numpy", "fail"], ["packages.*", "info"]]\n')
    policy, record = layered_policy(_builtin(), own)
    assert policy.severity_for("packages.numpy") == "fail" and policy.severity_for("packages.six") == "info"
    assert record["effective"]["severity"][:2] == [["packages.numpy", "fail"], ["packages.*", "info"]]


def test_policies_whose_rules_differ_only_in_order_hash_apart():
    from envcheck.compare.policy_record import digest

    assert digest({"severity": dict(ORDERED)}) != digest({"severity": dict(reversed(ORDERED.items()))})
    assert digest({"severity": dict(ORDERED)}) == digest({"severity": [list(rule) for rule in ORDERED.items()]})


# ---------------------------------------------------------------------------------------- 2. one golden writer

def test_update_keeps_every_field_it_does_not_regenerate_and_adds_no_record(tmp_path):
    old = team_golden(tmp_path / "golden")
    _, new = update_golden(old.path, fake(old, layers=None), timeout=60)
    assert new.reference_image == old.reference_image  # the image-differs-from-golden finding keeps its reference
    assert new.manifest["description"] == "vision team golden" and new.policy == old.policy
    assert new.manifest["batch_size"] == 256
    # The golden had no calibration, layer record, determinism or TFLite model: none is added (and the reference
    # measured no latency).
    assert {"calibration", "layers", "determinism", "latency", "tflite"}.isdisjoint(new.manifest)


def test_update_measures_again_the_records_the_golden_has(tmp_path):
    builtin = _builtin()
    old = team_golden(tmp_path / "golden", calibration=calibrate(
        {"perturbations": {"repeat": {"description": "r", "outputs": dict(builtin.expected)}}}, builtin.expected,
        build_policy({})), determinism={"bitwise_repeatable": True})
    _, new = update_golden(old.path, fake(old, move=1e-3), timeout=60)
    assert new.calibration is not None and new.calibration != old.calibration  # measured again, here
    assert new.calibration["outputs"]["embedding"]["noise"] == pytest.approx(1e-3, rel=1e-3)
    assert new.determinism is not None and "layers" not in new.manifest


def test_update_refuses_to_rebuild_an_image_golden_outside_an_image(tmp_path):
    old = team_golden(tmp_path / "golden")
    with pytest.raises(UsageError, match="was made in the image team/vision:1.4"):
        update_golden(old.path, fake(old, docker=False), timeout=60)
    assert load_golden(old.path).sha256 == old.sha256


def test_calibrate_changes_only_the_calibration(tmp_path):
    old = team_golden(tmp_path / "golden", latency={"p50_s": 0.01, "hardware_class": {"cpu": "x"}})
    new, _ = calibrate_golden(old.path, fake(old), timeout=60)
    changed = {key for key in set(old.manifest) | set(new.manifest) if old.manifest.get(key) != new.manifest.get(key)}
    assert changed == {"calibration"}


# ------------------------------------------------------------------------------- 3. policy layering, key by key

@pytest.fixture
def calibrated(tmp_path) -> GoldenBundle:
    """A golden whose reference moved the embedding by 1e-4: its calibrated band is wider than the 1e-5 floor."""
    old = team_golden(tmp_path / "golden")
    golden, _ = calibrate_golden(old.path, fake(old), timeout=60)
    assert golden.calibration["outputs"]["embedding"]["atol"] > 1e-4
    return golden


def within_the_calibrated_band(golden: GoldenBundle) -> Capture:
    """The embedding moved by the calibrated noise: beyond the 1e-5 floor, within the calibrated band."""
    outputs = {name: value + np.float32(1e-4) if name == "embedding" else value
               for name, value in golden.expected.items()}
    return Capture(spec="docker:x", fingerprint=golden.fingerprint, outputs=outputs)


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty-file"),
    pytest.param("[tolerance.outputs.class_probs]\nclassification = false\n", id="only-classification"),
    pytest.param("[tolerance]\natol = 1e-5\n", id="only-the-default"),
    pytest.param("[tolerance.outputs.embedding]\nrtol = 1e-5\n", id="only-rtol"),
])
def test_a_policy_that_does_not_set_a_calibrated_key_keeps_it(tmp_path, calibrated, text):
    own = tmp_path / "policy.toml"
    own.write_text(text)
    assert verdicts(calibrated, [within_the_calibrated_band(calibrated)], own) == ["PASS"]
    policy, _ = layered_policy(calibrated, own)
    assert policy.tolerance_for("embedding").atol == calibrated.calibration["outputs"]["embedding"]["atol"]


def test_a_partial_output_override_inherits_the_other_bound(tmp_path, calibrated):
    own = tmp_path / "policy.toml"
    own.write_text("[tolerance.outputs.embedding]\nrtol = 3e-3\n")
    policy, record = layered_policy(calibrated, own)
    band = policy.tolerance_for("embedding")
    assert (band.atol, band.rtol) == (calibrated.calibration["outputs"]["embedding"]["atol"], 3e-3)
    assert [entry["key"] for entry in record["replaced"]] == ["`[tolerance.outputs.embedding] rtol`"]


def test_replacing_a_calibrated_bound_is_said_in_words(tmp_path, calibrated):
    own = tmp_path / "policy.toml"
    own.write_text("[tolerance.outputs.embedding]\natol = 1e-5\n")
    policy, record = layered_policy(calibrated, own)
    assert verdicts(calibrated, [within_the_calibrated_band(calibrated)], own) == ["FAIL"]  # the user's decision
    assert any(w.startswith(f"{own} replaces the golden's calibration: `[tolerance.outputs.embedding] atol` = ")
               for w in record["warnings"])


def test_a_policy_naming_an_output_the_golden_lacks_is_a_usage_error(tmp_path, calibrated):
    own = tmp_path / "policy.toml"
    own.write_text("[tolerance.outputs.embeding]\natol = 1e-3\n")
    with pytest.raises(UsageError) as caught:
        layered_policy(calibrated, own)
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value) == (f"{own}: `[tolerance.outputs.embeding]`: the golden has no output 'embeding' "
                                 "(its outputs: class_probs, embedding)")


# --------------------------------------------------------------------------- 4. a calibration follows its numbers

def forge(golden_dir: Path, output: str = "embedding", **entry: float) -> None:
    manifest = json.loads((golden_dir / MANIFEST_FILE).read_text())
    manifest["calibration"]["outputs"][output].update(entry)
    hand_written(golden_dir, calibration=manifest["calibration"])


@pytest.mark.parametrize("forged", [
    pytest.param({"atol": 1e-3}, id="atol"),
    pytest.param({"noise": 3.6e-4, "atol": 1e-3}, id="noise-and-atol"),
    pytest.param({"scale": 1e-3}, id="scale"),
    pytest.param({"rtol": 1.0}, id="rtol"),
])
def test_a_forged_calibration_is_refused_at_load(golden_copy, forged):
    forge(golden_copy, **forged)
    with pytest.raises(GoldenError) as caught:
        load_golden(golden_copy)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.UNDECIDED and "\n" not in message
    assert "output 'embedding'" in message and "calibrate the golden again" in message


def test_a_forged_k_is_refused(golden_copy):
    manifest = json.loads((golden_copy / MANIFEST_FILE).read_text())
    hand_written(golden_copy, calibration={**manifest["calibration"], "k": 1e6})
    with pytest.raises(GoldenError, match="k = 1e[+]06 is above"):
        load_golden(golden_copy)


def test_a_forged_calibration_makes_verify_and_compare_undecided(run_cli, golden_copy, tmp_path):
    golden = load_golden(golden_copy)
    drifted = {name: value * np.float32(1.001) for name, value in golden.expected.items()}  # millions of ULP
    save_capture_dir(Capture(spec="host", fingerprint=golden.fingerprint, outputs=drifted), tmp_path,
                     tmp_path / "capture", golden.sha256)
    forge(golden_copy, atol=1e-2)
    code, _, err, _ = run_cli("golden", "verify", str(golden_copy))
    assert code == ExitCode.UNDECIDED and "output 'embedding'" in err and "Traceback" not in err
    code, _, err, _ = run_cli("compare", str(tmp_path / "capture"), "--golden", str(golden_copy))
    assert code == ExitCode.UNDECIDED and "output 'embedding'" in err


def test_no_writer_writes_a_forged_calibration(golden_copy):
    golden = load_golden(golden_copy)
    forged = json.loads(json.dumps(golden.calibration))
    forged["outputs"]["embedding"]["atol"] = 1e-3
    with pytest.raises(GoldenError):
        reseal(golden, calibration=forged)
    assert load_golden(golden_copy).sha256 == golden.sha256  # nothing written


# ------------------------------------------------------------ 5. severities from the policy; bf16; unnamed captures

def test_tflite_failed_takes_its_severity_from_the_policy(tmp_path):
    golden = load_golden("builtin:edge")
    capture = Capture(spec="host", fingerprint=golden.fingerprint, outputs=dict(golden.expected),
                      tflite={"error": {"kind": "tflite-load", "message": "unsupported op"}})
    own = tmp_path / "policy.toml"
    own.write_text('[severity]\n"finding.tflite-failed" = "fail"\n')
    assert verdicts(golden, [capture]) == ["WARN"]
    assert verdicts(golden, [capture], own) == ["FAIL"]


def _bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 the way np.load returns them: raw 2-byte voids (the top half of each float32)."""
    return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view("V2")


def test_bfloat16_outputs_are_calibrated():
    golden = {"e": _bfloat16(np.array([[0.5, -2.0], [1.0, 0.25]], np.float32))}
    moved = {"e": _bfloat16(np.array([[0.5, -2.0], [1.0, 0.5]], np.float32))}
    found = calibrate({"perturbations": {"onednn-off": {"description": "d", "outputs": moved}}}, golden,
                      build_policy({}))["outputs"]["e"]
    assert found["scale"] == 2.0 and found["noise"] == 0.25
    assert found["atol"] == pytest.approx(4 * 0.25 / 2.0)
    quiet = calibrate({"perturbations": {}}, golden, build_policy({}))["outputs"]["e"]
    assert quiet["noise"] == 2.0 ** -6  # one bfloat16 ULP at 2.0 (7 fraction bits), not zero


def test_a_capture_that_does_not_name_its_golden_is_judged_against_none(tmp_path):
    golden = _builtin()
    save_capture_dir(Capture(spec="host", fingerprint=golden.fingerprint, outputs=dict(golden.expected)), tmp_path,
                     tmp_path / "capture", golden.sha256)
    document = json.loads((tmp_path / "capture" / "capture.json").read_text())
    del document["golden_sha256"]
    (tmp_path / "capture" / "capture.json").write_text(json.dumps(document))
    policy, record = layered_policy(golden, None)
    report = compare_captures(golden, [tmp_path / "capture"], policy, record)
    (target,) = report.targets
    assert report.exit_code == ExitCode.UNDECIDED and target.verdict == "ERROR"
    assert isinstance(target.error, TargetFailure) and target.error.kind == "golden-mismatch"
    assert "no golden_sha256" in target.error.message and "\n" not in target.error.message


# --------------------------------------------------------------------------------- 6. the plugin's builtin goldens

def test_the_plugins_builtin_prefix_is_the_clis():
    from envcheck import golden, pytest_plugin

    assert pytest_plugin.BUILTIN_PREFIX == golden.BUILTIN_PREFIX


def test_an_unknown_builtin_golden_names_the_known_ones():
    with pytest.raises(GoldenError, match=r"builtin:nope: no such built-in golden \(the built-in ones: "
                                          r"builtin:default, builtin:edge\)"):
        load_golden("builtin:nope")


# ------------------------------------------------------------------------ 7. metamorphic and differential tests

RANK = {"IDENTICAL": 0, "PASS": 1, "WARN": 2, "FAIL": 3}
bands = st.floats(min_value=0.0, max_value=1e-2, allow_nan=False)
severities = st.sampled_from(["fail", "warn", "info", "ignore"])
patterns = st.sampled_from(["packages.numpy", "packages.*", "env.*", "finding.tflite-failed", "*", "gpu.*"])
output_bands = st.fixed_dictionaries({}, optional={"atol": bands, "rtol": bands, "classification": st.booleans()})
policy_tables = st.fixed_dictionaries({}, optional={
    "tolerance": st.fixed_dictionaries({}, optional={
        "atol": bands, "rtol": bands,
        "outputs": st.dictionaries(st.sampled_from(["class_probs", "embedding"]), output_bands, max_size=2)}),
    "severity": st.one_of(st.dictionaries(patterns, severities, max_size=3),
                          st.lists(st.tuples(patterns, severities).map(list), max_size=3)),
    "latency": st.fixed_dictionaries({}, optional={"warn_ratio": st.floats(1.1, 5.0), "gate_p99": st.booleans()}),
    "acceptance": st.fixed_dictionaries({}, optional={"min_consistency": st.floats(0.0, 1.0)}),
})


@settings(max_examples=200, deadline=None)
@given(layers=st.lists(policy_tables, max_size=3), at=st.integers(0, 3))
def test_a_layer_that_sets_nothing_changes_nothing(layers, at):
    with_empty = [*layers[:at], {}, *layers[at:]]
    assert build_policy(*with_empty) == build_policy(*layers)


@settings(max_examples=200, deadline=None)
@given(first=policy_tables, second=policy_tables, third=policy_tables)
def test_layering_is_associative(first, second, third):
    from envcheck.compare.policy import overlay

    assert build_policy(first, second, third) == build_policy(overlay(first, second), third) \
        == build_policy(first, overlay(second, third))


def test_an_empty_policy_file_changes_nothing_in_the_record(tmp_path, calibrated):
    own = tmp_path / "policy.toml"
    own.write_text("")
    with_file, record = layered_policy(calibrated, own)
    without, plain = layered_policy(calibrated, None)
    assert with_file == without and record["sha256"] == plain["sha256"] and record["replaced"] == []


@settings(max_examples=150, deadline=None)
@given(golden=arrays(np.float32, (4, 3), elements=st.floats(-10, 10, width=32)),
       noise=arrays(np.float32, (4, 3), elements=st.floats(-0.0009765625, 0.0009765625, width=32)),
       atol=bands, rtol=bands, tighter=st.floats(0.0, 1.0), accept=st.sampled_from([1.0, 0.5]))
def test_a_tighter_tolerance_never_turns_fail_into_pass(golden, noise, atol, rtol, tighter, accept):
    from envcheck.compare.outputs import compare_outputs
    from envcheck.compare.verdict import decide_verdict

    def verdict(scale: float) -> str:
        policy = build_policy({"tolerance": {"atol": atol * scale, "rtol": rtol * scale},
                               "acceptance": {"min_consistency": accept}})
        return decide_verdict(compare_outputs({"e": golden}, {"e": golden + noise}, policy), ())

    assert RANK[verdict(tighter)] >= RANK[verdict(1.0)]


def drift_cases(golden: GoldenBundle) -> list[Capture]:
    """One capture per kind of outcome: identical, noise, drift, a package that drifted, a switch that moved."""
    def moved(by: float) -> dict[str, np.ndarray]:
        return {name: value + np.float32(by) if name == "embedding" else value for name, value in golden.expected.items()}

    env = {**golden.fingerprint, "env": {**golden.fingerprint.get("env", {}), "TF_ENABLE_ONEDNN_OPTS": "0"}}
    return [Capture(spec=f"docker:{index}", fingerprint=fingerprint, outputs=outputs) for index, (fingerprint, outputs)
            in enumerate([(golden.fingerprint, dict(golden.expected)), (golden.fingerprint, moved(5e-5)),
                          (golden.fingerprint, moved(1e-2)), (with_numpy(golden, "0.0.1"), dict(golden.expected)),
                          (env, moved(5e-5))])]


@pytest.mark.parametrize("writer", ["reseal", "calibrate", "update"])
def test_writers_keep_every_verdict(tmp_path, calibrated, writer):
    """Differential: the same captures are judged alike before and after a writer that measures the same
    numbers again (the same reference, the same outputs)."""
    captures = drift_cases(calibrated)
    before = verdicts(calibrated, captures)
    assert set(before) == {"IDENTICAL", "PASS", "FAIL", "WARN"}  # the cases span the verdicts
    if writer == "reseal":
        after = reseal(calibrated, description="resealed")
    elif writer == "calibrate":
        after = calibrate_golden(calibrated.path, fake(calibrated), timeout=60)[0]
    else:
        after = update_golden(calibrated.path, fake(calibrated), timeout=60)[1]
    assert verdicts(after, captures) == before


def test_a_calibration_without_scale_is_still_checked(golden_copy):
    manifest = json.loads((golden_copy / MANIFEST_FILE).read_text())
    for entry in manifest["calibration"]["outputs"].values():
        del entry["scale"]  # not required by the schema
    hand_written(golden_copy, calibration=manifest["calibration"])
    load_golden(golden_copy)
    forge(golden_copy, atol=1e-3)
    with pytest.raises(GoldenError, match="output 'embedding' records atol 0.001"):
        load_golden(golden_copy)
