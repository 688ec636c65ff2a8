"""The review's incremental index on disk: what earlier reviews extracted from each report, so that a file
whose path and status (size, mtime, ctime and inode: find.STATUS_COLUMNS) have not changed is not read again.

It lives beside the reports, in `<first folder reviewed>/.envcheck-review-index/` (find.py never looks
inside it), as three Parquet files, the base: the files (absolute path, status, sha256, what their content
was: the reason it is skipped, or its `created`, and when the review that recorded them began), the run
rows and the decisive differences, both keyed by the content's sha256 (copies of one report share their
rows; `file` is filled in when a review loads them). Beside the base, one delta file (delta.parquet) holds
what changed since: files added or changed, paths gone, and the rows of the new contents, all four in one
Parquet file, so that a review with a few new reports writes a few rows, committed by one atomic rename (a
crash leaves the old delta or the new one, never a mix). The delta names the base it applies to; when it
grows past COMPACT_FRACTION of the base, the review writes a new base instead (compaction) and the old delta,
naming the old base, no longer applies.
A review matches the files it finds against the stored ones as columns (load.py), never file by file.
A file whose ctime is within RACY_NS of the time the review that indexed it began is not trusted: a file
system clock that ticks coarsely could give a rewrite after that look the same ctime.

Why Parquet (pyarrow): the rows are a table of typed columns, which Parquet stores as such, compressed
column by column (100,000 runs take a few MB); pyarrow reads it back in milliseconds straight into the
columns pandas uses, where JSON, pickle or SQLite would rebuild every value as a Python object. One column
of a row may hold an int in one report and a float in another (a JSON number): each numeric column is
stored as float64 with an `is int` mask beside it, and a timestamp with its pandas unit, so the DataFrame a
review builds is the one reading every file would build (same values, same dtypes).

The index is a cache, never a source of truth: each file carries the format version, the RUN_COLUMNS and
DIFF_COLUMNS and a hash of all the code that turns a report into rows (reader_code_files), and one write's
token; one that is missing, unreadable, of another version or from two different writes is ignored, and
the review reads every report, as it does without an index (a delta that cannot be used is ignored alone:
the base is then an older, still true, picture of the files, which their status checks as always). Its
folder and files are never followed through a link: a link there (to another fleet's index, or to a folder
that is not the review's) is no index, and nothing is written through it. Each file is written to a temporary name and renamed.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import envcheck
from envcheck import localization_words, model, redact, schemas
from envcheck.review import read as reading
from envcheck.review.find import INDEX_FOLDER, STATUS_COLUMNS
from envcheck.review.index import DIFF_COLUMNS, RUN_COLUMNS
from envcheck.schemas import REPORT_SCHEMA

FORMAT_VERSION = 3
CONTENT = "__content__"
"""The key column of the stored runs and diffs: the sha256 of the report they were extracted from."""
IS_INT = "__is_int__"
UNIT = "__unit__"
PARTS = ("runs", "diffs", "files")
DELTA = "delta"
"""The delta's file name (delta.parquet): each of DELTA_PARTS as columns named `part/column`."""
DELTA_PARTS = {"files": "path", "removed": "path", "runs": CONTENT, "diffs": CONTENT}
"""The delta's parts and the column that is set in each row of a part (and in no other part's rows)."""
COMPACT_FRACTION = 0.2
"""A delta with more rows of files (added, changed or gone) than this fraction of the base's is compacted
into a new base: reading it and joining it to the base would soon cost more than the base's one write."""
COMPACT_BELOW = 1000
"""A base of fewer files is written whole on every change (milliseconds): a delta beside it would save
nothing and cost one more file to read."""
META_KEY = b"envcheck.review.index"
UNITS = ["s", "ms", "us", "ns"]
MIN_FILES = 100
"""Fewer report files than this are read in less time than an index takes to write: no index is made
for them (so a handful of reports, such as a test's or a repository's examples, leave no folder behind)."""
RACY_NS = 2 * 10**9
"""A file whose ctime is this close to (or later than) the start of the review that indexed it is read
again by the next review: a file system whose clock ticks coarsely (a few ms; a second or two on some)
could give a rewrite made after that review looked the very ctime it recorded."""
ROW_HELPERS = (localization_words, model, redact)
"""The modules outside envcheck/review and envcheck/schemas whose code decides a report's rows (index.py's)."""
NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
"""How the index's folder and files are opened: a link in the place of one is an error (ELOOP), never followed."""


