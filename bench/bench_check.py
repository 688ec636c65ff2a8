"""Benchmarks: envcheck against the floor measured in the same run, printed as ratios.

    python bench/bench_check.py [--repeat 5] [--skip-docker] [--skip-jobs] [--golden-in-image]

- host: `envcheck check` (host target) vs a bare script that imports TensorFlow, loads the same
  SavedModel and runs it once (the floor: what any check must at least do).           goal ≤ 1.2
- help: `envcheck --help` vs `python -c pass` (interpreter start-up).                  goal < 0.5 s
- docker: `envcheck check --target docker:IMAGE` vs `docker run --rm` of the same image
  running the same bare script on a read-only bind mount of the model.                goal ≤ 1.15
  --golden-in-image: against a golden made in that image first (`golden create --target docker:IMAGE`), as
  issue 24's "done when" measures it: an unchanged target, whose outputs are bitwise the golden's.
- jobs: four images with --jobs 2 vs --jobs 1 (speed-up on this machine's cores).

Runs alternate between the measured command and its floor, and the median of each is compared,
so background noise hits both sides alike. Absolute times are printed only as context.

After host and docker, the per-stage split (medians, seconds) of the check beside the floor's, so that the
next regression names its stage: envcheck's from the report's timings (the probe's stages; `outside the
probe` is the command's wall time less the probe's total: interpreter start-up, container start, copying the
probe and golden in and the capture back, comparing, reporting), the floor's from the bare script itself.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
SPLIT_MARK = "bench-split "
BARE_SCRIPT = """
import json, os, sys, time
started = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
imported = time.perf_counter()
model = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
loaded = time.perf_counter()
outputs = model.signatures["serving_default"](**{k: tf.constant(inputs[k]) for k in inputs.files})
sums = {k: float(v.numpy().sum()) for k, v in outputs.items()}
ran = time.perf_counter()
print(SPLIT_MARK + json.dumps({"import_s": imported - started, "load_s": loaded - imported, "run_s": ran - loaded}))
""".replace("SPLIT_MARK", repr(SPLIT_MARK))
# The check's stages as the report's timings name them (the probe's), in the order they run.
PROBE_STAGES = (("import TF", "import_s"), ("load model", "load_s"), ("run golden set", "run_s"),
                ("wait for integrity", "integrity_s"), ("repeat", "repeat_s"), ("latency", "latency_s"),
                ("tflite", "tflite_s"), ("layers", "layers_s"))
OUTSIDE = "outside the probe"
PROBE_OTHER = "probe: fingerprint, writes"


def timed(command: list[str], ok_codes=(0, 1)) -> tuple[float, str]:
    """(wall seconds, stdout) of one run."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, cwd=REPO, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.decode()[-800:]}")
    return elapsed, result.stdout.decode("utf-8", "replace")


def check_split(wall: float, report: Path) -> dict[str, float]:
    """envcheck's stages from its JSON report (one target): the probe's timings and what lies outside them."""
    timings = json.loads(report.read_text())["targets"][0].get("timings") or {}
    split = {label: timings.get(key, 0.0) for label, key in PROBE_STAGES}
    total = timings.get("total_s", 0.0)
    return {OUTSIDE: wall - total, PROBE_OTHER: total - sum(split.values()), **split}


def floor_split(wall: float, stdout: str) -> dict[str, float]:
    """The bare script's own import/load/run, and the rest (interpreter or container start, teardown)."""
    line = next((line for line in stdout.splitlines() if line.startswith(SPLIT_MARK)), None)
    if line is None:
        return {}
    timings = json.loads(line[len(SPLIT_MARK):])
    split = {label: timings.get(key, 0.0) for label, key in PROBE_STAGES if key in timings}
    return {OUTSIDE: wall - sum(split.values()), **split}


