"""Loading a fleet: find the report files, read and validate each once, drop what cannot count, index the rest.

A file is skipped with its reason (unreadable, not a report, a duplicate of another, dated in the
future); a report older than --since is counted but not indexed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from envcheck.review.find import report_files
from envcheck.review.index import Fleet, IndexBuilder
from envcheck.review.read import parse_report, read_bytes, utc_time

FUTURE_SLACK = pd.Timedelta(days=1)
"""A report dated later than now + this is suspicious (a wrong clock), and would stay 'latest' for ever."""


def load_fleet(paths: list[Path], since: pd.Timestamp | None = None) -> Fleet:
    """Every report under `paths` created at or after `since`, indexed; each file is read exactly once."""
    files, skipped = report_files(paths)
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
            skipped.append((str(path), f"created in the future ({document['created']}): check that machine's clock"))
            continue
        if since is not None and created < since:
            older += 1
            continue
        read += 1
        index.add(str(path), created, document)
    return index.build(skipped, files_read=read, files_before_since=older)
