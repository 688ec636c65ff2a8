"""Loading a fleet: find the report files, read and validate each once, drop what cannot count, index the rest.

A file is skipped with its reason (unreadable, not a report, a duplicate of another, dated in the
future); a report older than --since is counted but not indexed.

A file whose path and status (size, mtime, ctime, inode) are those the review's index (store.py) recorded,
well after the file last changed, is not read: its sha256, its reason to be skipped or its rows come from
the index, and the same decisions as above are taken on them; new, changed and recently changed files are
read in batches (batch.py), in worker processes when there are many. The full target entries of the latest
runs (the evidence a page shows) are kept from that read where their file was read here (a review with
1 % new reports reads no file twice), else read again from their files, checked against the sha256 that
was indexed: one file per site × host × target, however long the fleet's history. Whatever the index cannot
stand in for (a value it cannot type, a file changed under the review), every file is read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from envcheck import schemas
from envcheck.model import VERDICT_RANK
from envcheck.review import store
from envcheck.review.batch import FILE, STORED_RUN_COLUMNS, read_batches
from envcheck.review.find import STATUS_COLUMNS, Found, report_files_with_status
from envcheck.review.index import DIFF_COLUMNS, RUN_COLUMNS, Fleet, IndexBuilder, newest_rows, places
from envcheck.review.read import parse_report, read_bytes
from envcheck.review.store import Content, IndexUnusable

FUTURE_SLACK = pd.Timedelta(days=1)
"""A report dated later than now + this is suspicious (a wrong clock), and would stay 'latest' for ever."""


def load_fleet(paths: list[Path], since: pd.Timestamp | None = None) -> Fleet:
    """Every report under `paths` created at or after `since`, indexed; each new or changed file is read
    once, an unchanged one not at all (its rows come from the index beside the reports)."""
    found, skipped = report_files_with_status(paths)
    folder = store.folder_for(paths) if len(found) >= store.MIN_FILES else None
    if folder is not None:
        try:
            return _load_indexed(folder, found, list(skipped), since)
        except IndexUnusable:
            pass
    return load_every_file([Path(path) for path in found.paths], skipped, since)


def load_every_file(files: list[Path], skipped: list[tuple[str, str]], since: pd.Timestamp | None) -> Fleet:
    """The fleet of `files`, every one read, parsed and validated (no index read or written)."""
    index = IndexBuilder()
    read = older = 0
    seen: dict[str, str] = {}
    latest_plausible = pd.Timestamp.now(tz="UTC") + FUTURE_SLACK
    for path in files:
        content = read_bytes(path)
        if isinstance(content, str):
            skipped.append((str(path), content))
            continue
        digest = hashlib.sha256(content).hexdigest()
        if digest in seen:  # the same report copied twice counts once
            skipped.append((str(path), f"duplicate of {seen[digest]}"))
            continue
        seen[digest] = str(path)
        document, created, problem = parse_report(content)
        if document is None or created is None:
            skipped.append((str(path), problem or "unreadable"))
            continue
        if created > latest_plausible:
            skipped.append((str(path), _future(document["created"])))
            continue
        if since is not None and created < since:
            older += 1
            continue
        read += 1
        index.add(str(path), created, document)
    return index.build(skipped, files_read=read, files_before_since=older)


def _future(created: str) -> str:
    return f"created in the future ({created}): check that machine's clock"


@dataclass
class _Pass:
    """One pass over the files with the index: which runs count, and what the index will hold."""

    runs: list[pa.Table]
    diffs: list[pa.Table]
    """The rows of the reports parsed in this review (batch.py)."""
    files: store.Files
    """Every readable file found (one row per path): the index's next files."""
    listed_ns: int
    """When this review began to look at `files` (what the index's next reviews compare their ctimes with)."""
    changed: bool
    """Whether `files` differ from the stored ones, or some were not trusted (the index is then written again)."""
    recorded: np.ndarray
    """Per row of `files`: whether it was read in this review (new, changed or not trusted): the delta's rows."""
    removed: np.ndarray
    """The stored paths no longer among the readable files."""
    included: list[str]
    """The file of every report kept, in the order the files were found…"""
    included_contents: list[str]
    """… and its content (sha256)."""
    older: int
    parsed_targets: dict[tuple[str, int], dict[str, Any]]
    """Target entries parsed in this review, by (content, target index): evidence that needs no second read."""


