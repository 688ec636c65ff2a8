"""Localising drift to the first divergent operation (issue 12): real TensorFlow, real environment knobs.

The golden records every intermediate tensor of its model (layers.json); each probe records the same, and the
report's `localization` names the first divergent tensor, the origins (divergent tensors whose inputs all
match: the ops whose kernels differ), the largest error jump, and `fused_only`. Localisation never changes a
verdict. Goldens here are made on the machine under test, as every bitwise comparison must be.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import KERNEL_OPS, TF_OLDER_PYTHON, require

from envcheck.capture import load_capture_dir
from envcheck.compare.localization import localize
from envcheck.errors import ExitCode
from envcheck.golden import load_golden
from envcheck.targets.probe_app import probe_app_path

NUDGE_WEIGHT = """
import sys, numpy as np, tensorflow as tf
source, out, variable = sys.argv[1:4]
loaded = tf.saved_model.load(source)
(weights,) = [v for v in loaded.variables if v.name == variable]
value = weights.numpy()
value.reshape(-1)[0] = np.nextafter(value.reshape(-1)[0], np.float32(np.inf))  # exactly one ULP, one element
weights.assign(value)
tf.saved_model.save(loaded, out, signatures={"serving_default": loaded.signatures["serving_default"]})
"""

INTEGER_MODEL = """
import sys, numpy as np, tensorflow as tf
class Counter(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.int32, name="x")])
    def serve(self, x):
        return {"y": x * 3 + 1}
