"""Small file helpers: report names that sort as the reports were made, and reads that refuse what never ends."""
from __future__ import annotations

import os
import time

import pytest

from envcheck.files import read_regular_file, report_file_name


def test_a_report_name_never_rounds_into_a_second_that_has_not_begun():
    last_instant = 1_796_601_599_999_999_600  # 0.9999996 s into a second: rounding made it .000000 of this second
    assert report_file_name(last_instant) == "envcheck-20261206T235959.999999Z.json"
    assert report_file_name(last_instant) < report_file_name(last_instant + 400)


def test_names_sort_as_the_instants_they_name():
    instants = sorted(1_796_601_599_000_000_000 + step * 333_333_333 for step in range(12))
    names = [report_file_name(instant) for instant in instants]
    assert names == sorted(names)


def test_the_clock_is_read_once(monkeypatch):
    reads = []
    monkeypatch.setattr(time, "time_ns", lambda: reads.append(1) or 1_796_601_599_999_999_600)
    monkeypatch.setattr(time, "time", lambda: pytest.fail("a second read of the clock"))
    report_file_name()
    assert len(reads) == 1


def test_a_fifo_or_a_device_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file(tmp_path / "fifo.json")
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file("/dev/zero")


def test_a_file_past_the_limit_is_refused(tmp_path):
    (tmp_path / "big.json").write_bytes(b"x" * 2048)
    assert read_regular_file(tmp_path / "big.json", limit=4096) == b"x" * 2048
    with pytest.raises(OSError, match="larger than"):
        read_regular_file(tmp_path / "big.json", limit=1024)