class IndexUnusable(Exception):
    """The stored rows cannot stand in for reading the files (a value Parquet cannot hold as typed, a file
    that changed while it was read): the caller reads every file instead."""


class Content(NamedTuple):
    """What one report's bytes are: the reason they are skipped, or the report's `created` (ns since the
    epoch, UTC) and its text as written."""

    problem: str | None
    created_ns: int | None = None
    created_text: str | None = None


@dataclass
class Files:
    """Report files as columns, one row per file: absolute path, status (STATUS_COLUMNS), sha256 of the
    content, and what the content is (problem, or created_ns with has_time, and created_text). Columns, not
    a dict of tuples: 100,000 files are matched against the index with one hash join, not 100,000 lookups."""

    path: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray
    ctime_ns: np.ndarray
    inode: np.ndarray
    """uint64: an inode number may not fit an int64."""
    sha256: np.ndarray
    problem: np.ndarray
    created_ns: np.ndarray
    """0 where has_time is False (a skipped content has no time)."""
    has_time: np.ndarray
    created_text: np.ndarray
    listed_ns: np.ndarray
    """When the review that recorded the file began to look at the files (find.Found.listed_ns)."""

    @classmethod
    def blank(cls, count: int = 0) -> Files:
        """`count` files of which nothing is known yet."""
        def nothing() -> np.ndarray:
            return np.full(count, None, dtype=object)

        def zeros(kind: type = np.int64) -> np.ndarray:
            return np.zeros(count, dtype=kind)

        return cls(path=nothing(), size=zeros(), mtime_ns=zeros(), ctime_ns=zeros(), inode=zeros(np.uint64),
                   sha256=nothing(), problem=nothing(), created_ns=zeros(), has_time=zeros(bool),
                   created_text=nothing(), listed_ns=zeros())

    @classmethod
    def concat(cls, *parts: Files) -> Files:
        """The files of `parts`, one after the other."""
        return cls(**{column.name: np.concatenate([getattr(part, column.name) for part in parts])
                      for column in fields(cls)})

    def __len__(self) -> int:
        return len(self.path)

    def take(self, rows: np.ndarray) -> Files:
        """The files at positions `rows`, in that order."""
        return Files(**{column.name: getattr(self, column.name)[rows] for column in fields(self)})

    def put(self, rows: np.ndarray, other: Files) -> None:
        """Set the files at positions `rows` to `other`'s, in order."""
        for column in fields(self):
            getattr(self, column.name)[rows] = getattr(other, column.name)


@dataclass
class Delta:
    """What changed since the base: files added or changed (their rows replace the base's), paths gone, and
    the rows of the contents the base does not hold. A path is in `files` or in `removed`, never both."""

    files: Files = field(default_factory=Files.blank)
    removed: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    runs: pa.Table | None = None
    diffs: pa.Table | None = None

    def then(self, files: Files, removed: np.ndarray, runs: list[pa.Table], diffs: list[pa.Table]) -> Delta:
        """This delta followed by another review's changes (few rows: plain Python sets)."""
        touched = set(files.path.tolist()) | set(removed.tolist())
        earlier = np.array([path not in touched for path in self.files.path.tolist()], dtype=bool)
        gone = [path for path in self.removed.tolist() if path not in touched] + removed.tolist()
        return Delta(Files.concat(self.files.take(np.flatnonzero(earlier)), files), np.array(gone, dtype=object),
                     combine(self.runs, *runs), combine(self.diffs, *diffs))

    def __len__(self) -> int:
        """Rows of files it changes (what COMPACT_FRACTION counts)."""
        return len(self.files) + len(self.removed)