module = Counter()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.serve})
np.savez(sys.argv[2], x=np.arange(32, dtype=np.int32).reshape(8, 4))
"""


def run_python(code: str, *arguments) -> None:
    result = subprocess.run([sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_golden_records_every_layer_small(host_golden):
    golden = load_golden(host_golden)
    record, summary = golden.layers, golden.manifest["layers"]
    assert record["status"] == summary["status"] == "ok"
    assert summary["tensors"] == len(record["tensors"]) > 50
    assert set(record["outputs"]) == set(golden.expected)
    per_tensor = (host_golden / "layers.json").stat().st_size / len(record["tensors"])
    assert per_tensor <= 2048, f"{per_tensor:.0f} bytes per tensor"
    assert all(":" in t["key"] and "StatefulPartitionedCall" not in t["key"] for t in record["tensors"])


def test_onednn_off_is_localised_to_kernel_ops(run_cli, golden_onednn_on, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    code, out, _, report = run_cli("check", "--golden", str(golden_onednn_on), "--latency-budget", "0")
    target = report["targets"][0]
    where = target["localization"]
    assert where["status"] == "ok", where
    assert where["coverage"]["matched"] == where["coverage"]["reference"] > 50
    assert where["origins"] and not where["fused_only"]
    first = where["origins"][0]
    assert first["op"] in KERNEL_OPS, where["origin_ops"]
    assert set(where["origin_ops"]) <= KERNEL_OPS | {"While"}, where["origin_ops"]
    assert f"`{first['key']}` ({first['op']})" in where["summary"]
    assert where["first_divergence"]["index"] <= first["index"]
    # The verdict is the outputs' and the fingerprint's alone: the same without a layer record.
    _, _, _, without = run_cli("check", "--golden", str(golden_onednn_on), "--latency-budget", "0", "--no-layers")
    assert "localization" not in without["targets"][0]
    assert without["targets"][0]["verdict"] == target["verdict"] and without["exit_code"] == report["exit_code"] == code


@pytest.mark.parametrize("variable, op_key", [("conv2d/kernel:0", "/conv2d_1/convolution:0"),
                                              ("depthwise_conv2d/kernel:0", "/depthwise_conv2d_1/depthwise:0")])
def test_a_one_ulp_weight_change_is_found_at_its_op_exactly(run_cli, host_golden, tmp_path, variable, op_key):
    model = tmp_path / "model"
    run_python(NUDGE_WEIGHT, host_golden / "model", model, variable)
    code, _, err, _ = run_cli("golden", "create", "--model", str(model), "--inputs", str(host_golden / "inputs.npz"),
                              "--out", str(tmp_path / "nudged"), "--no-calibrate")
    assert code == ExitCode.OK, err
    where = localize(load_golden(host_golden).layers, load_golden(tmp_path / "nudged").layers, outputs_drift=True)
    assert where["status"] == "ok"
    assert where["first_divergence"]["key"].endswith(op_key), where["first_divergence"]
    assert [origin["key"] for origin in where["origins"]] == [where["first_divergence"]["key"]]


def test_fused_only_when_the_unfused_layers_match_but_the_outputs_drift(run_cli, golden_onednn_on, tmp_path,
                                                                        monkeypatch):
    """Constructed honestly with the knob the calibration uses: the probe runs the golden with Grappler's
    remapper (op fusion) off. Its outputs then differ from the fused golden's, while its layer record, always
    made unfused, matches the golden's bit for bit: the difference lies inside a fused kernel."""
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    capture = tmp_path / "capture"
    probe = subprocess.run([sys.executable, str(probe_app_path()), "--bundle", str(golden_onednn_on), "--out",
                            str(capture), "--latency-budget", "0", "--perturb", "remapper-off"],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    # The bare probe names no golden (envcheck probe does): name the one it ran, as compare requires.
    document = json.loads((capture / "capture.json").read_text())
    document["golden_sha256"] = load_golden(golden_onednn_on).sha256
    (capture / "capture.json").write_text(json.dumps(document))
    _, _, _, report = run_cli("compare", "--golden", str(golden_onednn_on), str(capture))
    target = report["targets"][0]
    assert any(o["status"] != "identical" for o in target["outputs"].values()), \
        "with oneDNN on, turning the remapper off must change the fused outputs"
    where = target["localization"]
    assert where["fused_only"] is True and where["divergent"] == 0 and where["status"] == "ok"
    assert "inside a fused kernel" in where["summary"]


def test_two_sites_are_localised_against_each_other(run_cli, golden_onednn_on, tmp_path, monkeypatch):
    captures = {}
    for site, onednn in (("beijing", "1"), ("shenzhen-3", "0")):
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
        captures[site] = tmp_path / site
        code, _, err, _ = run_cli("probe", "--golden", str(golden_onednn_on), "--site", site, "--out",
                                  str(captures[site]), "--latency-budget", "0")
        assert code == ExitCode.OK, err
    _, _, _, report = run_cli("compare", "--golden", str(golden_onednn_on), *map(str, captures.values()))
    between = report["localization_between"]
    assert (between["a"], between["b"], between["status"]) == ("beijing", "shenzhen-3", "ok")
    assert between["origins"] and between["origins"][0]["op"] in KERNEL_OPS
    # Made from the two captures' records alone: the golden's own record plays no part.
    beijing, shenzhen = (load_capture_dir(path)[0] for path in captures.values())
    alone = localize(beijing.layers, shenzhen.layers, outputs_drift=True, against="beijing", target_name="shenzhen-3")
    assert {key: between[key] for key in alone} == json.loads(json.dumps(alone))
    # A site against itself: nothing parts.
    _, _, _, same = run_cli("compare", "--golden", str(golden_onednn_on), str(captures["beijing"]),
                            str(captures["beijing"]))
    assert same["localization_between"]["status"] == "identical"


def test_a_graph_the_localiser_cannot_handle_is_unsupported_and_the_verdict_stands(run_cli, tmp_path, capsys):
    model, inputs, golden = tmp_path / "model", tmp_path / "inputs.npz", tmp_path / "golden"
    run_python(INTEGER_MODEL, model, inputs)
    code, out, err, _ = run_cli("golden", "create", "--model", str(model), "--inputs", str(inputs), "--out",
                                str(golden), "--no-calibrate")
    assert code == ExitCode.OK, err
    assert "layers: unsupported (" in out
    assert load_golden(golden).manifest["layers"]["status"] == "unsupported"
    code, _, _, report = run_cli("check", "--golden", str(golden), "--latency-budget", "0")
    target = report["targets"][0]
    assert (code, target["verdict"]) == (ExitCode.OK, "IDENTICAL")
    assert target["localization"]["status"] == "unsupported"
    assert "no float tensor" in target["localization"]["reason"]


def test_the_older_tensorflow_records_matching_layers(run_cli, host_golden):
    require(TF_OLDER_PYTHON.exists(), f"an interpreter with an older TensorFlow at {TF_OLDER_PYTHON}")
    _, _, _, report = run_cli("check", "--golden", str(host_golden), "--target", f"python:{TF_OLDER_PYTHON}",
                              "--latency-budget", "0")
    target = report["targets"][0]
    assert target["verdict"] != "ERROR", target["error"]
    where = target["localization"]
    assert where["status"] in ("ok", "identical"), where
    assert where["coverage"]["matched"] == where["coverage"]["reference"]
