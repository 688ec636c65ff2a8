"""Benchmark `envcheck review` over a realistic fleet: 50 sites × 10 images × 20 days = 10,000 reports.

    python bench/bench_review.py [--sizes 1000 10000]

Reports are built from the real recorded reports in fixtures/reports/recorded/ (each target entry is
a real capture's result: IDENTICAL, oneDNN-off WARN, AVX2 WARN, bf16 FAIL, older-TF FAIL, no-TF ERROR…),
assigned to site × image × day with a seeded mix (most sites match; a few drift; some fail to run).
Printed per size: review time over the floor (a bare loop that json-parses the same files), peak
memory of the review process, and how time grows from the smallest size to the largest.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "fixtures" / "reports" / "recorded"
SITES, IMAGES, DAYS = 50, 10, 20
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
FLOOR = "import json, pathlib, sys\nfor p in pathlib.Path(sys.argv[1]).glob('*.json'): json.loads(p.read_bytes())\n"


def templates() -> tuple[list[dict], list[dict]]:
    """Recorded target entries split into those that match the golden's outputs and those that do not."""
    matching, drifting = [], []
    for path in sorted(RECORDED.glob("*.json")):
        for target in json.loads(path.read_text())["targets"]:
            identical = target["outputs"] and all(o["status"] == "identical" for o in target["outputs"].values())
            (matching if identical else drifting).append(target)
    return matching, drifting


def build_fleet(directory: Path, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    base = json.loads((RECORDED / "beijing-1.json").read_text())
    matching, drifting = templates()
    drifting_sites = set(rng.sample(range(SITES), 6))  # the "Shenzhen" problem: a few sites drift
    written = 0
    for day in range(DAYS):
        for site in range(SITES):
            for image in range(IMAGES):
                if written == count:
                    return
                pool = drifting if site in drifting_sites and rng.random() < 0.7 else matching
                target = dict(rng.choice(pool), spec=f"docker:factory/vision-{image}", site=f"site-{site:02d}")
                report = dict(base, created=f"2026-11-{day + 1:02d}T{6 + image:02d}:00:00Z", targets=[target],
                              exit_code={"ERROR": 3, "FAIL": 1}.get(target["verdict"], 0),
                              summary={target["verdict"]: 1})
                (directory / f"site-{site:02d}-vision-{image}-day{day + 1:02d}.json").write_text(json.dumps(report))
                written += 1


def measure(command: list[str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    timings = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="envcheck-fleet-") as work:
            reports = Path(work) / "reports"
            reports.mkdir()
            build_fleet(reports, size)
            floor, _ = measure([sys.executable, "-c", FLOOR, str(reports)])
            review, kib = measure([sys.executable, "-m", "envcheck", "review", str(reports), "--csv",
                                   f"{work}/fleet.csv", "--html", f"{work}/fleet.html"])
            timings[size] = review
            print(f"{size:>6} reports: review/floor {review / floor:4.2f} (review {review:.2f} s, json-parse floor "
                  f"{floor:.2f} s), peak memory {kib / 1024:.0f} MiB; goal < 10 s and < 1024 MiB at 10,000", flush=True)
    sizes = sorted(timings)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"growth: ×{large / small:.0f} reports → ×{timings[large] / timings[small]:.1f} time (linear = "
              f"×{large / small:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
