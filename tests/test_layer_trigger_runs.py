"""A layer record only when it can tell something (issue 24, item 1), in real runs: a golden made on this host
carries its outputs' digests; checked here, every output is bitwise the golden's and the probe skips its layer
record (the report says so); under a real drift knob (oneDNN off) the same default run records the layers and
localises the drift; `--layers always` records on an unchanged target. Goldens are made on the machine under
test, as every bitwise comparison must be."""
from __future__ import annotations

import json

from envcheck.errors import ExitCode
from envcheck.golden import expected_digests, load_golden

SKIPPED = "the target recorded no layers: every output bitwise equal to the golden's (--layers always records them)"


def test_the_golden_s_manifest_carries_its_outputs_digests(host_golden):
    golden = load_golden(host_golden)
    assert golden.manifest["expected_digests"] == expected_digests(golden.expected)


def test_an_unchanged_host_skips_the_layer_record_and_says_so(run_cli, host_golden, tmp_path):
    code, _, err, report = run_cli("check", "--golden", str(host_golden), "--latency-budget", "0")
    target = report["targets"][0]
    assert code == ExitCode.OK and target["verdict"] == "IDENTICAL", err
    assert target["localization"] == {"status": "unsupported", "reason": SKIPPED}
    # The capture says it too, and how long telling took (no record-layers stage ran).
    code, _, err, _ = run_cli("probe", "--golden", str(host_golden), "--out", str(tmp_path / "capture"),
                              "--latency-budget", "0", "--layers", "auto")
    assert code == ExitCode.OK, err
    capture = json.loads((tmp_path / "capture" / "capture.json").read_text())
    assert capture["layers"] == {"schema": "envcheck.layers/1", "status": "skipped",
                                 "reason": "every output bitwise equal to the golden's"}
    assert capture["stage"] != "record-layers" and "layers_s" in capture["timings"]


def test_layers_always_records_on_an_unchanged_target(run_cli, host_golden, tmp_path):
    code, _, err, report = run_cli("check", "--golden", str(host_golden), "--latency-budget", "0", "--layers", "always")
    assert code == ExitCode.OK, err
    assert report["targets"][0]["localization"]["status"] == "identical"
    # `envcheck probe` keeps a capture to compare later (with other sites' too): it records by default.
    code, _, err, _ = run_cli("probe", "--golden", str(host_golden), "--out", str(tmp_path / "capture"),
                              "--latency-budget", "0")
    assert code == ExitCode.OK, err
    layers = json.loads((tmp_path / "capture" / "capture.json").read_text())["layers"]
    assert (layers["status"], layers["trigger"]) == ("ok", "always")


def test_a_drifting_target_records_its_layers_in_the_run_that_found_the_drift(run_cli, golden_onednn_on, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    code, _, err, report = run_cli("check", "--golden", str(golden_onednn_on), "--latency-budget", "0")
    target = report["targets"][0]
    assert any(o["status"] != "identical" for o in target["outputs"].values()), "oneDNN off must move the outputs"
    where = target["localization"]
    assert where["status"] == "ok" and where["origins"], where
    code, _, err, _ = run_cli("probe", "--golden", str(golden_onednn_on), "--out", str(tmp_path / "capture"),
                              "--latency-budget", "0", "--layers", "auto")
    assert code == ExitCode.OK, err
    layers = json.loads((tmp_path / "capture" / "capture.json").read_text())["layers"]
    assert (layers["status"], layers["trigger"]) == ("ok", "outputs-differ")
