"""The review's incremental index on disk: what earlier reviews extracted from each report, so that a file
whose path, size and modification time have not changed is not read again.

It lives beside the reports, in `<first folder reviewed>/.envcheck-review-index/` (find.py never looks
inside it), as three Parquet files: the files (absolute path, size, mtime_ns, sha256, and what their content
was: the reason it is skipped, or its `created`), the run rows and the decisive differences, both keyed by
the content's sha256 (copies of one report share their rows; `file` is filled in when a review loads them).

Why Parquet (pyarrow): the rows are a table of typed columns, which Parquet stores as such, compressed
column by column (100,000 runs take a few MB); pyarrow reads it back in milliseconds straight into the
columns pandas uses, where JSON, pickle or SQLite would rebuild every value as a Python object. One column
of a row may hold an int in one report and a float in another (a JSON number): each numeric column is
stored as float64 with an `is int` mask beside it, and a timestamp with its pandas unit, so the DataFrame a
review builds is the one reading every file would build (same values, same dtypes).

The index is a cache, never a source of truth: each file carries the format version, the RUN_COLUMNS and
DIFF_COLUMNS and a hash of the code that extracts rows (index.py, read.py), and one write's token; one
that is missing, unreadable, of another version or from two different writes is ignored, and the review
reads every report, as it does without an index. Each file is written to a temporary name and renamed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import envcheck
from envcheck.review import index as extraction
from envcheck.review import read as reading
from envcheck.review.find import INDEX_FOLDER
from envcheck.review.index import DIFF_COLUMNS, RUN_COLUMNS
from envcheck.schemas import REPORT_SCHEMA

FORMAT_VERSION = 1
CONTENT = "__content__"
"""The key column of the stored runs and diffs: the sha256 of the report they were extracted from."""
IS_INT = "__is_int__"
UNIT = "__unit__"
FILE_COLUMNS = ["path", "size", "mtime_ns", "sha256", "problem", "created_ns", "created_text"]
PARTS = ("runs", "diffs", "files")
META_KEY = b"envcheck.review.index"
UNITS = ["s", "ms", "us", "ns"]
MIN_FILES = 100
"""Fewer report files than this are read in less time than an index takes to write: no index is made
for them (so a handful of reports, such as a test's or a repository's examples, leave no folder behind)."""


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
class Stored:
    """An index as read: files by absolute path (size, mtime_ns, sha256), contents by sha256, and the rows
    (None when there is no usable index)."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    contents: dict[str, Content] = field(default_factory=dict)
    runs: pa.Table | None = None
    diffs: pa.Table | None = None


def folder_for(paths: list[Path]) -> Path | None:
    """Where the index of a review of `paths` lives: in the first folder given; None when only files are."""
    for path in paths:
        if Path(path).is_dir():
            return Path(path) / INDEX_FOLDER
    return None


@functools.cache
def _code() -> str:
    """A hash of the code that turns a report into rows and reasons: another version is another index."""
    code = hashlib.sha256(envcheck.__version__.encode())
    for module in (extraction, reading):
        try:
            with open(str(module.__file__), "rb") as source:
                code.update(source.read())
        except OSError:
            pass
    return code.hexdigest()


def _stamp() -> str:
    """What a stored index must have been written with to be used: this format, these columns, this code."""
    return json.dumps({"format": FORMAT_VERSION, "schema": REPORT_SCHEMA, "runs": RUN_COLUMNS,
                       "diffs": DIFF_COLUMNS, "code": _code()})


def read_index(folder: Path | None) -> Stored:
    """The index in `folder`; an empty one when it is missing, stale or unreadable (never an error)."""
    if folder is None:
        return Stored()
    try:
        tables = {part: pq.read_table(folder / f"{part}.parquet") for part in PARTS}
        stamps = {(t.schema.metadata or {}).get(META_KEY) for t in tables.values()}
        if len(stamps) != 1:
            return Stored()
        stamp = json.loads(stamps.pop() or b"{}")
        if stamp.get("stamp") != _stamp():
            return Stored()
        files = tables["files"]
        columns = [files.column(name).to_pylist() for name in FILE_COLUMNS]
        stored = Stored(runs=tables["runs"], diffs=tables["diffs"])
        paths, sizes, mtimes, shas = columns[:4]
        stored.files = dict(zip(paths, zip(sizes, mtimes, shas, strict=True), strict=True))
        stored.contents = dict(zip(shas, map(Content, *columns[4:]), strict=True))
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


def spans(table: pa.Table) -> dict[str, tuple[int, int]]:
    """content → (first row, row count) in `table`, whose rows of one content are together."""
    if table.num_rows == 0:
        return {}
    keys = np.asarray(table.column(CONTENT).to_numpy(zero_copy_only=False), dtype=object)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    return {keys[s]: (int(s), int(e - s)) for s, e in zip(starts, ends, strict=True)}


def take(table: pa.Table, where: dict[str, tuple[int, int]], contents: list[str]) -> tuple[pa.Table, np.ndarray]:
    """The rows of `contents`, in that order, and how many each has."""
    found = [where.get(c, (0, 0)) for c in contents]
    starts = np.array([s for s, _ in found], dtype=np.int64)
    counts = np.array([n for _, n in found], dtype=np.int64)
    total = int(counts.sum())
    offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)
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


def write_index(folder: Path, files: dict[str, tuple[int, int, str]], contents: dict[str, Content],
                runs: pa.Table, diffs: pa.Table) -> None:
    """Store the index (each part written whole under a temporary name, then renamed); a folder that cannot
    be written leaves the review without an index, not failed."""
    kept = [f"{path}" for path in files]
    sizes, mtimes, shas = zip(*files.values(), strict=True) if files else ((), (), ())
    described = [contents[sha] for sha in shas]
    tables = {
        "runs": runs, "diffs": diffs,
        "files": pa.table({"path": pa.array(kept, pa.string()), "size": pa.array(sizes, pa.int64()),
                           "mtime_ns": pa.array(mtimes, pa.int64()), "sha256": pa.array(shas, pa.string()),
                           "problem": pa.array([c.problem for c in described], pa.string()),
                           "created_ns": pa.array([c.created_ns for c in described], pa.int64()),
                           "created_text": pa.array([c.created_text for c in described], pa.string())})}
    stamp = json.dumps({"stamp": _stamp(), "write": uuid.uuid4().hex}).encode()
    temporary: list[Path] = []
    try:
        folder.mkdir(exist_ok=True)
        for part, table in tables.items():  # files last: it names the write the other parts belong to
            path = folder / f".{part}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
            temporary.append(path)
            pq.write_table(table.replace_schema_metadata({META_KEY: stamp}), path, compression="zstd")
            os.replace(path, folder / f"{part}.parquet")
    except (OSError, pa.ArrowException):
        for path in temporary:
            path.unlink(missing_ok=True)
