"""Benchmark `envcheck review` over a realistic fleet: 50 sites × 10 images, day after day.

    python bench/bench_review.py [--sizes 1000 10000 100000] [--repeat 3]

Reports are built from the real recorded reports in fixtures/reports/recorded/ (each target entry is
a real capture's result: IDENTICAL, oneDNN-off WARN, AVX2 WARN, bf16 FAIL, older-TF FAIL, no-TF ERROR…),
assigned to site × image × day with a seeded mix (most sites match; a few drift; some fail to run); a
report is one target, 8 to 16 kB, and the fleet's last day is today (100,000 reports: about 210 days).

Printed per size, as the median of --repeat reviews, each over the floor measured just before it (a bare loop
that json-parses the same files with the standard library, as the issue defines it): the first review, which
builds the incremental index (envcheck/review/store.py) beside the reports, then a review after 1 % new
reports (the next days), each for the command as a person runs it (terminal) and with the HTML page and the
CSV of every run; peak memory of the review process; the floor of msgspec's parse, which the review uses; what
any review in Python pays before its own work (importing pandas, pyarrow and rich; one stat of each file),
which bounds how cheap a review with 1 % new can be; and how the first review grows from the smallest size to
the largest.
"""
from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import statistics
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
MSGSPEC_FLOOR = FLOOR.replace("import json", "import msgspec").replace("json.loads", "msgspec.json.decode")
IMPORTS = "import pandas, pyarrow.parquet, rich"
STATS = "import os, sys\nfor entry in os.scandir(sys.argv[1]):\n    entry.stat()\n"
"""What any review in Python pays before its own work: the libraries it needs, and one stat of each file (a
report rewritten in place changes only its size and mtime, so each must be looked at)."""


def templates() -> tuple[list[dict], list[dict]]:
    """Recorded target entries split into those that match the golden's outputs and those that do not."""
    matching, drifting = [], []
    for path in sorted(RECORDED.glob("*.json")):
        for target in json.loads(path.read_text())["targets"]:
            identical = target["outputs"] and all(o["status"] == "identical" for o in target["outputs"].values())
            (matching if identical else drifting).append(target)
    return matching, drifting


def first_day(largest: int, repeat: int) -> datetime.date:
    """The fleet's first day: its last report (the largest size, and the 1 % added before each review with
    new reports) is dated today, so that none is refused as dated in the future."""
    added = largest * (100 + 2 * repeat) // 100
    return datetime.date.today() - datetime.timedelta(days=-(-added // (SITES * IMAGES)))


def build_fleet(directory: Path, count: int, start: datetime.date, seed: int = 1, first: int = 0) -> None:
    """Reports number `first` to `first + count` - 1: site × image on each day, day after day from `start`."""
    rng = random.Random(seed + first)
    base = json.loads((RECORDED / "beijing-1.json").read_text())
    matching, drifting = templates()
    drifting_sites = set(random.Random(seed).sample(range(SITES), 6))  # the "Shenzhen" problem: a few sites drift
    for number in range(first, first + count):
        day, slot = divmod(number, SITES * IMAGES)
        site, image = divmod(slot, IMAGES)
        pool = drifting if site in drifting_sites and rng.random() < 0.7 else matching
        target = dict(rng.choice(pool), spec=f"docker:factory/vision-{image}", site=f"site-{site:02d}")
        date = start + datetime.timedelta(days=day)
        report = dict(base, created=f"{date.isoformat()}T{6 + image:02d}:00:00Z", targets=[target],
                      exit_code={"ERROR": 3, "FAIL": 1}.get(target["verdict"], 0), summary={target["verdict"]: 1})
        (directory / f"site-{site:02d}-vision-{image}-day{day + 1:03d}.json").write_text(json.dumps(report))


def measure(command: list[str]) -> tuple[float, int]:
    """(seconds, peak memory in KiB) of a command run in a child process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib)


def main() -> int:
    """Build each fleet size, review it cold, add 1 % new reports, review again; print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="reviews of each kind; the median ratio is printed")
    args = parser.parse_args()
    timings = {}
    start = first_day(max(args.sizes), args.repeat)
    for size in sorted(args.sizes):
        with tempfile.TemporaryDirectory(prefix="envcheck-fleet-") as work:
            reports = Path(work) / "reports"
            reports.mkdir()
            build_fleet(reports, size, start)
            terminal = [sys.executable, "-m", "envcheck", "review", str(reports)]
            pages = [*terminal, "--csv", f"{work}/fleet.csv", "--html", f"{work}/fleet.html"]
            added = size
            ratios: dict[str, float] = {}
            memory = []
            for kind, command in (("first", terminal), ("first+pages", pages), ("new", terminal),
                                  ("new+pages", pages)):
                each = []
                for _ in range(args.repeat):  # (each review over the floor measured just before it)
                    if kind.startswith("first"):
                        shutil.rmtree(reports / ".envcheck-review-index", ignore_errors=True)
                    else:  # 1 % new reports, the next days
                        build_fleet(reports, size // 100, start, first=added)
                        added += size // 100
                    floor, _ = measure([sys.executable, "-c", FLOOR, str(reports)])
                    seconds, kib = measure(command)
                    each.append(seconds / floor)
                    memory.append(kib)
                    if kind == "first":
                        timings[size] = min(timings.get(size, seconds), seconds)
                ratios[kind] = statistics.median(each)
            floor, _ = measure([sys.executable, "-c", FLOOR, str(reports)])
            fast = measure([sys.executable, "-c", MSGSPEC_FLOOR, str(reports)])[0] / floor
            imports = measure([sys.executable, "-c", IMPORTS])[0] / floor
            stats = measure([sys.executable, "-c", STATS, str(reports)])[0] / floor
            print(f"{size:>6} reports, over a bare json parse of them (median of {args.repeat}): first review "
                  f"{ratios['first']:4.2f} (with HTML and CSV {ratios['first+pages']:4.2f}), with 1 % new "
                  f"{ratios['new']:5.3f} (with HTML and CSV {ratios['new+pages']:5.3f}); peak memory "
                  f"{max(memory) / 1024:.0f} MiB (goals: 1.5, 0.2, < 1024 MiB); a bare msgspec parse: {fast:4.2f}; "
                  f"a process that imports pandas, pyarrow and rich: {imports:5.3f}, one that stats every file: "
                  f"{stats:5.3f}", flush=True)
    sizes = sorted(timings)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"growth of the first review: ×{large / small:.0f} reports → ×{timings[large] / timings[small]:.1f} time "
              f"(linear = ×{large / small:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
