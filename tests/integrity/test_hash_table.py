"""The integrity digest table (envcheck_probe/integrity.py HashTable, targets/integrity_cache.py): a probe given the
table of an earlier one hashes only the files whose stat changed, and its record is the one it makes without a
table. What the table can and cannot hide is stated (and pinned) here. No TensorFlow, no Docker."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from envcheck.targets import integrity_cache

from .test_probe_integrity import _install


@pytest.fixture
def site(tmp_path) -> Path:
    folder = tmp_path / "site"
    _install(folder, "numpy", {"numpy/__init__.py": b"X = 1\n", "numpy/_core/_x.so": b"\x7fELF one",
                               "numpy.libs/libopenblas.so.0": b"\x7fELF blas"})
    _install(folder, "tensorflow", {"tensorflow/__init__.py": b"", "tensorflow/python/ops/g.py": b"EPS = 1e-7\n"})
    return folder


def _check(probe, site, table=None, deadline_s=60.0):
    distributions = probe.integrity.installed([str(site)])
    recorded = probe.integrity.recorded_files(distributions)
    return probe.integrity.python_integrity(distributions, recorded, "numerics",
                                            deadline=probe.integrity.Deadline(deadline_s), table=table)


def _warm(probe, site):
    """The table a first probe leaves, read back as the next probe reads it."""
    first = probe.integrity.HashTable()
    _check(probe, site, first)
    path = site.parent / "table.json"
    path.write_text(first.dumps())
    time.sleep(0.05)  # past the file system's timestamp tick: a later write shows in ctime
    return lambda: probe.integrity.load_hash_table(str(path))


def _edit_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """A hand edit that hides itself from `ls -l`: the same size, the old mtime put back (`touch -r`)."""
    before = path.stat()
    assert len(data) == before.st_size
    with open(path, "r+b") as handle:  # in place: the same inode
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_warm_table_hashes_nothing_and_gives_the_record_made_without_it(probe, site):
    table = _warm(probe, site)()
    assert _check(probe, site, table) == _check(probe, site)
    assert table.hashed == 0 and len(table.rows) == 7  # every file with a sha256 in a RECORD, from the table


def test_a_table_says_whether_a_row_changed_so_an_unchanged_one_never_travels_back(probe, site):
    load = _warm(probe, site)
    unchanged = load()
    _check(probe, site, unchanged)
    assert not unchanged.changed()  # the probe leaves no table: the host keeps the one it handed in
    (site / "numpy" / "__init__.py").write_bytes(b"X = 2\n")
    edited = load()
    _check(probe, site, edited)
    assert edited.changed() and edited.hashed == 1
    (site / "numpy" / "__init__.py").unlink()  # a row gone is a change too
    gone = load()
    _check(probe, site, gone)
    assert gone.changed()


@pytest.mark.parametrize("edit", [
    pytest.param(lambda path: path.write_bytes(b"EPS = 1e-3\n"), id="edited"),
    pytest.param(lambda path: _edit_keeping_size_and_mtime(path, b"EPS = 1e-3\n"), id="same-size-and-mtime"),
    pytest.param(lambda path: (path.unlink(), path.write_bytes(b"EPS = 1e-3\n")), id="replaced"),
])
def test_a_file_changed_after_the_table_was_made_is_found_as_without_it(probe, site, edit):
    load = _warm(probe, site)
    edit(site / "tensorflow" / "python" / "ops" / "g.py")
    table = load()
    record = _check(probe, site, table)
    assert record == _check(probe, site)
    assert record["tensorflow"]["modified"] == ["tensorflow/python/ops/g.py"]
    assert table.hashed == 1


def test_a_row_whose_stat_matches_is_believed_so_the_table_is_kept_where_only_the_user_writes(probe, site):
    """What the table cannot see: a digest altered in a row whose stat still matches the file. The probe then
    reports what the row says (here: an intact file as modified; the same way a row could vouch for an edited
    file whose size, mtime, ctime and inode were all kept, which needs a changed clock or a raw disk write). So
    the host keeps tables in the user's cache folder, keyed by the image id (content-addressed layers) or the
    interpreter, and the fixture images' own check (test_fixture_images.py) runs with the cache as users have it."""
    path = site.parent / "table.json"
    _warm(probe, site)
    table = json.loads(path.read_text())
    target = str(site / "numpy" / "__init__.py")
    table["files"][target][4] = "A" * 43
    path.write_text(json.dumps(table))
    record = _check(probe, site, probe.integrity.load_hash_table(str(path)))
    assert record["numpy"]["modified"] == ["numpy/__init__.py"]


