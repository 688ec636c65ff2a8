"""The review's index against the review without it, under random histories (Hypothesis stateful testing).

Reports are added, rewritten with the same size and mtime (what `cp -p`, `rsync -t` and `touch -r` leave),
renamed, deleted, copied and broken, in any order; after every step the review through the index
(envcheck/review/store.py) must be exactly the review reading every file: the same runs, verdicts,
differences, newest evidence, skipped files and counts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from envcheck.review import store
from envcheck.review.load import load_fleet
from helpers import RECORDED_REPORTS
from review.fleets import assert_same, reference

TEMPLATES = {path.stem: json.loads(path.read_text()) for path in sorted(RECORDED_REPORTS.glob("*.json"))}
NAMES = st.sampled_from([f"report-{number}.json" for number in range(5)])
DAYS = st.integers(min_value=10, max_value=28)
"""Two digits each: a report of one template is the same size whatever its day."""


def report_text(template: str, day: int) -> str:
    return json.dumps(dict(TEMPLATES[template], created=f"2026-11-{day:02d}T08:00:00Z"))


def no_fallback(*args):
    raise AssertionError("the index was not used: the review read every file instead")


class IndexedReview(RuleBasedStateMachine):
    """A folder of reports, reviewed through its index after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="envcheck-index-")) / "fleet"
        self.root.mkdir()
        self.patches = pytest.MonkeyPatch()
        self.patches.setattr(store, "MIN_FILES", 0)  # (a handful of reports is indexed too)
        # Every rewrite below comes after a whole review, so its ctime is another (see rewrite): the index
        # must see it by its status alone, not by the grace its own test covers.
        self.patches.setattr(store, "RACY_NS", 0)
        self.patches.setattr("envcheck.review.load.load_every_file", no_fallback)

    def teardown(self) -> None:
        self.patches.undo()
        shutil.rmtree(self.root.parent, ignore_errors=True)

    def existing(self) -> list[str]:
        return sorted(path.name for path in self.root.iterdir() if path.is_file())

    @rule(name=NAMES, template=st.sampled_from(sorted(TEMPLATES)), day=DAYS)
    def write(self, name: str, template: str, day: int) -> None:
        (self.root / name).write_text(report_text(template, day))

    @rule(data=st.data(), day=DAYS, by_rename=st.booleans())
    def rewrite_with_the_same_size_and_mtime(self, data: st.DataObject, day: int, by_rename: bool) -> None:
        """Another report of the same size, its mtime set back: in place (cp -p), or renamed over (rsync -t)."""
        existing = self.existing()
        if not existing:
            return
        path = self.root / data.draw(st.sampled_from(existing))
        before = path.stat()
        text = path.read_text()
        template = next((name for name in TEMPLATES if len(report_text(name, day)) == len(text)), None)
        if template is None:  # (a broken file: nothing of its size to put there)
            return
        if by_rename:
            temporary = self.root / ".incoming.tmp"
            temporary.write_text(report_text(template, day))
            temporary.replace(path)
        else:
            path.write_text(report_text(template, day))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        while path.stat().st_ctime_ns == before.st_ctime_ns:  # (a coarse clock: the write was in the same tick)
            time.sleep(0.005)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    @rule(data=st.data(), target_name=NAMES)
    def rename(self, data: st.DataObject, target_name: str) -> None:
        existing = self.existing()
        if existing:
            (self.root / data.draw(st.sampled_from(existing))).replace(self.root / target_name)

    @rule(data=st.data(), target_name=NAMES)
    def copy_keeping_times(self, data: st.DataObject, target_name: str) -> None:
        """cp -p: a duplicate of another report, with its times."""
        existing = self.existing()
        source = self.root / data.draw(st.sampled_from(existing)) if existing else None
        if source is not None and source.name != target_name:
            shutil.copy2(source, self.root / target_name)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        existing = self.existing()
        if existing:
            (self.root / data.draw(st.sampled_from(existing))).unlink()

    @rule(name=NAMES)
    def break_one(self, name: str) -> None:
        (self.root / name).write_text('{"schema": "envcheck.report/1", "targ')

    @invariant()
    def the_index_gives_the_review_of_every_file(self) -> None:
        assert_same(load_fleet([self.root]), reference([self.root]))


IndexedReview.TestCase.settings = settings(max_examples=30, stateful_step_count=10, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_index_equals_reading_every_file = IndexedReview.TestCase
