"""The review's incremental index (envcheck/review/store.py): a review with it gives the fleet a review
reading every file gives, whatever changed between reviews, and a broken or stale index is rebuilt."""
from __future__ import annotations

import copy
import json
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from review.fleets import assert_same, reference

from envcheck.review import batch, store
from envcheck.review.find import INDEX_FOLDER, report_files
from envcheck.review.load import load_every_file, load_fleet
from envcheck.review.read import parse_since


@pytest.fixture
def fleet_dir(recorded_reports, tmp_path) -> Path:
    """The recorded reports on two days, a copy of one, a future one, and files that are no reports."""
    root = tmp_path / "fleet"
    root.mkdir()
    for name, report in recorded_reports.items():
        (root / f"{name}-day1.json").write_text(json.dumps(dict(report, created="2026-11-20T08:00:00Z")))
    newer = json.dumps(dict(recorded_reports["beijing-1"], created="2026-11-21T08:00:00.5Z"))
    (root / "beijing-1-day2.json").write_text(newer)
    (root / "zz-copy-of-beijing-day2.json").write_text(newer)
    (root / "future.json").write_text(json.dumps(dict(recorded_reports["wuhan-2-onednn-off"],
                                                      created="2099-01-01T00:00:00Z")))
    (root / "truncated.json").write_text(json.dumps(recorded_reports["xian-4-avx2"])[:500])
    (root / "foreign.json").write_text('{"schema": "cyclonedx/1.5", "components": []}')
    return root


@pytest.fixture(autouse=True)
def index_always_usable(monkeypatch):
    """No test here passes by falling back to reading every file; a few reports are indexed too, and trusted
    though written just before (the grace for coarse file system clocks has its own test in tests/review/)."""
    monkeypatch.setattr(store, "MIN_FILES", 0)
    monkeypatch.setattr(store, "RACY_NS", 0)
    def fallback(*args):
        raise AssertionError("the index was not used")
    monkeypatch.setattr("envcheck.review.load.load_every_file", fallback)


def stored_paths(root: Path) -> set[str]:
    return {Path(p).name for p in store.read_index(root / INDEX_FOLDER).files.path}


def test_cold_then_warm_is_the_fleet_of_every_file_read(fleet_dir, monkeypatch):
    cold = load_fleet([fleet_dir])
    assert (fleet_dir / INDEX_FOLDER / "files.parquet").exists()
    assert_same(cold, reference([fleet_dir]))
    assert any("duplicate of" in why for _, why in cold.skipped)
    assert any("created in the future" in why for _, why in cold.skipped)

    def no_read(path, *args):
        raise AssertionError(f"{path} read or parsed again")
    # Nothing is read to be indexed or parsed again: the runs, diffs and skips come from the index alone
    # (the newest evidence is read from its file and compared with the content indexed: the next test).
    monkeypatch.setattr(batch, "read_bytes", no_read)
    monkeypatch.setattr(batch, "parse_report", no_read)
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))


def test_warm_keeps_the_newest_evidence_by_reading_only_those_files(fleet_dir, monkeypatch):
    load_fleet([fleet_dir])
    read: list[str] = []
    original = store.reading.read_bytes

    def counting(path):
        read.append(Path(path).name)
        return original(path)
    monkeypatch.setattr("envcheck.review.load.read_bytes", counting)
    warm = load_fleet([fleet_dir])
    read_by_review = list(read)
    assert_same(warm, reference([fleet_dir]))
    newest_files = {Path(warm.runs.at[row, "file"]).name for row in warm.newest_targets}
    assert set(read_by_review) == newest_files and len(read_by_review) == len(newest_files)