@dataclass
class Stored:
    """An index as read: its files, and the rows (None when there is no usable index); the base and the
    delta merged (a file's row in the delta replaces its base row), the delta also apart (a review with
    changes writes it again, with its own changes added)."""

    files: Files = field(default_factory=Files.blank)
    runs: pa.Table | None = None
    diffs: pa.Table | None = None
    base_write: str | None = None
    """The token of the base's write: the delta written next names it."""
    base_files: int = 0
    delta: Delta = field(default_factory=Delta)

    def trusted(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of these stored files was last changed well before its status was recorded (RACY_NS)."""
        return self.files.ctime_ns[rows] < self.files.listed_ns[rows] - RACY_NS

    @functools.cached_property
    def paths(self) -> pd.Index:
        """The files' paths as an index (hashed once: checked unique, then joined with the files found)."""
        return pd.Index(self.files.path, dtype=object)

    def needs_compaction(self, delta: Delta) -> bool:
        """Whether `delta` should be compacted into a new base (COMPACT_FRACTION, COMPACT_BELOW)."""
        return (self.base_write is None or self.base_files < COMPACT_BELOW
                or len(delta) > COMPACT_FRACTION * self.base_files)


def folder_for(paths: list[Path]) -> Path | None:
    """Where the index of a review of `paths` lives: in the first folder given; None when only files are."""
    for path in paths:
        if Path(path).is_dir():
            return Path(path) / INDEX_FOLDER
    return None


def reader_code_files() -> list[Path]:
    """Every file whose content decides what the index holds: each module of envcheck/review and
    envcheck/schemas, the schemas a report is validated with, and the row helpers (ROW_HELPERS)."""
    folders = [Path(reading.__file__).parent, Path(schemas.__file__).parent]
    packages = sorted(path for folder in folders for path in [*folder.glob("*.py"), *folder.glob("*.json")])
    return packages + [Path(str(module.__file__)) for module in ROW_HELPERS]


def code_digest(files: list[Path]) -> str:
    """A hash of the names and bytes of `files` (a file that cannot be read counts as empty)."""
    code = hashlib.sha256(envcheck.__version__.encode())
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        code.update(f"\0{path.name}\0{len(data)}\0".encode())
        code.update(data)
    return code.hexdigest()


@functools.cache
def _code() -> str:
    """The hash of the reader's code (once per process: a few dozen small files)."""
    return code_digest(reader_code_files())


def _stamp() -> str:
    """What a stored index must have been written with to be used: this format, these columns, this code."""
    return json.dumps({"format": FORMAT_VERSION, "schema": REPORT_SCHEMA, "runs": RUN_COLUMNS,
                       "diffs": DIFF_COLUMNS, "code": _code()})


def _open_folder(folder: Path) -> int:
    """A descriptor of the index's folder itself, never of where a link in its place points (OSError then)."""
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NO_FOLLOW)


def _read_part(folder: int, part: str) -> pa.Table:
    """One part of the index, from the folder's descriptor; OSError for a link in its place."""
    with os.fdopen(os.open(f"{part}.parquet", os.O_RDONLY | NO_FOLLOW, dir_fd=folder), "rb") as file:
        return pq.read_table(file)


def _metadata(table: pa.Table) -> dict[str, Any]:
    """The stamp a part was written with ({} when it has none)."""
    stamp = json.loads((table.schema.metadata or {}).get(META_KEY) or b"{}")
    return stamp if isinstance(stamp, dict) else {}


