"""Installed-file integrity (docs/integrity.md) on the reference image, two ratios measured in one run:

1. the integrity pass (the probe's own code, `--integrity numerics` and `full`) against a bare RECORD walk (read
   every RECORD with csv, hash each listed file in 1 MiB blocks, nothing else), both inside the reference image;
2. the whole check of the reference image with integrity on (the default, numerics) against `--integrity off`
   (`--latency-budget 0` on both, to cut noise): the first run, its digest table cache empty (every file hashed),
   then warm runs alternating with off runs, the median of each (the goal: warm at most 1.2).

The check runs in a child process beside TensorFlow's import and the model (stages.py, IntegrityCheck); the
digest table of the image's last probe (targets/integrity_cache.py) spares it re-hashing unchanged files. The
cache lives in a temporary XDG_CACHE_HOME here, so the first run is a true first run. Needs the Docker daemon and
the fixture images (python fixtures/images/build.py). Printed as ratios, with the seconds beside them.

Usage:  python bench/bench_integrity.py [--repeats 3] [--check-only]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "envcheck-fixture/reference"
PASS = r"""
import csv, hashlib, json, os, sys, time
sys.path.insert(0, "/probe")
from envcheck_probe import integrity

def bare_walk():
    for site in sorted(set(integrity.site_of(d) for d in integrity.installed().values())):
        for name in sorted(os.listdir(site)):
            record = os.path.join(site, name, "RECORD")
            if not name.endswith(".dist-info") or not os.path.isfile(record):
                continue
            with open(record, newline="") as handle:
                for row in csv.reader(handle):
                    if len(row) > 1 and row[1].startswith("sha256=") and not row[0].startswith(".."):
                        digest = hashlib.sha256()
                        with open(os.path.join(site, row[0]), "rb") as file:
                            for block in iter(lambda: file.read(1 << 20), b""):
                                digest.update(block)

def integrity_pass(mode):
    distributions = integrity.installed()
    recorded = integrity.recorded_files(distributions)
    integrity.python_integrity(distributions, recorded, mode)
    integrity.system_integrity(recorded, integrity.dpkg_index())

timings = {"bare": [], "numerics": [], "full": []}
bare_walk()  # the page cache warm for every measurement alike
for _ in range(int(sys.argv[1])):
    for name, run in (("bare", bare_walk), ("numerics", lambda: integrity_pass("numerics")),
                      ("full", lambda: integrity_pass("full"))):
        began = time.perf_counter()
        run()
        timings[name].append(time.perf_counter() - began)
print(json.dumps(timings))
"""


def pass_timings(repeats: int) -> dict[str, float]:
    """Median seconds of the bare RECORD walk and of the integrity pass, inside the reference image."""
    done = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v",
                           f"{REPO / 'envcheck' / 'probe'}:/probe:ro", IMAGE, "python3", "-c", PASS, str(repeats)],
                          capture_output=True, text=True, check=True)
    return {name: statistics.median(values) for name, values in json.loads(done.stdout).items()}


def check_seconds(golden: Path, integrity: str) -> float:
    """Wall seconds of one check of the reference image, its digest table cache beside the golden."""
    env = {**os.environ, "XDG_CACHE_HOME": str(golden.parent / "cache")}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "envcheck", "check", "--golden", str(golden), "--target", f"docker:{IMAGE}",
                    "--integrity", integrity, "--latency-budget", "0", "--reports-dir", str(golden.parent / "reports")],
                   capture_output=True, check=False, env=env)
    return time.perf_counter() - began


def main() -> None:
    """Print both ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-only", action="store_true", help="measure only the whole check (ratio 2)")
    args = parser.parse_args()
    if not args.check_only:
        seconds = pass_timings(args.repeats)
        print(f"integrity pass / bare RECORD walk: numerics {seconds['numerics'] / seconds['bare']:.2f}, "
              f"full {seconds['full'] / seconds['bare']:.2f}  (bare {seconds['bare']:.2f} s, numerics "
              f"{seconds['numerics']:.2f} s, full {seconds['full']:.2f} s)")
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-integrity-") as work:
        golden = Path(work) / "golden"
        subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                        str(REPO / "golden" / "default" / "model"), "--inputs", str(REPO / "golden" / "default" /
                        "inputs.npz"), "--target", f"docker:{IMAGE}", "--out", str(golden), "--no-calibrate"],
                       capture_output=True, check=True)
        first_off = check_seconds(golden, "off")
        first_on = check_seconds(golden, "numerics")  # its cache empty: every file hashed
        on, off = [], [first_off]
        for _ in range(args.repeats):
            on.append(check_seconds(golden, "numerics"))
            off.append(check_seconds(golden, "off"))
    print(f"check with integrity on / off, first run (cache empty): {first_on / first_off:.2f}  "
          f"(on {first_on:.2f} s, off {first_off:.2f} s)")
    print(f"check with integrity on / off, warm: {statistics.median(on) / statistics.median(off):.2f}  "
          f"(on {statistics.median(on):.2f} s, off {statistics.median(off):.2f} s, median of {args.repeats} "
          f"and {len(off)})")


if __name__ == "__main__":
    main()
