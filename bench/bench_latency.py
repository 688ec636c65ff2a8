"""The latency stage's stopping rule against its false alarms: the host probed RUNS times, each run in a fresh
process timing the built-in model both ways, in alternating order:

  budget   the old stage, forced: timed calls for the whole budget (the rule's goals set below zero)
  stop     the stage as it is: timed calls until the P50 and the mean (what the gate judges) are known to 5 %
           (95 % intervals) or the budget
  no-ref   the stage for a golden without a latency reference (the built-in golden): P50 alone, 0.25 s at most

Printed per mode: calls, seconds of timed calls and of the whole stage, why it stopped; the P50 and mean of each
run as ratios to the median run (as issue 13 measured the gate's ratios); and `latency-slower` findings of the
gate's own judgement (compare/latency.py, default policy): against the first run as the golden's reference (the
count out of RUNS), and over every ordered pair of runs (each run the reference of every other).

Not a test: minutes of TensorFlow on a shared machine. Usage:  python bench/bench_latency.py [--runs 40]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "golden" / "default"
MODES = ("budget", "stop")


def child(out: Path, budget_s: float, first_mode: str) -> None:
    """One fresh process: import TensorFlow, load the built-in model, run its first batch once (as run-model
    does), then the latency stage in each mode; the records go to `out` as JSON."""
    sys.path.insert(0, str(ROOT / "envcheck" / "probe"))
    from envcheck_probe import latency
    from envcheck_probe.batches import golden_batch_size
    from envcheck_probe.inputs import InputSet
    from envcheck_probe.model import call_signature, import_tensorflow, load_signature, signature_feeds

    tf, np = import_tensorflow()
    _loaded, signature = load_signature(tf, str(GOLDEN / "model"))
    first = InputSet(np, str(GOLDEN / "inputs.npz")).first(golden_batch_size(str(GOLDEN)))
    call_signature(signature, signature_feeds(tf, np, signature, first))
    goals, records = latency.WITH_REFERENCE, {}
    for mode in (MODES if first_mode == MODES[0] else MODES[::-1]) + ("no-ref",):
        latency.WITH_REFERENCE = {fraction: -1.0 for fraction in goals} if mode == "budget" else goals
        began = time.perf_counter()
        # None: no manifest, a golden create's reference run (P50 and P99); the built-in golden has no reference.
        record = latency.latency_record(tf, np, signature, first, budget_s, str(GOLDEN) if mode == "no-ref" else None)
        records[mode] = {**record, "stage_s": time.perf_counter() - began}
    out.write_text(json.dumps(records))


def probe_runs(runs: int, budget_s: float, work: Path) -> list[dict]:
    """Each run's records by mode, one fresh process per run, the mode that goes first alternating."""
    found = []
    for index in range(runs):
        out = work / f"run-{index}.json"
        subprocess.run([sys.executable, __file__, "--child", str(out), "--budget", str(budget_s),
                        "--first", MODES[index % 2]], check=True, capture_output=True)
        found.append(json.loads(out.read_text()))
        print(f"\rrun {index + 1}/{runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return found


def slower(target: dict, reference: dict) -> bool:
    """Whether the gate's judgement finds `target` slower than a golden whose reference run was `reference`."""
    from envcheck.compare.latency import LatencyPolicy, compare_latency, reference_latency

    _, findings = compare_latency(target, {}, reference_latency(reference, {}), LatencyPolicy())
    return any(f.code == "latency-slower" for f in findings)


def spread(values: list[float]) -> str:
    """The smallest and largest value as ratios to the median: 0.79–1.46."""
    middle = statistics.median(values)
    return f"{min(values) / middle:.2f}–{max(values) / middle:.2f}"


def summary(mode: str, records: list[dict]) -> str:
    """One mode's lines: cost, why it stopped, precision; for the two gated modes the ratios and false alarms."""
    def median(key: str) -> float:
        return statistics.median(r[key] for r in records)

    calls = [r["calls"] for r in records]
    stable = sum(r["stopped"] == "stable" for r in records)
    p99 = [r["precision"].get("p99") for r in records if r["precision"].get("p99") is not None]
    lines = [f"{mode:7} calls median {statistics.median(calls):.0f} ({min(calls)}–{max(calls)}), "
             f"timed {median('timed_s'):.3f} s, stage {median('stage_s'):.3f} s; "
             f"stopped stable {stable}/{len(records)}; precision median P50 "
             f"{statistics.median(r['precision']['p50'] for r in records):.3f}"
             + (f", P99 {statistics.median(p99):.3f}" if p99 else "")]
    if mode in MODES:
        reference, targets = records[0], records[1:]
        pairs = [slower(t, r) for i, r in enumerate(records) for j, t in enumerate(records) if i != j]
        lines.append(f"{'':7} P50 ratios to the median run {spread([r['p50_s'] for r in records])}, means "
                     f"{spread([r['mean_s'] for r in records])}; latency-slower against run 0 as the reference: "
                     f"{sum(slower(t, reference) for t in targets)}/{len(targets)}; over every ordered pair: "
                     f"{sum(pairs)}/{len(pairs)}")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments; run the child, or the runs and the summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="target runs (one more is the reference)")
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--keep", type=Path, help="also write every run's records to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--first", choices=MODES, default=MODES[0], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.budget, args.first)
        return
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-latency-") as work:
        runs = probe_runs(args.runs + 1, args.budget, Path(work))
    if args.keep:
        args.keep.write_text(json.dumps(runs))
    loads = [run[MODES[0]]["context"]["loadavg_1m"] for run in runs if run[MODES[0]]["context"]["loadavg_1m"] is not None]
    print(f"built-in model, host, budget {args.budget:g} s, {args.runs} runs + 1 reference (fresh processes)"
          + (f"; load average (1 min) {min(loads):g}–{max(loads):g}" if loads else ""))
    for mode in (*MODES, "no-ref"):
        print(summary(mode, [run[mode] for run in runs]))


if __name__ == "__main__":
    main()
