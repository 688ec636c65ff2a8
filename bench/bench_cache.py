"""The capture cache: `envcheck fleet run` over unchanged images (every capture reused) against the same run
with an empty cache (every image probed), measured in the same run, alternating. Printed as a ratio (the goal:
at most 0.1), never as absolute times.

Two sites on the local daemon, each checking the fixture images (python fixtures/images/build.py) against a
golden made in the reference image.

Usage:  python bench/bench_cache.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = ("reference", "onednn-off", "tf-older", "nonroot")
GOLDEN_SOURCE = Path(__file__).resolve().parents[1] / "golden" / "default"


def envcheck(*argv: str) -> list[str]:
    return [sys.executable, "-m", "envcheck", *argv]


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-cache-") as work_dir:
        work = Path(work_dir)
        subprocess.run(envcheck("golden", "create", "--model", str(GOLDEN_SOURCE / "model"), "--inputs",
                                str(GOLDEN_SOURCE / "inputs.npz"), "--target", "docker:envcheck-fixture/reference",
                                "--no-calibrate", "--out", str(work / "golden")), check=True, capture_output=True)
        targets = ", ".join(f'"docker:envcheck-fixture/{name}"' for name in IMAGES)
        inventory = work / "fleet.toml"
        inventory.write_text(f'golden = "{work / "golden"}"\n'
                             + "".join(f'[[site]]\nname = "plant-{n}"\ntargets = [{targets}]\n' for n in (1, 2)))
        run = envcheck("fleet", "run", str(inventory), "--reports-dir", str(work / "reports"), "--jobs", "1")
        cold, warm = [], []
        for _ in range(args.repeats):
            shutil.rmtree(work / "reports", ignore_errors=True)
            cold.append(timed(run))  # an empty cache: every image probed (and kept)
            warm.append(timed(run))  # nothing changed: every capture reused
        ratio = statistics.median(warm) / statistics.median(cold)
        print(f"fleet run, 2 sites × {len(IMAGES)} images: re-run over unchanged images ×{ratio:.3f} of the cold run "
              f"(goal ≤ 0.1; median of {args.repeats} alternating pairs)")


if __name__ == "__main__":
    main()
