"""Reading the reports a review's index does not know yet: each file read, hashed, parsed, checked against
the schema and reduced to the index's rows; split between worker processes when there are many (the first
review of a large fleet, where parsing and checking 100,000 reports is the whole cost).

A batch's rows are typed Arrow tables keyed by content (store.encode), as the index stores them: a worker
sends back a few buffers, not 100,000 Python lists, and the review joins them to the stored rows as they are.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from pandas.errors import OutOfBoundsDatetime

from envcheck.review import store
from envcheck.review.index import DIFF_COLUMNS, GOLDEN, HOST, RUN_COLUMNS, SITE, report_rows
from envcheck.review.read import parse_report, read_bytes
from envcheck.review.store import Content, IndexUnusable

FILE = RUN_COLUMNS.index("file")
STORED_RUN_COLUMNS = [name for name in RUN_COLUMNS if name != "file"]
"""A stored run is filed under its content: `file` is the path it is found at in a review."""
PARALLEL_FILES = 2000
"""From this many files to read, worker processes share them (below, starting them costs more than they save)."""
MAX_WORKERS = 8


class Batch(NamedTuple):
    """Files read together. Per file: why it cannot be read (else None), its content's sha256, and what the
    content is (None where it was not parsed: a content the index knows, or one met earlier in the batch).
    Then the rows of the contents parsed: runs without `file`, a difference's `row` counted within its report."""

    problems: list[str | None]
    digests: list[str]
    contents: list[Content | None]
    runs: pa.Table
    diffs: pa.Table
    newest: dict[tuple[str, int], dict[str, Any]]
    """(content, target index) → full target entry, for the newest target of each identity in this batch:
    the evidence a page shows, kept from this read when the batch was read here (a review with 1 % new
    reports then reads no file twice); empty from a worker (sending every entry back costs more)."""

    def rows_of(self, keep: set[str]) -> tuple[pa.Table, pa.Table]:
        """The rows of the contents in `keep` only (another batch parsed the others first)."""
        parsed = {digest for digest, content in zip(self.digests, self.contents, strict=True) if content is not None}
        if parsed <= keep:
            return self.runs, self.diffs
        wanted = pa.array(sorted(keep & parsed), pa.string())
        return tuple(table.filter(pc.is_in(table.column(store.CONTENT), value_set=wanted))
                     for table in (self.runs, self.diffs))


def read_batch(paths: list[str], known: frozenset[str] | set[str], keep_newest: bool = False) -> Batch:
    """Each file read and hashed; parsed and reduced to rows unless its content is `known` or came earlier
    in `paths`; with `keep_newest`, the target entry of the newest run of each identity kept (Batch.newest).
    IndexUnusable when the rows cannot be typed. (Module level: worker processes run it.)"""
    problems: list[str | None] = []
    digests: list[str] = []
    contents: list[Content | None] = []
    runs: list[list[Any]] = []
    run_contents: list[str] = []
    diffs: list[list[Any]] = []
    diff_contents: list[str] = []
    parsed: set[str] = set()
    newest = _NewestEntries()
    for path in paths:
        data = read_bytes(path)
        digest = "" if isinstance(data, str) else hashlib.sha256(data).hexdigest()
        problems.append(data if isinstance(data, str) else None)
        digests.append(digest)
        if isinstance(data, str) or digest in known or digest in parsed:
            contents.append(None)
            continue
        parsed.add(digest)
        document, created, problem = parse_report(data)
        if document is None or created is None:
            contents.append(Content(problem or "unreadable"))
            continue
        try:  # (a time pandas holds but not in ns, such as the year 2300, cannot be stored in the index)
            created_ns = created.value
        except (OverflowError, OutOfBoundsDatetime):
            raise IndexUnusable(f"{path}: created {document['created']!r} beyond the index's times") from None
        # (rows of every report, whatever its date: --since and the clock are applied on each review)
        contents.append(Content(None, created_ns, document["created"]))
        report_runs, report_diffs = report_rows(path, created, document)
        if keep_newest:
            newest.add(digest, created_ns, document["targets"], report_runs)
        runs += [row[:FILE] + row[FILE + 1:] for row in report_runs]
        run_contents += [digest] * len(report_runs)
        diffs += report_diffs
        diff_contents += [digest] * len(report_diffs)
    return Batch(problems, digests, contents, store.encode(STORED_RUN_COLUMNS, runs, run_contents),
                 store.encode(DIFF_COLUMNS, diffs, diff_contents), newest.entries())


