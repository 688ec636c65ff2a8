"""Reading one report file: its bytes, then a JSON object that matches envcheck/schemas/report-1.schema.json.

Nothing here raises for a bad file: every failure is the reason the review shows for skipping it. Times
are UTC pandas timestamps, the unit every later step compares.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from envcheck import schemas
from envcheck.schemas import REPORT_SCHEMA


def read_bytes(path: str | Path) -> bytes | str:
    """The file's bytes, or why they could not be read."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        return f"unreadable: {error.strerror}"


def parse_report(content: bytes) -> tuple[dict[str, Any] | None, pd.Timestamp | None, str | None]:
    """(report, its `created` as UTC, None) or (None, None, why it is skipped): checked against
    envcheck/schemas/report-1.schema.json, so every later step can rely on the keys and types it reads;
    never raises for a bad file."""
    try:
        document = schemas.loads(content)
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError is a ValueError)
        return None, None, f"not valid JSON (truncated or malformed): {str(error)[:200]}"
    if not isinstance(document, dict):
        return None, None, f"not an envcheck report (a JSON {type(document).__name__}, not an object)"
    schema = document.get("schema")
    if not (isinstance(schema, str) and schema.startswith("envcheck.report/")):
        return None, None, f"not an envcheck report (schema {schema!r}, expected {REPORT_SCHEMA!r})"
    problem = schemas.check(document, REPORT_SCHEMA, "this report", content)
    if problem:
        return None, None, problem.removeprefix("this report: ")
    try:
        return document, utc_time(document["created"]), None
    except (ValueError, TypeError, OverflowError):
        return None, None, f"bad 'created' time {document['created']!r}"


def utc_time(text: str) -> pd.Timestamp:
    """A report's `created` as UTC; a time written without a zone is taken as UTC (envcheck writes Z)."""
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def parse_since(text: str) -> pd.Timestamp:
    """A --since date (YYYY-MM-DD, or any ISO time) as a UTC timestamp; ValueError when it is none
    (an empty or blank text included)."""
    if not text.strip():
        raise ValueError("empty")
    return pd.Timestamp(text, tz="UTC")