def test_new_changed_and_deleted_reports(fleet_dir, recorded_reports):
    load_fleet([fleet_dir])
    (fleet_dir / "chengdu-day2.json").write_text(json.dumps(dict(recorded_reports["chengdu-5-bf16"],
                                                                 created="2026-11-22T08:00:00Z")))
    changed = copy.deepcopy(recorded_reports["shenzhen-3"])
    changed["created"] = "2026-11-23T08:00:00Z"
    changed["targets"][0]["site"] = "moved-site"
    path = fleet_dir / "shenzhen-3-day1.json"
    stat = path.stat()
    path.write_text(json.dumps(changed))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    (fleet_dir / "xian-4-avx2-day1.json").unlink()

    fleet = load_fleet([fleet_dir])
    assert_same(fleet, reference([fleet_dir]))
    assert "moved-site" in set(fleet.runs["site"]) and "chengdu-day2.json" in stored_paths(fleet_dir)
    assert not any(f.endswith("xian-4-avx2-day1.json") for f in fleet.runs["file"])
    assert "xian-4-avx2-day1.json" not in stored_paths(fleet_dir)
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))


def test_a_deleted_original_leaves_its_copy_counted(fleet_dir):
    load_fleet([fleet_dir])
    (fleet_dir / "beijing-1-day2.json").unlink()
    fleet = load_fleet([fleet_dir])
    assert_same(fleet, reference([fleet_dir]))
    assert any(f.endswith("zz-copy-of-beijing-day2.json") for f in fleet.runs["file"])


@pytest.mark.parametrize("since", ["2026-11-21", "2026-11-20", "2030-01-01"])
def test_since_and_duplicates_behave_as_without_index(fleet_dir, since):
    load_fleet([fleet_dir])  # the index holds every report, whatever --since a later review gives
    start = parse_since(since)
    assert_same(load_fleet([fleet_dir], start), reference([fleet_dir], start))
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "one part missing", "parts of two writes"])
def test_a_corrupt_index_is_rebuilt_silently(fleet_dir, damage):
    load_fleet([fleet_dir])
    folder = fleet_dir / INDEX_FOLDER
    if damage == "garbage":
        (folder / "runs.parquet").write_bytes(b"not parquet at all")
    elif damage == "truncated":
        data = (folder / "files.parquet").read_bytes()
        (folder / "files.parquet").write_bytes(data[: len(data) // 2])
    elif damage == "one part missing":
        (folder / "diffs.parquet").unlink()
    else:
        kept = (folder / "runs.parquet").read_bytes()
        (fleet_dir / "new.json").write_text((fleet_dir / "beijing-1-day1.json").read_text().replace("08:00", "09:00"))
        load_fleet([fleet_dir])
        (folder / "runs.parquet").write_bytes(kept)
    assert store.read_index(folder).runs is None
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))
    assert store.read_index(folder).runs is not None


def test_a_stale_index_is_rebuilt(fleet_dir, monkeypatch):
    load_fleet([fleet_dir])
    folder = fleet_dir / INDEX_FOLDER
    assert len(store.read_index(folder).files)
    monkeypatch.setattr(store, "FORMAT_VERSION", store.FORMAT_VERSION + 1)
    assert not len(store.read_index(folder).files)
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))
    assert len(store.read_index(folder).files)
    monkeypatch.setattr(store, "RUN_COLUMNS", [*store.RUN_COLUMNS, "a_new_column"])
    assert not len(store.read_index(folder).files)


def test_the_index_folder_is_no_report_folder_and_a_read_only_one_is_no_error(fleet_dir, tmp_path):
    load_fleet([fleet_dir])
    files, _ = report_files([fleet_dir])
    assert not any(INDEX_FOLDER in str(f) for f in files)
    (fleet_dir / INDEX_FOLDER / "stray.json").write_text("{}")
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (readonly / "a.json").write_text((fleet_dir / "beijing-1-day1.json").read_text())
    readonly.chmod(0o555)
    try:
        assert_same(load_fleet([readonly]), reference([readonly]))
    finally:
        readonly.chmod(0o755)