class _NewestEntries:
    """The newest target entry of each identity met (a later one wins a tie, as in IndexBuilder): at most one
    per site × host × target, whatever the number of reports read."""

    def __init__(self) -> None:
        self._by_identity: dict[tuple[str, str, str, str], tuple[int, str, int, dict[str, Any]]] = {}

    def add(self, digest: str, created_ns: int, targets: list[dict[str, Any]], runs: list[list[Any]]) -> None:
        for index, (target, run) in enumerate(zip(targets, runs, strict=True)):
            identity = (run[GOLDEN], run[SITE], run[HOST], target["spec"])
            previous = self._by_identity.get(identity)
            if previous is None or created_ns >= previous[0]:
                self._by_identity[identity] = (created_ns, digest, index, target)

    def entries(self) -> dict[tuple[str, int], dict[str, Any]]:
        return {(digest, index): target for _, digest, index, target in self._by_identity.values()}


def read_batches(paths: list[str], known: set[str]) -> list[Batch]:
    """read_batch over `paths`, in order, in batches: in worker processes (one per usable CPU) when
    there are enough files to repay starting them and workers can start safely, else here."""
    workers = min(usable_cpus(), MAX_WORKERS)
    if len(paths) < PARALLEL_FILES or workers < 2 or not workers_can_start():
        return [read_batch(paths, known, keep_newest=True)]
    size = -(-len(paths) // (workers * 4))  # a few batches each: a slow one does not hold the rest back
    batches = [paths[start:start + size] for start in range(0, len(paths), size)]
    try:
        return _in_workers(batches, known, workers)
    except (OSError, BrokenProcessPool):  # no processes after all (a sandbox's limits): the same work here
        return [read_batch(batch, known, keep_newest=True) for batch in batches]


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_can_start() -> bool:
    """Whether worker processes can start without side effects. A forkserver worker imports the program's
    main module again: only envcheck's own (`python -m envcheck`, the `envcheck` command, both guarded) or
    none (`python -c`, a notebook) is safe; another program's may not guard its top level. A daemonic
    process (a multiprocessing pool's worker) may not have children, and forkserver is POSIX only."""
    if "forkserver" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return False
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (getattr(main, "__file__", None) is None or getattr(spec, "name", None) == "envcheck.__main__"
            or getattr(getattr(main, "main", None), "__module__", None) == "envcheck.cli")


_WORKER: dict[str, frozenset[str]] = {"known": frozenset()}
"""In a worker: the contents the review's index knows (sent once, when the worker starts, not with each batch)."""


def _remember(known: frozenset[str]) -> None:
    _WORKER["known"] = known


def _read_in_worker(paths: list[str]) -> Batch:
    return read_batch(paths, _WORKER["known"])


def _in_workers(batches: list[list[str]], known: set[str], workers: int) -> list[Batch]:
    # forkserver, not fork: this process holds pyarrow's threads, which a forked child would inherit stopped.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    _start_forkserver_silent()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_remember, initargs=(frozenset(known),))
    try:
        return list(pool.map(_read_in_worker, batches))
    finally:
        # Cancelled (SIGTERM, Ctrl-C) or failed: no batch that has not started yet runs (a `with` would wait for
        # every batch of a 100,000-report review before the signal could end it).
        pool.shutdown(wait=True, cancel_futures=True)


def _start_forkserver_silent() -> None:
    """Start the forkserver with its stderr on /dev/null (workers inherit it). A worker still being started
    when the review is cancelled (SIGTERM, Ctrl-C) dies inside multiprocessing's own code, its parent's
    semaphores gone, and would print that traceback into the user's terminal or CI log; a worker's real
    failure reaches the review through its future all the same."""
    from multiprocessing import forkserver

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        forkserver.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
