"""A large input set through the probe: time per sample and peak memory of `envcheck probe` on a
MobileNet-sized model (Keras' MobileNetV2, random weights, 96×96×3 inputs) at 10,000 generated samples,
against the floor measured in the same run: a bare loop in one Python process that imports TensorFlow,
loads the same SavedModel, holds the same inputs in memory and calls the signature over the same batches.

Printed as ratios to the floor, never as absolute times (these machines are shared and noisy):

  end to end          wall time of `envcheck probe` / wall time of the bare process (both import TensorFlow,
                      load the model, run every batch, write the outputs)
  per sample          the probe's run-model stage / the bare loop's batches, per sample
  peak memory         peak RSS of the probe process / of the bare process, and the difference against the
                      inputs' size (both hold the model, TensorFlow and a batch's activations; the bare loop
                      also holds the whole input set)

Usage:  python bench/bench_samples.py [--samples 10000] [--batch-size 256] [--side 96]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = """
import sys, keras
keras.utils.set_random_seed(0)
side = int(sys.argv[2])
keras.applications.MobileNetV2(weights=None, input_shape=(side, side, 3), classes=1000).export(sys.argv[1], verbose=False)
"""
BARE = """
import json, sys, time
import numpy as np, tensorflow as tf
model_dir, inputs_path, out_path, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
signature = tf.saved_model.load(model_dir).signatures["serving_default"]
with np.load(inputs_path) as data:
    inputs = {name: data[name] for name in data.files}
rows = len(next(iter(inputs.values())))
began = time.perf_counter()
parts = [{k: v.numpy() for k, v in signature(**{n: tf.constant(a[i:i + batch]) for n, a in inputs.items()}).items()}
         for i in range(0, rows, batch)]
loop_s = time.perf_counter() - began
np.savez(out_path, **{name: np.concatenate([p[name] for p in parts]) for name in parts[0]})
print(json.dumps({"loop_s": loop_s}))
"""
# Runs a command and prints its wall time and the peak RSS of its process tree's largest process.
MEASURE = """
import json, resource, subprocess, sys, time
began = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - began
print(json.dumps({"wall_s": wall, "rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                  "returncode": done.returncode, "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:]}))
"""


def measured(command: list[str]) -> dict:
    """Wall time and peak RSS of `command`, measured in a fresh process so that no other child counts."""
    result = json.loads(subprocess.run([sys.executable, "-c", MEASURE, *command], check=True,
                                       capture_output=True, text=True).stdout)
    if result["returncode"] != 0:
        raise SystemExit(f"{' '.join(command[:4])} … failed:\n{result['stderr']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--side", type=int, default=96, help="input image side (default 96)")
    args = parser.parse_args()
    envcheck = [sys.executable, "-m", "envcheck"]
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-") as work:
        root = Path(work)
        subprocess.run([sys.executable, "-c", BUILD, str(root / "model"), str(args.side)], check=True,
                       capture_output=True)
        subprocess.run([*envcheck, "golden", "create", "--model", str(root / "model"), "--samples", str(args.samples),
                        "--batch-size", str(args.batch_size), "--no-calibrate", "--out", str(root / "golden")],
                       check=True, capture_output=True, cwd=REPO)
        inputs_bytes = (root / "golden" / "inputs.npz").stat().st_size
        bare = measured([sys.executable, "-c", BARE, str(root / "golden" / "model"),
                         str(root / "golden" / "inputs.npz"), str(root / "bare.npz"), str(args.batch_size)])
        probe = measured([*envcheck, "probe", "--golden", str(root / "golden"), "--out", str(root / "capture"),
                          "--latency-budget", "0"])
        capture = json.loads((root / "capture" / "capture.json").read_text())
        loop_s = json.loads(bare["stdout"].strip().splitlines()[-1])["loop_s"]
    print(f"MobileNetV2 {args.side}×{args.side}×3, {args.samples} samples in batches of {args.batch_size}; "
          f"inputs {inputs_bytes / 1e6:.0f} MB")
    print(f"end to end:  envcheck probe / bare process = {probe['wall_s'] / bare['wall_s']:.2f}×")
    print(f"per sample:  probe run-model stage / bare loop = {capture['timings']['run_s'] / loop_s:.2f}×")
    print(f"peak memory: probe / bare process = {probe['rss_bytes'] / bare['rss_bytes']:.2f}×; "
          f"(bare − probe) / inputs = {(bare['rss_bytes'] - probe['rss_bytes']) / inputs_bytes:.2f}× "
          "(1: the bare loop's extra is the input set it holds whole)")


if __name__ == "__main__":
    main()
