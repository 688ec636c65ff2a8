"""Run-to-run determinism: the probe repeats the golden pass; a target that does not repeat bitwise where
the reference did is a finding with its own spread (unit rules, then a real model with a random op)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from envcheck.compare.determinism import determinism_findings, reference_determinism
from envcheck.compare.policy import build_policy
from envcheck.compare.severity import resolve_findings
from envcheck.errors import ExitCode

REPEATABLE = {"bitwise_repeatable": True, "max_abs_spread": {"logits": 0.0}}
VARIES = {"passes": 2, "bitwise_repeatable": False, "max_abs_spread": {"logits": 3.1e-7, "labels": 0.0}}


def test_a_target_that_varies_where_the_reference_repeated_is_a_warning_with_its_spread():
    (finding,) = determinism_findings(VARIES, REPEATABLE)
    assert (finding.code, finding.severity) == ("nondeterministic-outputs", "warn")
    assert finding.message == ("two passes over the golden inputs differ: logits by up to 3.1e-07; "
                               "the reference repeated bitwise")
    assert "TF_DETERMINISTIC_OPS=1" in finding.hint


def test_no_finding_when_the_target_repeats_or_the_reference_did_not():
    assert determinism_findings(REPEATABLE, REPEATABLE) == ()
    assert determinism_findings(VARIES, {"bitwise_repeatable": False}) == ()
    assert determinism_findings(VARIES, None) == ()  # an older golden recorded nothing
    assert determinism_findings({"skipped": "the second pass failed: OOM"}, REPEATABLE) == ()
    assert determinism_findings(None, REPEATABLE) == ()


def test_the_finding_is_proposed_at_warn_and_the_policy_decides():
    (finding,) = determinism_findings(VARIES, REPEATABLE)
    assert finding.severity == "warn"
    policy = build_policy({"severity": {"finding.nondeterministic-outputs": "fail"}})
    assert [f.severity for f in resolve_findings([finding], policy)] == ["fail"]
    assert reference_determinism(VARIES) == {"bitwise_repeatable": False, "max_abs_spread": VARIES["max_abs_spread"]}
    assert reference_determinism({"skipped": "x"}) is None


RANDOM_MODEL = """
import sys, numpy as np, tensorflow as tf
class Noisy(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        # An unseeded random op: every call scales by a different 1 + <1e-6, a few ULP, inside the band.
        return {"logits": x * 2.0 * (1.0 + 1e-6 * tf.random.uniform(tf.shape(x)))}
module = Noisy()
tf.saved_model.save(module, sys.argv[1], signatures={"serving_default": module.serve})
np.savez(sys.argv[2], x=np.linspace(1, 2, 32, dtype=np.float32).reshape(8, 4))
"""


def test_a_model_with_a_random_op_is_caught_where_the_reference_repeated(run_cli, tmp_path, needs_tensorflow):
    """The reference itself runs the same random op, so its golden honestly records 'not repeatable' and
    no target is blamed. To see the finding, the golden's record is then set to what a reference without
    the random op (or with deterministic kernels) would have recorded: repeatable."""
    model, inputs, golden = tmp_path / "model", tmp_path / "inputs.npz", tmp_path / "golden"
    subprocess.run([sys.executable, "-c", RANDOM_MODEL, str(model), str(inputs)], check=True, capture_output=True)
    code, _, err, _ = run_cli("golden", "create", "--model", str(model), "--inputs", str(inputs), "--out", str(golden),
                              "--no-calibrate")
    assert code == ExitCode.OK, err
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["determinism"]["bitwise_repeatable"] is False
    assert 0 < manifest["determinism"]["max_abs_spread"]["logits"] < 1e-5
    code, _, _, report = run_cli("check", "--golden", str(golden), "--latency-budget", "0")
    assert "nondeterministic-outputs" not in [f["code"] for f in report["targets"][0]["findings"]]
    manifest["determinism"] = {"bitwise_repeatable": True, "max_abs_spread": {"logits": 0.0}}
    (golden / "manifest.json").write_text(json.dumps(manifest))
    code, out, _, report = run_cli("check", "--golden", str(golden), "--latency-budget", "0")
    target = report["targets"][0]
    (finding,) = [f for f in target["findings"] if f["code"] == "nondeterministic-outputs"]
    assert finding["severity"] == "warn" and "logits by up to" in finding["message"]
    assert target["verdict"] == "WARN" and code == ExitCode.OK and "nondeterministic-outputs" in out
    assert np.isfinite(target["outputs"]["logits"]["max_abs"])
