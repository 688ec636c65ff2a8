"""Captures are data from a site: whatever shape or size they come in, compare decides in bounded memory and
time, writes its report, and never crashes on one capture's odd fields (found by a review of the kit's reader)."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hostile.cases import good_capture

ENVCHECK = [sys.executable, "-m", "envcheck"]
MEMORY_CEILING_KB = 200 << 10
"""Far above what compare needs for a small capture (~40 MB), far below what the inflated bytes would take."""


# Runs the command as its only child and prints that child's peak resident memory (KB) as its last line.
MEASURED = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def _compare(*argv: str, cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """(the run, its peak resident memory in KB)."""
    result = subprocess.run([sys.executable, "-c", MEASURED, *ENVCHECK, "compare", *argv], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    *lines, peak = result.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(lines)), int(peak)


def _pax_bomb(path: Path, declared: int) -> Path:
    """A tiny tar.gz whose one PAX header declares `declared` bytes of zeros (tarfile reads it whole)."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.size, header.type = declared, tarfile.XHDTYPE
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        zeros, left = b"\0" * (1 << 20), declared + (-declared % 512)
        while left > 0:
            stream.write(zeros[:min(left, len(zeros))])
            left -= len(zeros)
        stream.write(b"\0" * 1024)
    return path


def test_an_archive_that_inflates_without_end_is_refused_in_bounded_memory(tmp_path):
    bomb = _pax_bomb(tmp_path / "capture.tar.gz", 600 << 20)
    assert bomb.stat().st_size < 2 << 20
    result, peak_kb = _compare(str(bomb), "--no-reports", cwd=tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert peak_kb < MEMORY_CEILING_KB, f"peak {peak_kb >> 10} MiB"


def test_a_fifo_in_a_capture_folder_is_refused_at_once(tmp_path):
    capture = good_capture(tmp_path)
    (capture / "outputs.npz").unlink()
    os.mkfifo(capture / "outputs.npz")
    result, _ = _compare(str(capture), "--no-reports", cwd=tmp_path)
    assert result.returncode == 3 and "not a regular file" in result.stdout + result.stderr, result.stderr


def test_a_huge_capture_document_is_refused_in_bounded_memory(tmp_path):
    capture = good_capture(tmp_path)
    with open(capture / "capture.json", "r+b") as document:
        document.truncate(300 << 20)  # sparse: no disk, but 300 MiB to whoever reads it whole
    result, peak_kb = _compare(str(capture), "--no-reports", cwd=tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert peak_kb < MEMORY_CEILING_KB, f"peak {peak_kb >> 10} MiB"


@pytest.mark.parametrize("path, value", [
    pytest.param(("integrity", "python", "numpy"), 7, id="integrity-record-not-an-object"),
    pytest.param(("native_libraries", "loaded", "libm"), {"kind": {"x": 1}, "version": "6"}, id="library-kind-an-object"),
])
def test_odd_fields_of_one_capture_never_cost_the_others_their_report(tmp_path, path, value):
    odd = good_capture(tmp_path, "odd")
    document = json.loads((odd / "capture.json").read_text())
    node = document["fingerprint"]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    (odd / "capture.json").write_text(json.dumps(document))
    good = good_capture(tmp_path, "good")
    result, _ = _compare(str(odd), str(good), "--reports-dir", str(tmp_path / "reports"), cwd=tmp_path)
    assert result.returncode in (0, 1) and "internal error" not in result.stderr, result.stderr
    (report,) = (tmp_path / "reports").glob("envcheck-*.json")
    assert len(json.loads(report.read_text())["targets"]) == 2
