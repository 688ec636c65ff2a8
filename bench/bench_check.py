"""Benchmarks: envcheck against the floor measured in the same run, printed as ratios.

    python bench/bench_check.py [--repeat 5] [--skip-docker]

- host: `envcheck check` (host target) vs a bare script that imports TensorFlow, loads the same
  SavedModel and runs it once (the floor: what any check must at least do).           goal ≤ 1.2
- help: `envcheck --help` vs `python -c pass` (interpreter start-up).                  goal < 0.5 s
- docker: `envcheck check --target docker:IMAGE` vs `docker run --rm` of the same image
  running the same bare script on a read-only bind mount of the model.                goal ≤ 1.15
- jobs: four images with --jobs 2 vs --jobs 1 (speed-up on this machine's cores).

Runs alternate between the measured command and its floor, and the median of each is compared,
so background noise hits both sides alike. Absolute times are printed only as context.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "golden" / "default"
IMAGE = "envcheck-fixture/reference"
FOUR_IMAGES = ["reference", "onednn-off", "nonroot", "tf-older"]
BARE_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
outputs = model.signatures["serving_default"](**{k: tf.constant(inputs[k]) for k in inputs.files})
print({k: v.numpy().sum() for k, v in outputs.items()})
"""


def timed(command: list[str], ok_codes=(0, 1)) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.decode()[-800:]}")
    return elapsed


def compare(name: str, measured: list[str], floor: list[str], repeat: int, goal: str) -> None:
    timed(measured), timed(floor)  # warm the page cache and the daemon
    ours, base = [], []
    for _ in range(repeat):
        ours.append(timed(measured))
        base.append(timed(floor))
    ratio = statistics.median(ours) / statistics.median(base)
    print(f"{name:<8} ratio {ratio:5.2f}  (median {statistics.median(ours):.2f} s vs floor "
          f"{statistics.median(base):.2f} s, {repeat} runs each; goal {goal})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-docker", action="store_true")
    args = parser.parse_args()
    reports = tempfile.mkdtemp(prefix="envcheck-bench-")
    envcheck = [sys.executable, "-m", "envcheck"]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(BARE_SCRIPT)

    compare("host", [*envcheck, "check", "--reports-dir", reports],
            [sys.executable, script.name, str(GOLDEN / "model"), str(GOLDEN / "inputs.npz")], args.repeat, "≤ 1.2")
    compare("help", [*envcheck, "--help"], [sys.executable, "-c", "pass"], args.repeat * 2, "< 0.5 s absolute")
    if not args.skip_docker:
        mount = ["-v", f"{GOLDEN}:/golden:ro", "-v", f"{script.name}:/bare.py:ro"]
        compare("docker", [*envcheck, "check", "--target", f"docker:{IMAGE}", "--reports-dir", reports],
                ["docker", "run", "--rm", "--network", "none", *mount, IMAGE, "python3", "/bare.py",
                 "/golden/model", "/golden/inputs.npz"], args.repeat, "≤ 1.15")
        many = [a for name in FOUR_IMAGES for a in ("--target", f"docker:envcheck-fixture/{name}")]
        compare("jobs", [*envcheck, "check", *many, "--jobs", "2", "--reports-dir", reports],
                [*envcheck, "check", *many, "--jobs", "1", "--reports-dir", reports], max(2, args.repeat // 2),
                "< 1: --jobs 2 time over --jobs 1 time")
    os.unlink(script.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
