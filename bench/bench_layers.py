"""What the layer record costs: `envcheck probe --layers always` of a golden with a layer record against the
same probe with --layers never (the floor, measured in the same run, alternating), for the built-in golden and a MobileNetV2
(Keras', random weights) at 224×224×3. Printed as ratios and sizes, never as absolute times:

  wall time       median wall time of the probe with layers / without (both import TensorFlow, load the model,
                  run the golden set, repeat it, write the outputs)
  peak memory     peak RSS of the probe process with layers / without
  record          layers.json's size, its tensors and bytes per tensor (the issue's bound: 2 KB per tensor)

Usage:  python bench/bench_layers.py [--repeats 3] [--side 224]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_samples import BUILD, measured

REPO = Path(__file__).resolve().parents[1]


def envcheck(*argv: str) -> list[str]:
    return [sys.executable, "-m", "envcheck", *argv]


def make_golden(out: Path, model: Path | None) -> Path:
    source = ["--builtin"] if model is None else ["--model", str(model), "--samples", "16"]
    subprocess.run(envcheck("golden", "create", *source, "--no-calibrate", "--out", str(out)), check=True,
                   capture_output=True)
    return out


def compare(name: str, golden: Path, work: Path, repeats: int) -> None:
    runs: dict[str, list[dict]] = {"layers": [], "floor": []}
    for attempt in range(repeats):
        # Recorded whatever the outputs: a check's default (--layers auto) records only where an output differs.
        for kind, extra in (("floor", ["--layers", "never"]), ("layers", ["--layers", "always"])):
            out = work / f"{name}-{kind}-{attempt}"
            result = measured(envcheck("probe", "--golden", str(golden), "--out", str(out), "--latency-budget", "0",
                                       *extra))
            assert result["returncode"] == 0, result["stderr"]
            result["timings"] = json.loads((out / "capture.json").read_text())["timings"]
            runs[kind].append(result)
    wall = statistics.median(r["wall_s"] for r in runs["layers"]) / statistics.median(r["wall_s"] for r in runs["floor"])
    rss = max(r["rss_bytes"] for r in runs["layers"]) / max(r["rss_bytes"] for r in runs["floor"])
    stage = statistics.median(r["timings"]["layers_s"] / r["timings"]["run_s"] for r in runs["layers"])
    record = golden / "layers.json"
    tensors = len(json.loads(record.read_text())["tensors"])
    print(f"{name}: wall time ×{wall:.2f} · peak memory ×{rss:.2f} · layer stage {stage:.2f}× the golden pass · "
          f"layers.json {record.stat().st_size / 1024:.0f} KiB, {tensors} tensors, "
          f"{record.stat().st_size / tensors:.0f} bytes per tensor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--side", type=int, default=224)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envcheck-bench-layers-") as work_dir:
        work = Path(work_dir)
        compare("built-in golden", make_golden(work / "builtin", None), work, args.repeats)
        model = work / "mobilenet"
        subprocess.run([sys.executable, "-c", BUILD, str(model), str(args.side)], check=True, capture_output=True)
        compare(f"MobileNetV2 {args.side}×{args.side}×3", make_golden(work / "mobilenet-golden", model), work,
                args.repeats)


if __name__ == "__main__":
    main()
