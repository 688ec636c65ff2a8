"""The review's index as a base and a delta (envcheck/review/store.py): a review with a few changes writes
only the delta, committed by one rename; a delta grown past COMPACT_FRACTION is compacted into a new base; a
crash before the rename leaves the previous delta in force. Every review through them is the review that
reads every file (tests/review/fleets.py), under random histories too."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from envcheck.review import store
from envcheck.review.find import INDEX_FOLDER
from envcheck.review.load import load_fleet
from review.fleets import assert_same, reference
from review.test_index_differential import TEMPLATES, IndexedReview


class Crash(BaseException):
    """The process killed at that instant: nothing after it runs, no handler cleans up."""


def crash_on_renaming(monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    """The next rename of `part`.parquet into place kills the review (its temporary file is left)."""
    original = os.replace

    def replace(source, destination, **kwargs):
        if destination == f"{part}.parquet":
            raise Crash
        return original(source, destination, **kwargs)
    monkeypatch.setattr(store.os, "replace", replace)


def no_fallback(*args):
    """Stands for load_every_file: no test passes by the review reading every file instead."""
    raise AssertionError("the index was not used: the review read every file instead")


@pytest.fixture(autouse=True)
def deltas(monkeypatch):
    """A handful of reports gets a base and a delta, as 100,000 do; each review goes through the index."""
    monkeypatch.setattr(store, "MIN_FILES", 0)
    monkeypatch.setattr(store, "RACY_NS", 0)
    monkeypatch.setattr(store, "COMPACT_BELOW", 0)
    monkeypatch.setattr("envcheck.review.load.load_every_file", no_fallback)


@pytest.fixture
def fleet(recorded_reports, tmp_path) -> Path:
    """The recorded reports, three copies each a day apart (so that one new report is a small change)."""
    root = tmp_path / "fleet"
    root.mkdir()
    for day in range(10, 13):
        for name, report in recorded_reports.items():
            (root / f"{name}-{day}.json").write_text(json.dumps(dict(report, created=f"2026-11-{day}T08:00:00Z")))
    return root


def add_report(fleet: Path, name: str, day: int) -> None:
    """A new report `name` created on that day of November 2026."""
    source = json.loads(next(fleet.glob("*-10.json")).read_text())
    (fleet / name).write_text(json.dumps(dict(source, created=f"2026-11-{day}T09:00:00Z")))


def base_bytes(fleet: Path) -> dict[str, bytes]:
    """The bytes of each of the base's files."""
    return {part: (fleet / INDEX_FOLDER / f"{part}.parquet").read_bytes() for part in store.PARTS}


def test_a_few_new_reports_are_written_as_a_delta_beside_the_untouched_base(fleet, reads):
    load_fleet([fleet])
    base = base_bytes(fleet)
    assert not (fleet / INDEX_FOLDER / "delta.parquet").exists()
    add_report(fleet, "new-1.json", 20)
    (fleet / sorted(p.name for p in fleet.glob("*-11.json"))[0]).unlink()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert base_bytes(fleet) == base
    assert (fleet / INDEX_FOLDER / "delta.parquet").exists()
    stored = store.read_index(fleet / INDEX_FOLDER)
    assert (len(stored.delta.files), len(stored.delta.removed)) == (1, 1)

    add_report(fleet, "new-2.json", 21)  # a second delta: the first one's changes and this one's
    reads.clear()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert reads == ["new-2.json"]
    assert base_bytes(fleet) == base
    assert len(store.read_index(fleet / INDEX_FOLDER).delta) == 3
    reads.clear()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert reads == []


def test_a_delta_past_the_fraction_is_compacted_into_a_new_base(fleet, monkeypatch):
    load_fleet([fleet])
    base = base_bytes(fleet)
    files = len(list(fleet.glob("*.json")))
    for number in range(int(store.COMPACT_FRACTION * files) + 1):
        add_report(fleet, f"new-{number}.json", 20)
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert base_bytes(fleet) != base
    assert not (fleet / INDEX_FOLDER / "delta.parquet").exists()
    stored = store.read_index(fleet / INDEX_FOLDER)
    assert (len(stored.delta), stored.base_files) == (0, len(list(fleet.glob("*.json"))))


def test_a_crash_before_the_delta_is_renamed_leaves_the_previous_delta_in_force(fleet, reads, monkeypatch):
    load_fleet([fleet])
    add_report(fleet, "new-1.json", 20)
    load_fleet([fleet])
    delta = (fleet / INDEX_FOLDER / "delta.parquet").read_bytes()
    add_report(fleet, "new-2.json", 21)
    with monkeypatch.context() as crashing:
        crash_on_renaming(crashing, "delta")
        with pytest.raises(Crash):
            load_fleet([fleet])
    assert (fleet / INDEX_FOLDER / "delta.parquet").read_bytes() == delta  # the old index, not a mixed one
    assert any(name.startswith(".delta.") for name in os.listdir(fleet / INDEX_FOLDER))  # (written, not renamed)
    reads.clear()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert reads == ["new-2.json"]  # new-1.json is known from the delta that was in force


def test_a_report_deleted_then_put_back_before_compaction_is_counted_once(fleet):
    load_fleet([fleet])
    path = next(fleet.glob("*-11.json"))
    text = path.read_text()
    path.unlink()
    assert_same(load_fleet([fleet]), reference([fleet]))
    path.write_text(text)  # its rows are still in the base: not added to the delta again
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert_same(load_fleet([fleet]), reference([fleet]))


class IndexedReviewWithDeltas(IndexedReview):
    """IndexedReview's histories with a delta after every review, compactions as it grows, and reviews that
    crash while their delta or a new base is being renamed into place."""

    def __init__(self) -> None:
        super().__init__()
        self.patches.setattr(store, "COMPACT_BELOW", 0)

    @rule(fraction=st.sampled_from([0.2, 0.5, 1.0, 3.0]))
    def compact_at(self, fraction: float) -> None:
        self.patches.setattr(store, "COMPACT_FRACTION", fraction)

    @rule(part=st.sampled_from([store.DELTA, *store.PARTS]), name=st.sampled_from(["report-0.json", "report-5.json"]),
          day=st.integers(min_value=10, max_value=28))
    def a_review_crashes_while_renaming(self, part: str, name: str, day: int) -> None:
        (self.root / name).write_text(json.dumps(dict(next(iter(TEMPLATES.values())),
                                                      created=f"2026-11-{day:02d}T08:00:00Z")))
        with pytest.MonkeyPatch.context() as crashing:
            crash_on_renaming(crashing, part)
            try:
                load_fleet([self.root])
            except Crash:
                pass


IndexedReviewWithDeltas.TestCase.settings = settings(max_examples=30, stateful_step_count=12, deadline=None,
                                                     suppress_health_check=[HealthCheck.too_slow])
test_the_index_with_deltas_equals_reading_every_file = IndexedReviewWithDeltas.TestCase