@pytest.mark.parametrize("text", [
    pytest.param("not json", id="not-json"),
    pytest.param('{"schema": "other", "files": {}}', id="wrong-schema"),
    pytest.param('{"schema": "envcheck-integrity-hashes-1", "files": []}', id="files-not-a-map"),
    pytest.param("[1, 2]", id="a-list"),
])
def test_a_damaged_table_is_ignored_and_everything_hashed(probe, site, text):
    path = site.parent / "damaged.json"
    path.write_text(text)
    table = probe.integrity.load_hash_table(str(path))
    assert _check(probe, site, table) == _check(probe, site) and table.hashed == 7
    assert integrity_cache.read_table(path) is None


def test_rows_of_the_wrong_shape_are_dropped_one_by_one(probe, site):
    good = [1, 2, 3, 4, "A" * 43]
    rows = {"/good": good, "/short": good[:4], "/negative": [-1, *good[1:]], "/text": ["1", *good[1:]],
            "/bool": [True, *good[1:]], "/digest": [1, 2, 3, 4, "abc"], "/nested": [1, 2, 3, 4, ["A" * 43]]}
    path = site.parent / "rows.json"
    path.write_text(json.dumps({"schema": "envcheck-integrity-hashes-1", "files": rows}))
    assert probe.integrity.load_hash_table(str(path)).previous == {"/good": good}
    assert integrity_cache.read_table(path) == {"schema": "envcheck-integrity-hashes-1", "files": {"/good": good}}


def test_a_table_past_the_size_bound_is_ignored(probe, site, monkeypatch):
    path = site.parent / "big.json"
    path.write_text(json.dumps({"schema": "envcheck-integrity-hashes-1", "files": {}}) + " " * 64)
    monkeypatch.setattr(probe.integrity, "HASH_TABLE_MAX_BYTES", 32)
    monkeypatch.setattr(integrity_cache, "MAX_BYTES", 32)
    assert probe.integrity.load_hash_table(str(path)).previous == {}
    assert integrity_cache.read_table(path) is None


def test_files_in_the_table_are_still_checked_after_the_deadline_the_others_counted(probe, site):
    load = _warm(probe, site)
    (site / "numpy" / "__init__.py").write_bytes(b"X = 2\n")
    record = _check(probe, site, load(), deadline_s=-1)
    assert record["numpy"]["checked"] == 3 and record["numpy"]["unchecked"] == 1
    assert record["tensorflow"]["checked"] == 3


def test_the_host_and_the_probe_agree_on_the_table(probe):
    assert (integrity_cache.TABLE_IN, integrity_cache.TABLE_OUT, integrity_cache.SCHEMA, integrity_cache.MAX_BYTES,
            integrity_cache.MAX_FILES, integrity_cache.RECORD_DIGEST_LENGTH) == (
        probe.integrity.HASH_TABLE_IN, probe.integrity.HASH_TABLE_OUT, probe.integrity.HASH_TABLE_SCHEMA,
        probe.integrity.HASH_TABLE_MAX_BYTES, probe.integrity.HASH_TABLE_MAX_FILES,
        probe.integrity.RECORD_DIGEST_LENGTH)


def test_the_host_keeps_a_valid_table_per_identity_and_clears_the_probe_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    empty = {"schema": integrity_cache.SCHEMA, "files": {}}
    assert json.loads(integrity_cache.table_to_hand_in("docker\0d\0sha256:1")) == empty  # nothing kept yet
    integrity_cache.hand_in("docker\0d\0sha256:1", out)
    table = {"schema": integrity_cache.SCHEMA, "files": {"/usr/x.py": [1, 2, 3, 4, "A" * 43]}}
    (out / integrity_cache.TABLE_OUT).write_text(json.dumps(table))
    integrity_cache.take_back("docker\0d\0sha256:1", out)
    assert list(out.iterdir()) == []
    assert json.loads(integrity_cache.table_to_hand_in("docker\0d\0sha256:1")) == table
    assert json.loads(integrity_cache.table_to_hand_in("docker\0d\0sha256:2")) == empty  # another image
    (out / integrity_cache.TABLE_OUT).write_text("damaged")
    integrity_cache.take_back("docker\0d\0sha256:1", out)  # not kept: the last good table stays
    assert json.loads(integrity_cache.table_to_hand_in("docker\0d\0sha256:1")) == table