def _load_indexed(folder: Path, found: Found, skipped: list[tuple[str, str]],
                  since: pd.Timestamp | None) -> Fleet:
    stored = store.read_index(folder)
    walk = _walk(stored, found, skipped, since)
    runs_table = store.combine(stored.runs, *walk.runs)
    diffs_table = store.combine(stored.diffs, *walk.diffs)
    run_spans, diff_spans = store.spans(runs_table), store.spans(diffs_table)

    kept, run_counts = store.take(runs_table, run_spans, walk.included_contents)
    runs = store.decode(kept, STORED_RUN_COLUMNS)
    runs.insert(FILE, "file", np.repeat(np.array(walk.included, dtype=object), run_counts))
    if runs.empty:
        runs = pd.DataFrame([], columns=RUN_COLUMNS)
    kept_diffs, diff_counts = store.take(diffs_table, diff_spans, walk.included_contents)
    diffs = store.decode(kept_diffs, DIFF_COLUMNS)
    if not diffs.empty:  # a stored diff's row counts within its report: shifted to where that report's rows are
        first_rows = np.cumsum(run_counts) - run_counts
        diffs["row"] = diffs["row"].to_numpy() + np.repeat(first_rows, diff_counts)
    runs["verdict_rank"] = runs["verdict"].map(VERDICT_RANK)
    runs["place"] = places(runs)
    fleet = Fleet(runs=runs, diffs=diffs, skipped=skipped, files_read=len(walk.included),
                  files_before_since=walk.older, newest_targets=_newest_targets(runs, walk, run_counts))

    if walk.changed:
        _store(folder, stored, walk, (runs_table, run_spans), (diffs_table, diff_spans))
    return fleet


def _store(folder: Path, stored: store.Stored, walk: _Pass, runs: tuple[pa.Table, store.Spans],
           diffs: tuple[pa.Table, store.Spans]) -> None:
    """Record this review's changes: as the delta beside the stored base (a few rows), or, when the delta
    would grow too large or there is no base, as a new base of the files found and their reports' rows."""
    recorded = walk.files.take(np.flatnonzero(walk.recorded))
    delta = stored.delta.then(recorded, walk.removed, walk.runs, walk.diffs)
    if stored.base_write is not None and not stored.needs_compaction(delta):
        store.write_delta(folder, stored.base_write, delta)
        return
    reports = pd.unique(walk.files.sha256[pd.isna(walk.files.problem)]).tolist()
    store.write_index(folder, walk.files, store.take(*runs, reports)[0], store.take(*diffs, reports)[0])


@dataclass
class _Listing:
    """The files found, as columns: as shown, by absolute path (the index's key), and their status
    (STATUS_COLUMNS, typed as store.Files types them)."""

    shown: np.ndarray
    keys: np.ndarray
    status: dict[str, np.ndarray]
    listed_ns: int

    @classmethod
    def of(cls, found: Found) -> _Listing:
        status = {name: np.array(getattr(found, name), dtype=np.uint64 if name == "inode" else np.int64)
                  for name in STATUS_COLUMNS}
        return cls(np.array(found.paths, dtype=object), np.array(found.keys, dtype=object), status,
                   found.listed_ns)


@dataclass
class _Read:
    """What each file's content is, as far as the index or a read tells."""

    unchanged: np.ndarray
    """Whether the file is the one the index knows (path and status, recorded well after it last changed):
    it was not read."""
    stored_at: np.ndarray
    """Where each file's path is among the stored files (-1: not there)."""
    digests: np.ndarray
    reasons: list[tuple[int, str]]
    """(file number, why it cannot be read)."""
    parsed: dict[str, Content]
    """The contents parsed now, by sha256."""
    runs: list[pa.Table]
    diffs: list[pa.Table]
    targets: dict[tuple[str, int], dict[str, Any]]
    """Full target entries parsed now, by (content, target index): the newest of each identity (Batch.newest)."""


def _read(stored: store.Stored, files: _Listing) -> _Read:
    """The files matched against the index's (one hash join on the path, then each status column compared),
    and those new, changed or not trusted read."""
    old = stored.files
    at = stored.paths.get_indexer(files.keys) if len(old) else np.full(len(files.keys), -1)
    unchanged = at >= 0
    same = at[unchanged]
    unchanged[unchanged] = stored.trusted(same) & np.logical_and.reduce(
        [getattr(old, name)[same] == files.status[name][unchanged] for name in STATUS_COLUMNS])
    # (the status was taken before any read, so a change made during this review is seen next time)
    read = _Read(unchanged, at, np.empty(len(files.keys), dtype=object), [], {}, [], [], {})
    # A content whose rows the index holds though no file of it is stored (deleted, then put back before the
    # delta was compacted) is parsed again, for what it is, but its rows are not added twice.
    has_rows = set(pc.unique(stored.runs.column(store.CONTENT)).to_pylist()) if stored.runs is not None else set()
    read.digests[unchanged] = old.sha256[at[unchanged]]
    new_or_changed = np.flatnonzero(~unchanged).tolist()
    start = 0
    for batch in read_batches(files.shown[new_or_changed].tolist(), set(old.sha256.tolist())):
        numbers = new_or_changed[start:start + len(batch.digests)]
        start += len(numbers)
        kept = set()
        for number, problem, digest, content in zip(numbers, batch.problems, batch.digests, batch.contents,
                                                    strict=True):
            if problem is not None:
                read.reasons.append((number, problem))
                continue
            read.digests[number] = digest
            if content is not None and digest not in read.parsed:  # (not parsed already by an earlier batch)
                read.parsed[digest] = content
                if digest not in has_rows:
                    kept.add(digest)
        runs, diffs = batch.rows_of(kept)
        read.targets.update(batch.newest)
        read.runs.append(runs)
        read.diffs.append(diffs)
    return read


