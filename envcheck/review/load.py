"""Loading a fleet: find the report files, read and validate each once, drop what cannot count, index the rest.

A file is skipped with its reason (unreadable, not a report, a duplicate of another, dated in the
future); a report older than --since is counted but not indexed.

A file whose path, size and modification time are those the review's index (store.py) recorded is not
read: its sha256, its reason to be skipped or its rows come from the index, and the same decisions as
above are taken on them. The full target entries of the latest runs (the evidence a page shows) are kept
from the files read now, or read again for the few latest runs that came from the index. Whatever the
index cannot stand in for (a value it cannot type, a file changed under the review), every file is read.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from envcheck.model import VERDICT_RANK
from envcheck.review import store
from envcheck.review.find import report_files_with_status
from envcheck.review.index import DIFF_COLUMNS, RUN_COLUMNS, Fleet, IndexBuilder, places
from envcheck.review.read import parse_report, read_bytes, utc_time
from envcheck.review.store import Content, IndexUnusable

FUTURE_SLACK = pd.Timedelta(days=1)
"""A report dated later than now + this is suspicious (a wrong clock), and would stay 'latest' for ever."""
FILE = RUN_COLUMNS.index("file")
STORED_RUN_COLUMNS = [name for name in RUN_COLUMNS if name != "file"]
"""A stored run is filed under its content: `file` is the path it is found at in this review."""
IDENTITY = ["golden_sha256", "site", "host", "spec"]
"""A target's identity (index.py): the newest run of each is the one whose full entry a page shows."""


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
    return load_every_file([path for path, _ in found], skipped, since)


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
        document, problem = parse_report(content)
        if document is None:
            skipped.append((str(path), problem or "unreadable"))
            continue
        created = utc_time(document["created"])
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
class _Fresh:
    """The reports parsed in this review: their rows in one IndexBuilder, where each content's rows start."""

    builder: IndexBuilder = field(default_factory=IndexBuilder)
    start: dict[str, int] = field(default_factory=dict)
    contents: list[str] = field(default_factory=list)
    """The content (sha256) of each builder row."""


@dataclass
class _Pass:
    """One pass over the files with the index: what each file is, and which runs count."""

    fresh: _Fresh = field(default_factory=_Fresh)
    entries: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    """The index's next files: absolute path → (size, mtime_ns, sha256)."""
    contents: dict[str, Content] = field(default_factory=dict)
    included: list[tuple[str, str]] = field(default_factory=list)
    """(file, content) of every report kept, in the order the files were found."""
    older: int = 0


def _load_indexed(folder: Path, files: list[tuple[Path, os.stat_result]], skipped: list[tuple[str, str]],
                  since: pd.Timestamp | None) -> Fleet:
    stored = store.read_index(folder)
    walk = _walk(stored, files, skipped, since)
    fresh, included = walk.fresh, walk.included
    runs_table = store.combine(stored.runs, store.encode(STORED_RUN_COLUMNS, *_rows(fresh, "runs")))
    diffs_table = store.combine(stored.diffs, store.encode(DIFF_COLUMNS, *_rows(fresh, "diffs")))
    run_spans, diff_spans = store.spans(runs_table), store.spans(diffs_table)

    kept, run_counts = store.take(runs_table, run_spans, [c for _, c in included])
    runs = store.decode(kept, STORED_RUN_COLUMNS)
    runs.insert(FILE, "file", np.repeat(np.array([f for f, _ in included], dtype=object), run_counts))
    if runs.empty:
        runs = pd.DataFrame([], columns=RUN_COLUMNS)
    kept_diffs, diff_counts = store.take(diffs_table, diff_spans, [c for _, c in included])
    diffs = store.decode(kept_diffs, DIFF_COLUMNS)
    if not diffs.empty:  # a stored diff's row counts within its report: shifted to where that report's rows are
        first_rows = np.cumsum(run_counts) - run_counts
        diffs["row"] = diffs["row"].to_numpy() + np.repeat(first_rows, diff_counts)
    runs["verdict_rank"] = runs["verdict"].map(VERDICT_RANK)
    runs["place"] = places(runs)
    fleet = Fleet(runs=runs, diffs=diffs, skipped=skipped, files_read=len(included), files_before_since=walk.older,
                  newest_targets=_newest_targets(runs, fresh, run_counts, included))

    if walk.entries != stored.files:
        shas = dict.fromkeys(sha for _, _, sha in walk.entries.values())
        order = [sha for sha in shas if walk.contents[sha].problem is None]
        store.write_index(folder, walk.entries, walk.contents, store.take(runs_table, run_spans, order)[0],
                          store.take(diffs_table, diff_spans, order)[0])
    return fleet


