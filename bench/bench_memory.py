"""Peak memory of comparing one large output, as a multiple of the output's size.

Builds a float32 golden output of about 500 MB (the size that used to peak at 24× while comparing) and a
copy with every third element moved two ULP, compares them with envcheck.compare.outputs.compare_output,
and prints:

  traced peak / output   the largest amount of memory allocated during the comparison, above what was
                         allocated before it (tracemalloc: NumPy reports its buffers to it);
  RSS growth / output    how far the process's peak resident set (getrusage ru_maxrss) rose during the
                         comparison: what the operating system saw;
  RSS peak / output      the process's peak resident set overall, the golden and its copy (2×) included.

Ratios, not absolute numbers or times, so that runs on different machines compare. Usage:

    python bench/bench_memory.py [--mb 500]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tracemalloc
from pathlib import Path

import numpy as np

# This checkout's envcheck, whatever another (editable) install on sys.path points to.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envcheck.compare.outputs import compare_output
from envcheck.model import Tolerance


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=500.0, help="output size in MB (default 500)")
    size = int(parser.parse_args().mb * 1e6) // 4
    golden = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
    actual = golden.copy()
    actual.view(np.int32)[::3] += 2  # two ULP further from zero: bitwise different, within tolerance
    rss_before = _max_rss_bytes()

    tracemalloc.start()
    result = compare_output("output", golden, actual, Tolerance())
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _max_rss_bytes()

    nbytes = golden.nbytes
    print(f"envcheck from {Path(sys.modules[compare_output.__module__].__file__ or '?').parents[2]}")
    print(f"output: float32 {golden.shape}, {nbytes / 1e6:.0f} MB; status {result.status}, max ULP {result.max_ulp}, "
          f"p99 ULP {result.p99_ulp:g}, changed {result.changed_fraction:.1%}")
    print(f"traced peak / output: {traced_peak / nbytes:.2f}×")
    print(f"RSS growth / output:  {(rss_after - rss_before) / nbytes:.2f}×")
    print(f"RSS peak / output:    {rss_after / nbytes:.2f}× (golden and actual themselves: 2×)")


if __name__ == "__main__":
    main()