def _walk(stored: store.Stored, found: Found, skipped: list[tuple[str, str]],
          since: pd.Timestamp | None) -> _Pass:
    """The decisions of load_every_file, taken on what the index knows of the files that have not
    changed and on what reading tells of the others: as columns (100,000 files are matched against the
    index by one hash join), with a Python step only for each file read."""
    old, files = stored.files, _Listing.of(found)
    read = _read(stored, files)
    digests, shown, reasons = read.digests, files.shown, list(read.reasons)
    readable = np.ones(len(shown), dtype=bool)
    readable[[number for number, _ in reasons]] = False
    order = np.flatnonzero(readable)

    # The same report copied twice counts once: the first file found with a content stands for it.
    repeated = pd.Series(digests[order], dtype=object).duplicated().to_numpy()
    unique = order[~repeated]
    first_file = dict(zip(digests[unique].tolist(), shown[unique].tolist(), strict=True))
    reasons += [(number, f"duplicate of {first_file[digests[number]]}") for number in order[repeated].tolist()]

    described = _describe(old, digests[unique], read.parsed)
    has_problem = pd.notna(described.problem)
    if (~has_problem & ~described.has_time).any():
        raise IndexUnusable("a report without a time")
    future = ~has_problem & (described.created_ns > (pd.Timestamp.now(tz="UTC") + FUTURE_SLACK).value)
    older = ~has_problem & ~future & (described.created_ns < since.value if since is not None else False)
    reasons += zip(unique[has_problem].tolist(), described.problem[has_problem].tolist(), strict=True)
    reasons += [(number, _future(text))
                for number, text in zip(unique[future].tolist(), described.created_text[future].tolist(), strict=True)]
    skipped.extend((shown[number], why) for number, why in sorted(reasons, key=lambda reason: reason[0]))
    included = unique[~has_problem & ~future & ~older]

    # The index's next files: every readable one, described by its content, once per path.
    once = order[~pd.Series(files.keys[order], dtype=object).duplicated().to_numpy()]
    kept = described.take(pd.Index(digests[unique], dtype=object).get_indexer(digests[once]))
    kept.path = files.keys[once]
    for name in STATUS_COLUMNS:
        setattr(kept, name, files.status[name][once])
    kept.listed_ns[:] = files.listed_ns
    still_there = np.zeros(len(old), dtype=bool)
    still_there[read.stored_at[once][read.stored_at[once] >= 0]] = True
    changed = not (read.unchanged[once].all() and len(once) == len(old))
    return _Pass(runs=read.runs, diffs=read.diffs, files=kept, listed_ns=files.listed_ns, changed=changed,
                 recorded=~read.unchanged[once], removed=old.path[~still_there],
                 included=shown[included].tolist(), included_contents=digests[included].tolist(),
                 older=int(older.sum()), parsed_targets=read.targets)


def _describe(old: store.Files, digests: np.ndarray, parsed: dict[str, Content]) -> store.Files:
    """What each content is (one row per content, in order; path, size and time left blank): as the index
    knows it, else as parsed now."""
    described = store.Files.blank(len(digests))
    first = np.flatnonzero(~pd.Series(old.sha256, dtype=object).duplicated().to_numpy())  # (copies: one each)
    at = pd.Index(old.sha256[first], dtype=object).get_indexer(digests) if len(first) else np.full(len(digests), -1)
    known = at >= 0
    described.put(np.flatnonzero(known), old.take(first[at[known]]))
    described.sha256 = digests
    for position in np.flatnonzero(~known).tolist():
        content = parsed[digests[position]]
        described.problem[position] = content.problem
        described.has_time[position] = content.created_ns is not None
        described.created_ns[position] = content.created_ns or 0
        described.created_text[position] = content.created_text
    return described


def _newest_targets(runs: pd.DataFrame, walk: _Pass, run_counts: np.ndarray) -> dict[int, dict[str, Any]]:
    """The full target entry of the newest run of each identity (a later file wins a tie, as in
    IndexBuilder): as parsed in this review when its file was read now, else read again from its file,
    checked to be the content that was indexed (a few hundred files for a fleet of any length: one per
    site × host × target)."""
    if runs.empty:
        return {}
    newest = newest_rows(runs)
    owner = np.repeat(np.arange(len(walk.included)), run_counts)
    wanted: dict[int, list[tuple[int, int]]] = {}
    for row in sorted(int(r) for r in newest):
        wanted.setdefault(int(owner[row]), []).append((row, int(runs.at[row, "target_index"])))
    targets: dict[int, dict[str, Any]] = {}
    for which, rows in wanted.items():
        file, digest = walk.included[which], walk.included_contents[which]
        if all((digest, index) in walk.parsed_targets for _, index in rows):  # (the bytes its rows came from)
            targets.update((row, walk.parsed_targets[digest, index]) for row, index in rows)
            continue
        data = read_bytes(file)
        if isinstance(data, str) or hashlib.sha256(data).hexdigest() != digest:
            raise IndexUnusable(f"{file} changed during the review")
        document = schemas.loads(data)  # the very bytes that passed parse_report when they were indexed
        for row, index in rows:
            targets[row] = document["targets"][index]
    return {row: targets[row] for row in sorted(targets)}