def _walk(stored: store.Stored, files: list[tuple[Path, os.stat_result]], skipped: list[tuple[str, str]],
          since: pd.Timestamp | None) -> _Pass:
    """The decisions of load_every_file, taken on what the index knows of a file that has not changed
    and on what reading tells of one that has (or is new)."""
    walk = _Pass()
    seen: dict[str, str] = {}
    latest_plausible = (pd.Timestamp.now(tz="UTC") + FUTURE_SLACK).value
    since_ns = since.value if since is not None else None
    here = os.getcwd()
    for path, status in files:  # (status: taken before the read, so a later change is seen next time)
        name = str(path)
        key = name if os.path.isabs(name) else os.path.join(here, name)
        known = stored.files.get(key)
        data: bytes | None = None
        if known is not None and known[0] == status.st_size and known[1] == status.st_mtime_ns:
            digest = known[2]
        else:
            content = read_bytes(path)
            if isinstance(content, str):
                skipped.append((str(path), content))
                continue
            data, digest = content, hashlib.sha256(content).hexdigest()
        walk.entries[key] = (status.st_size, status.st_mtime_ns, digest)
        if digest in seen:  # the same report copied twice counts once
            skipped.append((str(path), f"duplicate of {seen[digest]}"))
            continue
        seen[digest] = str(path)
        described = stored.contents.get(digest) or _parse(path, data, digest, walk.fresh)
        walk.contents[digest] = described
        if described.problem is not None:
            skipped.append((str(path), described.problem))
        elif described.created_ns is None or described.created_text is None:
            raise IndexUnusable(f"{path}: no time")
        elif described.created_ns > latest_plausible:
            skipped.append((str(path), _future(described.created_text)))
        elif since_ns is not None and described.created_ns < since_ns:
            walk.older += 1
        else:
            walk.included.append((str(path), digest))
    return walk


def _parse(path: Path, data: bytes | None, digest: str, fresh: _Fresh) -> Content:
    """What a content the index does not know is: parsed, and its rows added to the fresh ones (whatever
    its date: the index keeps every report's rows, --since and the clock are applied on each review)."""
    if data is None:  # the index named this content but lost its description: read it again
        raise IndexUnusable(f"{path}: content {digest[:12]} not described")
    document, problem = parse_report(data)
    if document is None:
        return Content(problem or "unreadable")
    created = utc_time(document["created"])
    fresh.start[digest] = len(fresh.contents)
    fresh.contents.extend([digest] * len(document["targets"]))
    fresh.builder.add(str(path), created, document)
    return Content(None, created.value, document["created"])


def _rows(fresh: _Fresh, part: str) -> tuple[list[list[Any]], list[str]]:
    """The fresh rows as IndexBuilder collected them (lists in RUN_COLUMNS or DIFF_COLUMNS order), without
    `file` for runs (a stored run is filed under its content), and with a diff's row counted within its
    report; and the content of each."""
    runs: list[list[Any]] = fresh.builder.runs
    if part == "runs":
        return [row[:FILE] + row[FILE + 1:] for row in runs], fresh.contents
    diffs: list[list[Any]] = fresh.builder.diffs
    position = RUN_COLUMNS.index("target_index")
    return ([[runs[d[0]][position], *d[1:]] for d in diffs], [fresh.contents[d[0]] for d in diffs])


def _newest_targets(runs: pd.DataFrame, fresh: _Fresh, run_counts: np.ndarray,
                    included: list[tuple[str, str]]) -> dict[int, dict[str, Any]]:
    """The full target entry of the newest run of each identity (a later file wins a tie, as in
    IndexBuilder): kept from this review's read when its file was read now, else read again (sha-checked)."""
    if runs.empty:
        return {}
    newest = runs.sort_values("created", kind="stable").groupby(IDENTITY, sort=False, dropna=False).tail(1).index
    owner = np.repeat(np.arange(len(included)), run_counts)
    kept: dict[int, dict[str, Any]] = fresh.builder.newest_targets
    targets: dict[int, dict[str, Any]] = {}
    again: dict[int, list[tuple[int, int]]] = {}
    for row in sorted(int(r) for r in newest):
        _, digest = included[owner[row]]
        index = int(runs.at[row, "target_index"])
        start = fresh.start.get(digest)
        if start is not None and start + index in kept:
            targets[row] = kept[start + index]
        else:
            again.setdefault(int(owner[row]), []).append((row, index))
    for which, wanted in again.items():
        file, digest = included[which]
        data = read_bytes(Path(file))
        if isinstance(data, str) or hashlib.sha256(data).hexdigest() != digest:
            raise IndexUnusable(f"{file} changed during the review")
        document = json.loads(data)  # the very bytes that passed parse_report when they were indexed
        for row, index in wanted:
            targets[row] = document["targets"][index]
    return {row: targets[row] for row in sorted(targets)}
