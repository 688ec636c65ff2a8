"""What keeps the review's index (envcheck/review/store.py) from serving stale or foreign data: its folder and
files are never followed through a link, a rewrite that keeps size and mtime is seen, its stamp covers all the
code that turns a report into rows, and the folders beside the reports that are not report folders are skipped."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from envcheck.review import store
from envcheck.review.find import INDEX_FOLDER, report_files
from envcheck.review.load import load_fleet
from envcheck.review.service import review
from review.fleets import assert_same, reference

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def indexed(monkeypatch):
    """A few reports are indexed too, and no test passes by the review falling back to reading every file
    (which the fleets it is compared with do); no grace for files changed just before a review unless a test sets one
    (each test here changes files long after the index saw them: its own guard is tested on its own)."""
    monkeypatch.setattr(store, "MIN_FILES", 0)
    monkeypatch.setattr(store, "RACY_NS", 0)

    def fallback(*args):
        raise AssertionError("the index was not used: the review read every file instead")
    monkeypatch.setattr("envcheck.review.load.load_every_file", fallback)


@pytest.fixture
def fleet(recorded_reports, tmp_path) -> Path:
    """The recorded reports, one file each, a day apart."""
    root = tmp_path / "fleet"
    root.mkdir()
    for day, (name, report) in enumerate(recorded_reports.items(), start=10):
        (root / f"{name}.json").write_text(json.dumps(dict(report, created=f"2026-11-{day}T08:00:00Z")))
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# -- 1. the index's own folder and files are never followed through a link


def test_a_linked_index_folder_is_neither_read_nor_written(fleet, tmp_path, reads):
    load_fleet([fleet])  # a real index, moved away and linked back: an index of these very files
    elsewhere = tmp_path / "elsewhere"
    (fleet / INDEX_FOLDER).rename(elsewhere)
    (fleet / INDEX_FOLDER).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    reads.clear()

    assert_same(load_fleet([fleet]), reference([fleet]))
    assert sorted(reads) == sorted(path.name for path in fleet.glob("*.json"))  # as without an index
    assert snapshot(elsewhere) == before  # nothing written through the link
    assert (fleet / INDEX_FOLDER).is_symlink()


def test_a_linked_index_folder_to_a_foreign_folder_gets_no_index_written_into_it(fleet, tmp_path):
    foreign = tmp_path / "someone-elses-folder"
    foreign.mkdir()
    (foreign / "runs.parquet").write_text("their data")
    (fleet / INDEX_FOLDER).symlink_to(foreign, target_is_directory=True)
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert snapshot(foreign) == {"runs.parquet": b"their data"}


def test_a_dangling_link_in_place_of_the_index_creates_nothing(fleet, tmp_path):
    target = tmp_path / "not-there"
    (fleet / INDEX_FOLDER).symlink_to(target, target_is_directory=True)
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert not target.exists()


@pytest.mark.parametrize("part", store.PARTS)
def test_a_linked_file_in_the_index_is_not_read(fleet, tmp_path, reads, part):
    load_fleet([fleet])
    outside = tmp_path / f"{part}.parquet"
    (fleet / INDEX_FOLDER / f"{part}.parquet").rename(outside)
    (fleet / INDEX_FOLDER / f"{part}.parquet").symlink_to(outside)
    assert not len(store.read_index(fleet / INDEX_FOLDER).files)
    before = outside.read_bytes()
    reads.clear()

    assert_same(load_fleet([fleet]), reference([fleet]))
    assert sorted(reads) == sorted(path.name for path in fleet.glob("*.json"))
    assert outside.read_bytes() == before  # (the link itself is replaced by a real file, its target untouched)
    assert not (fleet / INDEX_FOLDER / f"{part}.parquet").is_symlink()


# -- 2. a rewrite that keeps size and mtime (cp -p, rsync -t, touch -r) is seen


def same_size_other_site(text: str) -> str:
    changed = text.replace('"site": "shenzhen-3"', '"site": "shenzhen-9"')
    assert changed != text and len(changed) == len(text)
    return changed


@pytest.mark.parametrize("how", ["in place (cp -p, touch -r)", "renamed over (rsync -t)"])
def test_a_rewrite_with_the_same_size_and_mtime_is_read_again(fleet, how):
    """Not the newest report of its target (whose evidence is read again anyway): an older one."""
    path = fleet / "shenzhen-3.json"
    newer = json.loads(path.read_text())
    (fleet / "shenzhen-3-later.json").write_text(json.dumps(dict(newer, created="2026-11-30T08:00:00Z")))
    load_fleet([fleet])
    status = path.stat()
    text = same_size_other_site(path.read_text())
    if how.startswith("in place"):
        path.write_text(text)
    else:
        temporary = fleet / ".shenzhen-3.json.tmp"
        temporary.write_text(text)
        temporary.rename(path)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (status.st_size, status.st_mtime_ns)

    fleet_now = load_fleet([fleet])
    assert_same(fleet_now, reference([fleet]))
    sites = fleet_now.runs.groupby("file")["site"].first()
    assert sites[str(path)] == "shenzhen-9" and sites[str(fleet / "shenzhen-3-later.json")] == "shenzhen-3"


def test_a_file_changed_just_before_the_index_saw_it_is_read_again_once(fleet, reads, monkeypatch):
    """A file system whose clock ticks coarsely (a second on some) can give a rewrite the ctime the index
    recorded: a file changed within RACY_NS of the review that indexed it is not trusted by the next one,
    which records it again; the review after that trusts it."""
    monkeypatch.setattr(store, "RACY_NS", 3600 * 10**9)  # every file here was written "just now"
    load_fleet([fleet])
    reads.clear()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert sorted(reads) == sorted(path.name for path in fleet.glob("*.json"))

    monkeypatch.setattr(store, "RACY_NS", 0)
    reads.clear()
    assert_same(load_fleet([fleet]), reference([fleet]))
    assert reads == []


# -- 3. the stamp covers all the code that turns a report into rows


def test_the_stamp_covers_every_module_and_schema_the_reader_uses():
    covered = {path.resolve() for path in store.reader_code_files()}
    package = REPO / "envcheck"
    expected = {*package.joinpath("review").glob("*.py"), *package.joinpath("schemas").glob("*.py"),
                *package.joinpath("schemas").glob("*.json")}
    assert expected and expected <= covered
    # every other envcheck module the reader imports (the row helpers of index.py…)
    for module in ("localization_words", "model", "redact"):
        assert package / f"{module}.py" in covered


def test_the_stamp_changes_with_any_byte_of_that_code(tmp_path):
    files = []
    for number in range(3):
        files.append(tmp_path / f"part{number}.py")
        files[-1].write_text(f"VALUE = {number}\n")
    before = store.code_digest(files)
    assert store.code_digest(files) == before
    files[2].write_text("VALUE = 20\n")
    assert store.code_digest(files) != before
    assert store.code_digest(files[:2]) != store.code_digest(files)


# -- 4. dot-folders beside the reports (fleet run's capture cache, the index) are no report folders


def test_dot_folders_are_skipped_silently(fleet, tmp_path):
    entry = fleet / ".cache" / "0123abcd"
    entry.mkdir(parents=True)
    (entry / "entry.json").write_text('{"key": "0123abcd"}')
    (entry / "capture.json").write_text('{"schema": "envcheck.capture/1"}')
    (fleet / ".git").mkdir()
    (fleet / ".git" / "config.json").write_text("{}")
    files, skipped = report_files([fleet])
    assert skipped == []
    assert sorted(path.name for path in files) == sorted(path.name for path in fleet.glob("*.json"))
    assert review([fleet]).skipped == []


def test_a_dot_folder_named_on_the_command_line_is_reviewed(fleet):
    hidden = fleet.rename(fleet.parent / ".fleet")
    files, skipped = report_files([hidden])
    assert len(files) == len(list(hidden.glob("*.json"))) and skipped == []
