"""What the review's index is measured against: the fleet a review reading every file gives, compared in full.

Shared by the index's tests (tests/report/test_review_store.py, tests/review/): an index is a shortcut, and a
shortcut is right only when it gives exactly what the path without it gives.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from envcheck.review.find import report_files
from envcheck.review.index import Fleet
from envcheck.review.load import load_every_file


def reference(paths: list[Path], since: pd.Timestamp | None = None) -> Fleet:
    """The fleet of `paths` with every file read (no index read or written)."""
    files, skipped = report_files(paths)
    return load_every_file(files, skipped, since)


def assert_same(fleet: Fleet, expected: Fleet) -> None:
    """Identical tables (dtypes included), skips, counts and newest evidence."""
    pd.testing.assert_frame_equal(fleet.runs, expected.runs)
    pd.testing.assert_frame_equal(fleet.diffs, expected.diffs)
    runs = fleet.runs.sort_values(["file", "target_index"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(runs, expected.runs.sort_values(["file", "target_index"]).reset_index(drop=True))
    assert fleet.skipped == expected.skipped
    assert (fleet.files_read, fleet.files_before_since) == (expected.files_read, expected.files_before_since)
    assert fleet.newest_targets == expected.newest_targets