def read_index(folder: Path | None) -> Stored:
    """The index in `folder`; an empty one when it is missing, stale or unreadable (never an error)."""
    if folder is None:
        return Stored()
    try:
        descriptor = _open_folder(folder)
        try:
            tables = {part: _read_part(descriptor, part) for part in PARTS}
            delta = _read_delta(descriptor)
        finally:
            os.close(descriptor)
        stamps = {json.dumps(_metadata(t), sort_keys=True) for t in tables.values()}
        if len(stamps) != 1:
            return Stored()
        stamp = json.loads(stamps.pop())
        if stamp.get("stamp") != _stamp() or not isinstance(stamp.get("write"), str):
            return Stored()
        files = tables["files"]
        if any(files.column(name).null_count for name in ("path", *STATUS_COLUMNS, "sha256", "listed_ns")):
            return Stored()
        for part in ("runs", "diffs"):
            if CONTENT not in tables[part].column_names:
                return Stored()
        base = Stored(files=_files_of(files), runs=tables["runs"], diffs=tables["diffs"], base_write=stamp["write"],
                      base_files=files.num_rows)
        stored = _with_delta(base, delta)
        if not stored.paths.is_unique:  # (one row per path: matched by a hash join)
            return Stored()
        return stored
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return Stored()


def _read_delta(folder: int) -> pa.Table | None:
    """The delta file, None when there is none (a link in its place is an error, as for the base)."""
    try:
        return _read_part(folder, DELTA)
    except FileNotFoundError:
        return None


def _with_delta(base: Stored, table: pa.Table | None) -> Stored:
    """The base with the delta's changes applied; the base alone when the delta is none, of another base
    or unusable (an older picture of the files, still a true one)."""
    if table is None:
        return base
    stamp = _metadata(table)
    if stamp.get("stamp") != _stamp() or stamp.get("base") != base.base_write:
        return base
    try:
        parts = {part: _delta_part(table, part) for part in DELTA_PARTS}
        files = parts["files"]
        if any(files.column(name).null_count for name in ("path", *STATUS_COLUMNS, "sha256", "listed_ns")):
            return base
        delta = Delta(_files_of(files), np.asarray(parts["removed"].column("path").to_numpy(zero_copy_only=False),
                                                   dtype=object), parts["runs"], parts["diffs"])
        runs, diffs = combine(base.runs, delta.runs), combine(base.diffs, delta.diffs)
    except (KeyError, ValueError, TypeError, pa.ArrowException, IndexUnusable):
        return base
    replaced = pd.Index(base.files.path, dtype=object).isin(set(delta.files.path.tolist()) | set(delta.removed.tolist()))
    return Stored(files=Files.concat(base.files.take(np.flatnonzero(~replaced)), delta.files), runs=runs,
                  diffs=diffs, base_write=base.base_write, base_files=base.base_files, delta=delta)


def _delta_part(table: pa.Table, part: str) -> pa.Table:
    """One part of the delta: the rows whose key column (DELTA_PARTS) is set, its columns named as in the base."""
    prefix = f"{part}/"
    names = [name for name in table.column_names if name.startswith(prefix)]
    rows = table.filter(table.column(prefix + DELTA_PARTS[part]).is_valid())
    return rows.select(names).rename_columns([name.removeprefix(prefix) for name in names])


def encode(columns: list[str], rows: list[list[Any]], contents: list[str]) -> pa.Table:
    """Rows (lists in `columns` order, as IndexBuilder collects them) as a typed table keyed by content;
    IndexUnusable when a column mixes values Parquet cannot type (a text in one row, a number in another)."""
    arrays: dict[str, pa.Array] = {CONTENT: pa.array(contents, pa.string())}
    values_by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    for name, values in zip(columns, values_by_column, strict=True):
        try:
            array = pa.array(list(values))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            raise IndexUnusable(f"column {name}: {error}") from None
        if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
            arrays[name] = array.cast(pa.float64())
            arrays[name + IS_INT] = pa.array([type(v) is int for v in values], pa.bool_())
        elif pa.types.is_timestamp(array.type):
            arrays[name] = array.cast(pa.timestamp("ns", tz="UTC"))
            arrays[name + UNIT] = pa.array([getattr(v, "unit", None) for v in values], pa.string())
        elif pa.types.is_null(array.type) or pa.types.is_string(array.type) or pa.types.is_boolean(array.type):
            arrays[name] = array
        else:
            raise IndexUnusable(f"column {name}: {array.type}")
    return pa.table(arrays)


