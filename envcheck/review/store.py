"""The review's incremental index on disk: what earlier reviews extracted from each report, so that a file
whose path and status (size, mtime, ctime and inode: find.STATUS_COLUMNS) have not changed is not read again.

It lives beside the reports, in `<first folder reviewed>/.envcheck-review-index/` (find.py never looks
inside it), as three Parquet files: the files (absolute path, status, sha256, and what their content
was: the reason it is skipped, or its `created`), the run rows and the decisive differences, both keyed by
the content's sha256 (copies of one report share their rows; `file` is filled in when a review loads them).
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
the review reads every report, as it does without an index. Its folder and files are never followed
through a link: a link there (to another fleet's index, or to a folder that is not the review's) is no
index, and nothing is written through it. Each file is written to a temporary name and renamed.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import uuid
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

FORMAT_VERSION = 2
CONTENT = "__content__"
"""The key column of the stored runs and diffs: the sha256 of the report they were extracted from."""
IS_INT = "__is_int__"
UNIT = "__unit__"
PARTS = ("runs", "diffs", "files")
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

    @classmethod
    def blank(cls, count: int = 0) -> Files:
        """`count` files of which nothing is known yet."""
        def nothing() -> np.ndarray:
            return np.full(count, None, dtype=object)

        def zeros(kind: type = np.int64) -> np.ndarray:
            return np.zeros(count, dtype=kind)

        return cls(path=nothing(), size=zeros(), mtime_ns=zeros(), ctime_ns=zeros(), inode=zeros(np.uint64),
                   sha256=nothing(), problem=nothing(), created_ns=zeros(), has_time=zeros(bool),
                   created_text=nothing())

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
class Stored:
    """An index as read: its files, and the rows (None when there is no usable index)."""

    files: Files = field(default_factory=Files.blank)
    runs: pa.Table | None = None
    diffs: pa.Table | None = None
    listed_ns: int = 0
    """When the review that wrote it began to look at the files (find.Found.listed_ns)."""

    def trusted(self, rows: np.ndarray) -> np.ndarray:
        """Whether each of these stored files was last changed well before its status was recorded (RACY_NS)."""
        return self.files.ctime_ns[rows] < self.listed_ns - RACY_NS


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


def read_index(folder: Path | None) -> Stored:
    """The index in `folder`; an empty one when it is missing, stale or unreadable (never an error)."""
    if folder is None:
        return Stored()
    try:
        descriptor = _open_folder(folder)
        try:
            tables = {part: _read_part(descriptor, part) for part in PARTS}
        finally:
            os.close(descriptor)
        stamps = {(t.schema.metadata or {}).get(META_KEY) for t in tables.values()}
        if len(stamps) != 1:
            return Stored()
        stamp = json.loads(stamps.pop() or b"{}")
        if stamp.get("stamp") != _stamp() or not isinstance(stamp.get("listed_ns"), int):
            return Stored()
        files = tables["files"]
        if any(files.column(name).null_count for name in ("path", *STATUS_COLUMNS, "sha256")):
            return Stored()
        stored = Stored(files=_files_of(files), runs=tables["runs"], diffs=tables["diffs"],
                        listed_ns=stamp["listed_ns"])
        if not pd.Index(stored.files.path, dtype=object).is_unique:  # (one row per path: matched by a hash join)
            return Stored()
        for part in ("runs", "diffs"):
            if CONTENT not in tables[part].column_names:
                return Stored()
        return stored
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return Stored()


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
                 created_text=column("created_text"))


def write_index(folder: Path, files: Files, runs: pa.Table, diffs: pa.Table, listed_ns: int) -> None:
    """Store the index (each part written whole under a temporary name, then renamed, all within the folder
    opened once, never through a link); a folder that cannot be written, or a link in its place, leaves the
    review without an index, not failed. `listed_ns`: when the review began to look at `files`."""
    tables = {
        "runs": runs, "diffs": diffs,
        "files": pa.table({"path": pa.array(files.path, pa.string()), "size": pa.array(files.size, pa.int64()),
                           "mtime_ns": pa.array(files.mtime_ns, pa.int64()),
                           "ctime_ns": pa.array(files.ctime_ns, pa.int64()),
                           "inode": pa.array(files.inode, pa.uint64()),
                           "sha256": pa.array(files.sha256, pa.string()),
                           "problem": pa.array(files.problem, pa.string()),
                           "created_ns": pa.array(files.created_ns, pa.int64(), mask=~files.has_time),
                           "created_text": pa.array(files.created_text, pa.string())})}
    stamp = json.dumps({"stamp": _stamp(), "write": uuid.uuid4().hex, "listed_ns": listed_ns}).encode()
    try:
        os.mkdir(folder)  # (not through a link in its place, even a dangling one: that is FileExistsError)
    except FileExistsError:
        pass
    except OSError:
        return
    try:
        descriptor = _open_folder(folder)
    except OSError:
        return
    temporary: list[str] = []
    try:
        for part, table in tables.items():  # files last: it names the write the other parts belong to
            name = f".{part}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644,
                                   dir_fd=descriptor), "wb") as file:
                temporary.append(name)
                pq.write_table(table.replace_schema_metadata({META_KEY: stamp}), file, compression="zstd")
            os.replace(name, f"{part}.parquet", src_dir_fd=descriptor, dst_dir_fd=descriptor)
    except (OSError, pa.ArrowException):
        for name in temporary:
            with contextlib.suppress(OSError):  # (already renamed into place)
                os.unlink(name, dir_fd=descriptor)
    finally:
        os.close(descriptor)
