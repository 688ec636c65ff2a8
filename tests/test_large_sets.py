"""Large input sets: `golden create --samples N` generates N seeded samples from the signature (plus edge
rows), and the probe runs any set in batches of the golden's `batch_size`, streaming outputs to disk, so
10,000 samples pass through a Docker target whose memory limit would kill a probe holding them whole."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from envcheck.errors import ExitCode
from envcheck.golden import load_golden, reseal
from helpers import docker_with_images

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_tensorflow")]

REFERENCE = "envcheck-fixture/reference"
SAMPLES, BATCH = 10_000, 250
# A small CNN: a batch of 250 needs ~40 MB of activations, all 10,000 samples at once ~1.3 GB per layer.
CONV_MODEL = """
import sys
import keras
inputs = keras.Input((32, 32, 3), name="image")
x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
outputs = keras.layers.Dense(10, activation="softmax", name="class_probs")(x)
keras.utils.set_random_seed(3)
keras.Model(inputs, outputs).export(sys.argv[1], verbose=False)
"""


@pytest.fixture(scope="module")
def large_golden(tmp_path_factory):
    """A golden of the CNN with 10,000 generated samples, made on this host in batches of 250."""
    root = tmp_path_factory.mktemp("large")
    subprocess.run([sys.executable, "-c", CONV_MODEL, str(root / "model")], check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model", str(root / "model"),
                             "--samples", str(SAMPLES), "--batch-size", str(BATCH), "--no-calibrate",
                             "--out", str(root / "golden")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return root / "golden"


def test_generated_samples_are_seeded_with_edge_rows_and_the_batch_size_is_the_goldens(large_golden, tmp_path):
    golden = load_golden(large_golden)
    assert golden.manifest["batch_size"] == BATCH
    with np.load(large_golden / "inputs.npz") as data:
        image = data["image"]
    assert image.shape == (SAMPLES, 32, 32, 3) and image.dtype == np.float32
    assert not image[-4].any() and np.all(image[-3] == 3) and np.all(image[-2] == -3)  # zeros, +3, -3 rows
    (expected,) = golden.expected.values()
    assert expected.shape == (SAMPLES, 10)


@pytest.fixture(scope="module")
def large_golden_in_reference_image(large_golden):
    """The same model and 10,000 inputs as a golden made in the reference image (no memory limit), in batches of
    250: that image checked against it is IDENTICAL, whatever this host is."""
    docker_with_images(REFERENCE).close()
    out = large_golden.parent / "golden-in-reference"
    result = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                             str(large_golden.parent / "model"), "--inputs", str(large_golden / "inputs.npz"),
                             "--batch-size", str(BATCH), "--target", f"docker:{REFERENCE}", "--no-calibrate",
                             "--no-layers", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def test_ten_thousand_samples_pass_a_memory_limit_that_holding_them_whole_would_break(
        run_cli, large_golden_in_reference_image, tmp_path):
    golden = large_golden_in_reference_image
    code, _, _, report = run_cli("check", "--golden", str(golden), "--target", f"docker:{REFERENCE}",
                                 "--memory", "1g", "--latency-budget", "0")
    target = report["targets"][0]
    assert target["error"] is None, target["error"]
    (output,) = target["outputs"].values()
    assert output["samples"] == SAMPLES
    assert (code, target["verdict"]) == (ExitCode.OK, "IDENTICAL"), target
    # The same set run as one batch is killed by the same limit: the limit is tight, batching is what passes it.
    whole = tmp_path / "whole"
    import shutil
    shutil.copytree(golden, whole)
    reseal(load_golden(whole), batch_size=SAMPLES)
    code, _, _, report = run_cli("check", "--golden", str(whole), "--target", f"docker:{REFERENCE}",
                                 "--memory", "1g", "--latency-budget", "0")
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "killed" and "out of memory" in error["message"], error