def combine(*tables: pa.Table | None) -> pa.Table:
    """The tables as one (a column typed in one and all empty in another takes the type)."""
    present = [t for t in tables if t is not None]
    try:
        return pa.concat_tables(present, promote_options="default")
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise IndexUnusable(str(error)) from None


class Spans(NamedTuple):
    """Where each content's rows are in a table whose rows of one content are together."""

    contents: pd.Index
    starts: np.ndarray
    counts: np.ndarray


def spans(table: pa.Table) -> Spans:
    """The contents of `table` with their first row and row count; IndexUnusable when a content's rows
    are not together (an index written by something else)."""
    if table.num_rows == 0:
        return Spans(pd.Index([], dtype=object), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    keys = np.asarray(table.column(CONTENT).to_numpy(zero_copy_only=False), dtype=object)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.r_[starts[1:], len(keys)] - starts
    contents = pd.Index(keys[starts], dtype=object)
    if not contents.is_unique:
        raise IndexUnusable("a content's rows are apart")
    return Spans(contents, starts, counts)


def take(table: pa.Table, where: Spans, contents: list[str]) -> tuple[pa.Table, np.ndarray]:
    """The rows of `contents`, in that order (none for a content without rows), and how many each has."""
    at = where.contents.get_indexer(contents) if len(where.contents) else np.full(len(contents), -1)
    present = at >= 0
    starts, counts = np.zeros(len(contents), dtype=np.int64), np.zeros(len(contents), dtype=np.int64)
    starts[present], counts[present] = where.starts[at[present]], where.counts[at[present]]
    total = int(counts.sum())
    offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)
    if total == table.num_rows and (offsets == np.arange(total)).all():  # every row, in order: nothing to copy
        return table, counts
    return table.take(pa.array(offsets, pa.int64())), counts


def decode(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """The stored columns as the DataFrame that `pd.DataFrame(rows, columns=columns)` builds from the
    same values: an int column with no gap stays int64, a column of nothing but None is object…"""
    if table.num_rows == 0:
        return pd.DataFrame([], columns=columns)
    data: dict[str, Any] = {}
    for name in columns:
        column = table.column(name)
        kind = column.type
        if column.null_count == len(column):
            data[name] = np.full(len(column), None, dtype=object)
        elif pa.types.is_floating(kind):
            is_int = table.column(name + IS_INT) if name + IS_INT in table.column_names else None
            whole = (column.null_count == 0 and is_int is not None and is_int.null_count == 0
                     and pc.all(is_int).as_py())
            data[name] = column.cast(pa.int64()).to_numpy() if whole else column.to_numpy()
        elif pa.types.is_timestamp(kind):
            units = set(table.column(name + UNIT).to_pylist()) - {None}
            finest = max(units, key=UNITS.index) if units <= set(UNITS) and units else "ns"
            data[name] = column.to_pandas().dt.as_unit(finest)
        else:
            data[name] = column.to_pandas()
    return pd.DataFrame(data, columns=columns)


def _files_of(table: pa.Table) -> Files:
    """The files part as columns (an int column with gaps is read through a mask: as floats it would lose
    the last digits of a time in ns)."""
    def column(name: str) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False))

    created = table.column("created_ns")
    return Files(path=column("path"), size=column("size"), mtime_ns=column("mtime_ns"), ctime_ns=column("ctime_ns"),
                 inode=column("inode"), sha256=column("sha256"), problem=column("problem"),
                 created_ns=np.asarray(pc.fill_null(created, 0).to_numpy(zero_copy_only=False), dtype=np.int64),
                 has_time=np.asarray(created.is_valid().to_numpy(zero_copy_only=False), dtype=bool),
                 created_text=column("created_text"), listed_ns=column("listed_ns"))


