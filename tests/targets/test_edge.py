"""Edge boxes (issue 16): a golden with a TFLite model, checked in real images that have only a TFLite runtime.

The golden is the built-in model's edge variant, made in the reference image (`golden create --builtin --edge
--target docker:envcheck-fixture/reference`): its model.tflite is converted there by TensorFlow 2.21 and its
expected TFLite outputs come from that TensorFlow's interpreter. The edge images are built from
fixtures/images/ like the others (Debian bookworm, wheels from the wheelhouse): `edge` (ai-edge-litert 2.3.0, no
TensorFlow), `edge-reference-kernels` (the same, its interpreter built with TFLite's reference kernels) and
`edge-tflite-runtime` (the older tflite-runtime 2.14 with the NumPy 1.x it pins).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.errors import ExitCode
from helpers import docker_with_images, probe_containers_left

PREFIX = "envcheck-fixture"
IMAGES = ("reference", "edge", "edge-reference-kernels", "edge-tflite-runtime")
EDGE_OUTPUTS = {"tflite:class_probs", "tflite:embedding"}


def _image(name: str) -> str:
    return f"docker:{PREFIX}/{name}"


@pytest.fixture(scope="module")
def docker_client():
    client = docker_with_images(*(f"{PREFIX}/{name}" for name in IMAGES))
    yield client
    client.close()


@pytest.fixture(scope="module")
def edge_golden(docker_client, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "edge"
    made = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--builtin", "--edge", "--target",
                           _image("reference"), "--out", str(out), "--no-calibrate"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "tflite: model.tflite (schema 3, converted by TensorFlow 2.21" in made.stdout
    return out


@pytest.fixture
def no_leftovers(docker_client):
    yield
    assert probe_containers_left(docker_client) == []


def _check(run_cli, golden: Path, image: str):
    code, out, err, report = run_cli("check", "--golden", str(golden), "--target", _image(image))
    return code, out, report["targets"][0]


def test_the_golden_keeps_the_converted_model_and_how(edge_golden):
    manifest = json.loads((edge_golden / "manifest.json").read_text())
    tflite = manifest["tflite"]
    assert (tflite["status"], tflite["schema_version"], tflite["tensorflow"]) == ("ok", 3, "2.21.0")
    assert tflite["supported_ops"] == ["TFLITE_BUILTINS"] and tflite["optimizations"] == []
    assert (tflite["runtime"], tflite["op_resolver"]) == ("tensorflow-lite", "default")
    assert {"model.tflite", "tflite_expected.npz"} <= set(manifest["files"])


def test_an_edge_image_without_tensorflow_passes_end_to_end(run_cli, edge_golden, no_leftovers):
    code, _, target = _check(run_cli, edge_golden, "edge")
    assert code == ExitCode.OK and target["verdict"] in ("IDENTICAL", "PASS"), target
    assert set(target["outputs"]) == EDGE_OUTPUTS
    assert "tensorflow" not in target["fingerprint"]
    assert target["fingerprint"]["tflite"]["runtime"] == "ai-edge-litert"
    assert not any(d["path"].startswith(("tensorflow", "packages.tensorflow")) for d in target["fingerprint_diff"])


def test_reference_kernels_on_an_edge_box_drift_and_say_why(run_cli, edge_golden, no_leftovers):
    code, _, target = _check(run_cli, edge_golden, "edge-reference-kernels")
    assert code == ExitCode.OK and target["verdict"] == "WARN"
    assert any(o["status"] == "noise" for o in target["outputs"].values()), target["outputs"]
    (resolver,) = [d for d in target["fingerprint_diff"] if d["path"] == "tflite.op_resolver"]
    assert (resolver["golden"], resolver["target"], resolver["severity"]) == ("default", "reference", "warn")
    assert any("XNNPACK and the builtin or reference kernels" in hint for hint in target["hints"])


def test_the_older_runtime_runs_on_its_own_numpy(run_cli, edge_golden, no_leftovers):
    _, _, target = _check(run_cli, edge_golden, "edge-tflite-runtime")
    assert target["verdict"] != "ERROR", target["error"]
    assert target["fingerprint"]["tflite"] == {**target["fingerprint"]["tflite"], "runtime": "tflite-runtime",
                                               "version": "2.14.0"}
    assert target["fingerprint"]["numpy"]["version"].startswith("1.")
    assert set(target["outputs"]) == EDGE_OUTPUTS


def test_parity_of_the_tflite_model_with_the_savedmodel_on_the_reference_image(run_cli, edge_golden, no_leftovers):
    code, _, target = _check(run_cli, edge_golden, "reference")
    assert code == ExitCode.OK and target["verdict"] in ("IDENTICAL", "PASS")
    outputs = target["outputs"]
    assert {"class_probs", "embedding", *EDGE_OUTPUTS, "parity:class_probs", "parity:embedding"} == set(outputs)
    assert all(outputs[name]["status"] == "identical" for name in ("class_probs", "embedding", *EDGE_OUTPUTS))
    parity = [outputs[name] for name in ("parity:class_probs", "parity:embedding")]
    assert all(p["status"] in ("identical", "noise") and (p["max_abs"] or 0) < 1e-5 for p in parity), parity


def test_an_edge_capture_made_on_site_compares_at_headquarters(run_cli, edge_golden, tmp_path, no_leftovers):
    capture = tmp_path / "capture-edge"
    code, _, err, _ = run_cli("probe", "--golden", str(edge_golden), "--target", _image("edge"), "--site", "edge-7",
                              "--out", str(capture))
    assert code == ExitCode.OK, err
    assert (capture / "tflite-outputs.npz").is_file()
    code, _, _, report = run_cli("compare", "--golden", str(edge_golden), str(capture))
    target = report["targets"][0]
    assert (code, target["site"], set(target["outputs"])) == (ExitCode.OK, "edge-7", EDGE_OUTPUTS)


def test_a_model_that_does_not_convert_is_unsupported_and_the_savedmodel_golden_stands(run_cli, tmp_path):
    golden = tmp_path / "golden"
    code, out, err, _ = run_cli("golden", "create", "--builtin", "--tflite", "--no-calibrate", "--out", str(golden))
    assert code == ExitCode.OK, err
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["tflite"]["status"] == "unsupported"
    assert "TensorListReserve" in manifest["tflite"]["reason"] and "tflite: unsupported (" in out
    assert not (golden / "model.tflite").exists()
    code, _, _, report = run_cli("check", "--golden", str(golden), "--latency-budget", "0")
    target = report["targets"][0]
    assert (code, target["verdict"], set(target["outputs"])) == (ExitCode.OK, "IDENTICAL", {"class_probs", "embedding"})


def test_a_broken_tensorflow_is_an_error_not_an_edge_box(run_cli, tmp_path, monkeypatch):
    """TensorFlow installed but failing to import (here: a package whose import raises, first on the path) is
    the server's failure, whatever the golden carries: only a target without TensorFlow is run as an edge box."""
    broken = tmp_path / "site" / "tensorflow"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libcudnn.so.9: cannot open shared object file')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    code, _, _, report = run_cli("check", "--golden", "builtin:edge", "--latency-budget", "0")
    target = report["targets"][0]
    assert (code, target["verdict"], target["error"]["kind"]) == (ExitCode.UNDECIDED, "ERROR",
                                                                   "tensorflow-not-importable")
    assert "libcudnn" in target["error"]["message"]