def test_a_handful_of_reports_is_not_indexed(fleet_dir, monkeypatch):
    monkeypatch.setattr(store, "MIN_FILES", 100)
    monkeypatch.undo()  # (the autouse fixture's fallback guard too: these files are read without an index)
    monkeypatch.setattr(store, "MIN_FILES", 100)
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))
    assert not (fleet_dir / INDEX_FOLDER).exists()


def test_mixed_int_and_float_numbers_keep_the_dtypes_of_a_full_read(fleet_dir, recorded_reports):
    """A JSON number is an int in one report and a float in another: only the rows a review keeps decide
    the column's dtype, as they do when every file is read."""
    report = copy.deepcopy(recorded_reports["beijing-1"])
    for target in report["targets"]:
        for output in (target.get("outputs") or {}).values():
            if output.get("max_ulp") is not None:
                output["max_ulp"] = 1.5
    (fleet_dir / "floats.json").write_text(json.dumps(dict(report, created="2026-11-01T00:00:00Z")))
    load_fleet([fleet_dir])
    for since in (None, parse_since("2026-11-20")):
        assert_same(load_fleet([fleet_dir], since), reference([fleet_dir], since))


@pytest.fixture
def in_batches(monkeypatch) -> list[int]:
    """Every first review read in batches of two files by two worker processes, whatever the machine's CPUs:
    the copy of beijing-1-day2.json is parsed in another batch than the original. Yields how many batches
    each pool was given."""
    monkeypatch.setattr(batch, "PARALLEL_FILES", 2)
    monkeypatch.setattr(batch, "usable_cpus", lambda: 2)
    monkeypatch.setattr(batch, "workers_can_start", lambda: True)  # (pytest's own __main__ is guarded)
    monkeypatch.setattr(batch, "MAX_WORKERS", 2)
    pools: list[int] = []
    real = batch._in_workers

    def counted(batches, known, workers):
        pools.append(len(batches))
        return real(batches, known, workers)

    monkeypatch.setattr(batch, "_in_workers", counted)
    return pools


def test_worker_processes_give_the_fleet_of_every_file_read(fleet_dir, in_batches):
    """A large first review parses in worker processes: the same fleet, a copy in two batches counted once."""
    fleet = load_fleet([fleet_dir])
    assert in_batches and in_batches[0] > 2
    assert_same(fleet, reference([fleet_dir]))
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))  # and the index they built


def test_without_worker_processes_the_batches_are_read_here(fleet_dir, in_batches, monkeypatch):
    """Where processes cannot start (a sandbox, a program that does not guard its __main__), the review
    reads the same batches itself."""
    def broken(*args):
        raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(batch, "_in_workers", broken)
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))


@pytest.mark.parametrize("main, safe", [
    ({"__file__": "/home/me/my_review.py"}, False),  # another program's script: its top level would run again
    ({"__file__": "/usr/lib/python3/envcheck/__main__.py", "__spec__": "envcheck.__main__"}, True),
    ({}, True),  # python -c, a notebook
])
def test_workers_start_only_where_the_main_module_is_safe_to_import_again(main, safe, monkeypatch):
    import sys
    import types

    module = types.ModuleType("__main__")
    for name, value in main.items():
        setattr(module, name, types.SimpleNamespace(name=value) if name == "__spec__" else value)
    monkeypatch.setitem(sys.modules, "__main__", module)
    assert batch.workers_can_start() is safe


@pytest.mark.parametrize("created", ["2300-01-01T00:00:00Z", "1600-01-01T00:00:00Z"])
def test_a_time_the_index_cannot_hold_is_reviewed_as_without_index(fleet_dir, recorded_reports, monkeypatch,
                                                                   created):
    """A year pandas holds but not in nanoseconds: the review reads every file instead of failing."""
    monkeypatch.setattr("envcheck.review.load.load_every_file", load_every_file)
    (fleet_dir / "odd-time.json").write_text(json.dumps(dict(recorded_reports["chengdu-5-bf16"], created=created)))
    assert_same(load_fleet([fleet_dir]), reference([fleet_dir]))