def compare(name: str, measured: list[str], floor: list[str], repeat: int, goal: str,
            report: Path | None = None) -> None:
    """Alternating runs, the ratio of medians; with `report` (the --json of `measured`), the split by stage."""
    timed(measured), timed(floor)  # warm the page cache and the daemon
    ours, base, our_splits, floor_splits = [], [], [], []
    for _ in range(repeat):
        wall, _ = timed(measured)
        ours.append(wall)
        if report is not None:
            our_splits.append(check_split(wall, report))
        wall, stdout = timed(floor)
        base.append(wall)
        floor_splits.append(floor_split(wall, stdout))
    ratio = statistics.median(ours) / statistics.median(base)
    print(f"{name:<8} ratio {ratio:5.2f}  (median {statistics.median(ours):.2f} s vs floor "
          f"{statistics.median(base):.2f} s, {repeat} runs each; goal {goal})", flush=True)
    if our_splits:
        print_split(our_splits, floor_splits)


def print_split(ours: list[dict[str, float]], floor: list[dict[str, float]]) -> None:
    """Per stage the median seconds of the check and of the floor (— where the floor has no such stage)."""
    print(f"  {'stage (median s)':<28} {'check':>7} {'floor':>7}")
    for label in (OUTSIDE, PROBE_OTHER, *(label for label, _ in PROBE_STAGES)):
        mine = statistics.median(split.get(label, 0.0) for split in ours)
        known = [split[label] for split in floor if label in split]
        base = f"{statistics.median(known):7.2f}" if known else f"{'—':>7}"
        print(f"  {label:<28} {mine:7.2f} {base}", flush=True)


def golden_in_image(envcheck: list[str], work: str) -> Path:
    """A golden of the built-in model and inputs made in IMAGE: the check then meets an unchanged target."""
    out = Path(work) / "golden-in-image"
    started = time.perf_counter()
    timed([*envcheck, "golden", "create", "--target", f"docker:{IMAGE}", "--model", str(GOLDEN / "model"),
           "--inputs", str(GOLDEN / "inputs.npz"), "--out", str(out)], ok_codes=(0,))
    print(f"golden made in {IMAGE} in {time.perf_counter() - started:.0f} s: {out}", flush=True)
    return out


def main() -> int:
    """Every comparison, printed as it is measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--skip-jobs", action="store_true", help="measure no --jobs speed-up (four images, minutes)")
    parser.add_argument("--golden-in-image", action="store_true",
                        help=f"measure docker against a golden made in {IMAGE} first (golden create --target)")
    args = parser.parse_args()
    reports = tempfile.mkdtemp(prefix="envcheck-bench-")
    report = Path(reports) / "bench-report.json"
    envcheck = [sys.executable, "-m", "envcheck"]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(BARE_SCRIPT)

    compare("host", [*envcheck, "check", "--reports-dir", reports, "--json", str(report)],
            [sys.executable, script.name, str(GOLDEN / "model"), str(GOLDEN / "inputs.npz")], args.repeat, "≤ 1.2",
            report)
    compare("help", [*envcheck, "--help"], [sys.executable, "-c", "pass"], args.repeat * 2, "< 0.5 s absolute")
    if not args.skip_docker:
        golden = golden_in_image(envcheck, reports) if args.golden_in_image else GOLDEN
        mount = ["-v", f"{golden}:/golden:ro", "-v", f"{script.name}:/bare.py:ro"]
        compare("docker", [*envcheck, "check", "--golden", str(golden), "--target", f"docker:{IMAGE}",
                           "--reports-dir", reports, "--json", str(report)],
                ["docker", "run", "--rm", "--network", "none", *mount, IMAGE, "python3", "/bare.py",
                 "/golden/model", "/golden/inputs.npz"], args.repeat, "≤ 1.15", report)
    if not args.skip_docker and not args.skip_jobs:
        many = [a for name in FOUR_IMAGES for a in ("--target", f"docker:envcheck-fixture/{name}")]
        compare("jobs", [*envcheck, "check", *many, "--jobs", "2", "--reports-dir", reports],
                [*envcheck, "check", *many, "--jobs", "1", "--reports-dir", reports], max(2, args.repeat // 2),
                "< 1: --jobs 2 time over --jobs 1 time")
    os.unlink(script.name)
    shutil.rmtree(reports, ignore_errors=True)  # the reports and the golden made in the image
    return 0


if __name__ == "__main__":
    sys.exit(main())
