"""Benchmark: `envcheck golden create` (calibrated) against `golden create --no-calibrate`, in the same run.

    python bench/bench_golden_create.py [--repeat 3] [--target SPEC]

Both build the built-in model in a child, probe it in the reference target (default: this host) and seal a
bundle; the calibrated one also runs the calibration's perturbations (probe/envcheck_probe/calibrate.py:
three in the probe's own process, the rest in child probes side by side).          goal ≤ 2
Runs alternate, the ratio of medians is printed (bench_check.compare), then the calibrated golden's noise per
output, to hold against the previous calibration's.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_check import compare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target", default="host")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-") as work:
        create = [sys.executable, "-m", "envcheck", "golden", "create", "--builtin", "--target", args.target, "--force"]
        calibrated, plain = Path(work) / "calibrated", Path(work) / "plain"
        compare("create", [*create, "--out", str(calibrated)], [*create, "--out", str(plain), "--no-calibrate"],
                args.repeat, "≤ 2: calibrated over --no-calibrate")
        calibration = json.loads((calibrated / "manifest.json").read_text())["calibration"]
        for name, output in sorted(calibration["outputs"].items()):
            print(f"  {name}: noise {output.get('noise')}, calibrated atol {output.get('atol')}, "
                  f"rtol {output.get('rtol')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
