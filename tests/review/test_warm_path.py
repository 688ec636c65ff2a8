"""The review's warm path (issue 24): a review after a few new reports costs what the change costs, and each
shortcut it takes gives what the path without it gives.

- a new report is read once: the evidence a page shows of it is kept from that read, not read again;
- the newest run of each identity is found without sorting every column (index.newest_rows), and the trend
  words its worst verdicts in one lookup: both equal to the pandas expressions they replace.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envcheck.model import VERDICT_RANK
from envcheck.review import batch, load, store, views
from envcheck.review.index import IDENTITY, newest_rows
from envcheck.review.load import load_fleet
from review.fleets import assert_same, reference


@pytest.fixture
def fleet(recorded_reports, tmp_path, monkeypatch) -> Path:
    """The recorded reports, one file each, a day apart, indexed by a first review."""
    monkeypatch.setattr(store, "MIN_FILES", 0)
    monkeypatch.setattr(store, "RACY_NS", 0)
    root = tmp_path / "fleet"
    root.mkdir()
    for day, (name, report) in enumerate(recorded_reports.items(), start=10):
        (root / f"{name}.json").write_text(json.dumps(dict(report, created=f"2026-11-{day}T08:00:00Z")))
    load_fleet([root])
    return root


@pytest.fixture
def reads(monkeypatch) -> Counter[str]:
    """How many times a review reads each file, to index it (batch.py) or for its evidence (load.py)."""
    counts: Counter[str] = Counter()
    original = batch.read_bytes

    def counting(path):
        counts[Path(path).name] += 1
        return original(path)
    monkeypatch.setattr(batch, "read_bytes", counting)
    monkeypatch.setattr(load, "read_bytes", counting)
    return counts


def test_a_new_report_is_read_once_and_its_evidence_kept_from_that_read(fleet, reads, recorded_reports):
    """The new reports are the newest of their targets, so their entries are the evidence a page shows."""
    for day, (name, report) in enumerate(list(recorded_reports.items())[:2], start=28):
        (fleet / f"{name}-later.json").write_text(json.dumps(dict(report, created=f"2026-11-{day}T08:00:00Z")))

    fleet_now = load_fleet([fleet])

    new = {name: count for name, count in reads.items() if name.endswith("-later.json")}
    assert new == {f"{name}-later.json": 1 for name in list(recorded_reports)[:2]}
    assert_same(fleet_now, reference([fleet]))


def test_evidence_of_a_file_not_read_now_is_still_read_from_it(fleet, reads):
    """Nothing new: the evidence of the latest runs comes from their files, each read once."""
    fleet_now = load_fleet([fleet])

    assert reads and set(reads.values()) == {1}
    assert_same(fleet_now, reference([fleet]))


def random_runs(seed: int) -> pd.DataFrame:
    """Runs of a few identities at a few times: ties in `created` within and across identities."""
    rng = random.Random(seed)
    count = rng.randint(1, 60)
    times = pd.to_datetime([f"2026-11-{rng.randint(10, 13)}T08:00:00Z" for _ in range(count)])
    runs = pd.DataFrame({"golden_sha256": [rng.choice("ab") for _ in range(count)],
                         "site": [rng.choice(["x", "y", "(no site)"]) for _ in range(count)],
                         "host": [rng.choice(["h1", "h2"]) for _ in range(count)],
                         "spec": [rng.choice(["docker:a", "host"]) for _ in range(count)],
                         "created": times})
    return runs.set_axis(rng.sample(range(1000), count))  # (labels that are not positions)


@pytest.mark.parametrize("seed", range(40))
def test_newest_rows_are_the_groupby_tail_they_replace(seed):
    runs = random_runs(seed)
    expected = runs.sort_values("created", kind="stable").groupby(IDENTITY, sort=False).tail(1).index
    pd.testing.assert_index_equal(newest_rows(runs), expected)


def test_the_trend_words_are_the_per_day_map_they_replace():
    """Sites seen on some days only (gaps: NaN in the table), every verdict."""
    verdicts = list(VERDICT_RANK)
    rows = [(f"site-{site}", f"2026-11-{10 + day}", verdicts[(site + day) % len(verdicts)])
            for site in range(4) for day in range(6) if (site * day) % 3 != 1]
    runs = pd.DataFrame(rows, columns=["place", "date", "verdict"])
    runs["verdict_rank"] = runs["verdict"].map(VERDICT_RANK)
    runs["golden_sha256"] = "a"
    fleet = views.Fleet(runs=runs, diffs=pd.DataFrame())

    worst = runs.groupby(["place", "date"])["verdict_rank"].max().unstack("date").rename_axis(index="site")
    names = {rank: verdict for verdict, rank in VERDICT_RANK.items()}
    expected = worst.apply(lambda column: column.map(names))

    trend = views.trend(fleet)
    assert trend.isna().to_numpy().any()
    pd.testing.assert_frame_equal(trend, expected)
    assert trend.to_numpy().dtype == np.dtype(object)