def _files_table(files: Files) -> pa.Table:
    """The files as the index stores them."""
    return pa.table({"path": pa.array(files.path, pa.string()), "size": pa.array(files.size, pa.int64()),
                     "mtime_ns": pa.array(files.mtime_ns, pa.int64()),
                     "ctime_ns": pa.array(files.ctime_ns, pa.int64()),
                     "inode": pa.array(files.inode, pa.uint64()),
                     "sha256": pa.array(files.sha256, pa.string()),
                     "problem": pa.array(files.problem, pa.string()),
                     "created_ns": pa.array(files.created_ns, pa.int64(), mask=~files.has_time),
                     "created_text": pa.array(files.created_text, pa.string()),
                     "listed_ns": pa.array(files.listed_ns, pa.int64())})


def write_index(folder: Path, files: Files, runs: pa.Table, diffs: pa.Table) -> None:
    """Store the index as a new base, without a delta (each part written whole under a temporary name, then
    renamed, all within the folder opened once, never through a link); a folder that cannot be written, or
    a link in its place, leaves the review without an index, not failed."""
    tables = {"runs": runs, "diffs": diffs, "files": _files_table(files)}
    stamp = json.dumps({"stamp": _stamp(), "write": uuid.uuid4().hex}).encode()
    try:
        os.mkdir(folder)  # (not through a link in its place, even a dangling one: that is FileExistsError)
    except FileExistsError:
        pass
    except OSError:
        return
    with _folder_for_writing(folder) as descriptor:
        if descriptor is None:
            return
        for part, table in tables.items():  # files last: it names the write the other parts belong to
            if not _write_part(descriptor, part, table.replace_schema_metadata({META_KEY: stamp})):
                return
        with contextlib.suppress(OSError):  # (a delta left would name the old base: never applied again)
            os.unlink(f"{DELTA}.parquet", dir_fd=descriptor)


def write_delta(folder: Path, base_write: str, delta: Delta) -> None:
    """Store `delta` beside the base written as `base_write`: one file, written under a temporary name and
    renamed over the previous delta (the commit: a crash before it leaves the previous delta in force)."""
    parts = {"files": _files_table(delta.files), "removed": pa.table({"path": pa.array(delta.removed, pa.string())}),
             "runs": delta.runs, "diffs": delta.diffs}
    table = pa.concat_tables([table.rename_columns([f"{part}/{name}" for name in table.column_names])
                              for part, table in parts.items() if table is not None], promote_options="default")
    stamp = json.dumps({"stamp": _stamp(), "base": base_write, "write": uuid.uuid4().hex}).encode()
    with _folder_for_writing(folder) as descriptor:
        if descriptor is not None:
            _write_part(descriptor, DELTA, table.replace_schema_metadata({META_KEY: stamp}))


@contextlib.contextmanager
def _folder_for_writing(folder: Path) -> Iterator[int | None]:
    """A descriptor of the index's folder, None where it cannot be opened (a link in its place)."""
    try:
        descriptor = _open_folder(folder)
    except OSError:
        yield None
        return
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _write_part(folder: int, part: str, table: pa.Table) -> bool:
    """Write `part`.parquet under a temporary name and rename it into place; False (nothing left) when it
    cannot be written."""
    name = f".{part}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644, dir_fd=folder),
                       "wb") as file:
            pq.write_table(table, file, compression="zstd")
        os.replace(name, f"{part}.parquet", src_dir_fd=folder, dst_dir_fd=folder)
        return True
    except (OSError, pa.ArrowException):
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=folder)
        return False
