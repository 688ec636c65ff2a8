"""Fleet review: many JSON reports (one per factory per day…) read into pandas tables.

Each report is parsed once and reduced to flat rows (one per report × target) plus its decisive
fingerprint differences, so 10,000 reports fit in little memory; the evidence of the latest row per
site × target is read again only when a page needs it.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from envcheck import schemas
from envcheck.model import ABSENT
from envcheck.report.json import REPORT_SCHEMA

VERDICT_RANK = {"IDENTICAL": 0, "PASS": 1, "WARN": 2, "FAIL": 3, "ERROR": 4}
NO_SITE = "(no site)"
RUN_COLUMNS = ["file", "target_index", "created", "date", "site", "spec", "verdict", "exit_code", "golden_sha256",
               "output_digest", "outputs_identical", "error_kind", "max_ulp", "max_rel", "fail_diffs", "warn_diffs"]
DIFF_COLUMNS = ["row", "path", "value", "severity"]


@dataclass
class Fleet:
    runs: pd.DataFrame
    """One row per report × target (RUN_COLUMNS)."""
    diffs: pd.DataFrame
    """Warn- and fail-severity fingerprint differences: row (index into runs), path, value, severity."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, why) for every file that could not be read as a report."""
    files_read: int = 0
    files_before_since: int = 0
    """Reports read but older than --since: an empty review, not an unreadable one."""


def parse_since(text: str) -> pd.Timestamp:
    """A --since date (YYYY-MM-DD, or any ISO time) as a UTC timestamp; ValueError when it is none."""
    return pd.Timestamp(text, tz="UTC")


MAX_REPORT_BYTES = 64 << 20
"""A real report is kilobytes to a few megabytes; anything far larger is not read at all."""
FUTURE_SLACK = pd.Timedelta(days=1)
"""A report dated later than now + this is suspicious (a wrong clock), and would stay 'latest' for ever."""


def report_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular *.json files under `paths` (folders followed through symlinks, each once), and
    (path, why) for the candidates that cannot be reports: special files (a FIFO would block) and
    files too large to be one."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen_folders: set[str] = set()

    def visit(path: Path, named: bool) -> None:
        if path.is_dir():
            real = os.path.realpath(path)
            if real in seen_folders:  # a symlink loop, or a folder named twice
                return
            seen_folders.add(real)
            for child in sorted(path.iterdir()):
                if child.is_dir() or child.name.endswith(".json"):
                    visit(child, named=False)
            return
        try:
            status = path.stat()
        except OSError as error:
            skipped.append((str(path), f"unreadable: {error.strerror}"))
            return
        if not stat.S_ISREG(status.st_mode):
            skipped.append((str(path), "not a regular file (a pipe, socket or device)"))
        elif status.st_size > MAX_REPORT_BYTES:
            skipped.append((str(path), f"too large to be a report ({status.st_size >> 20} MB > "
                                       f"{MAX_REPORT_BYTES >> 20} MB)"))
        elif named or path.name.endswith(".json"):
            files.append(path)

    for path in paths:
        visit(Path(path), named=True)
    return files, skipped


def load_fleet(paths: list[Path], since: pd.Timestamp | None = None) -> Fleet:
    runs: list[list[Any]] = []
    diffs: list[list[Any]] = []
    files, skipped = report_files(paths)
    read = older = 0
    seen: dict[str, str] = {}
    latest_plausible = pd.Timestamp.now(tz="UTC") + FUTURE_SLACK
    for path in files:
        content = _read_bytes(path)
        if isinstance(content, str):
            skipped.append((str(path), content))
            continue
        digest = hashlib.sha256(content).hexdigest()
        if digest in seen:  # the same report copied twice counts once
            skipped.append((str(path), f"duplicate of {seen[digest]}"))
            continue
        seen[digest] = str(path)
        document, problem = _read_report(content)
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
        for index, target in enumerate(document["targets"]):
            row = len(runs)
            runs.append(_run_row(path, index, created, document, target))
            for d in target.get("fingerprint_diff") or []:
                if d.get("severity") in ("fail", "warn"):
                    diffs.append([row, d["path"], _value_text(d.get("target")), d["severity"]])
    frame = pd.DataFrame(runs, columns=RUN_COLUMNS)
    frame["verdict_rank"] = frame["verdict"].map(VERDICT_RANK)
    return Fleet(runs=frame, diffs=pd.DataFrame(diffs, columns=DIFF_COLUMNS), skipped=skipped, files_read=read,
                 files_before_since=older)


def utc_time(text: str) -> pd.Timestamp:
    """A report's `created` as UTC; a time written without a zone is taken as UTC (envcheck writes Z)."""
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _read_bytes(path: Path) -> bytes | str:
    try:
        return path.read_bytes()
    except OSError as error:
        return f"unreadable: {error.strerror}"


def _read_report(content: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(report, None) or (None, why it is skipped): checked against envcheck/schemas/report-1.schema.json,
    so every later step can rely on the keys and types it reads; never raises for a bad file."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError is a ValueError)
        return None, f"not valid JSON (truncated or malformed): {str(error)[:200]}"
    if not isinstance(document, dict):
        return None, f"not an envcheck report (a JSON {type(document).__name__}, not an object)"
    schema = document.get("schema")
    if not (isinstance(schema, str) and schema.startswith("envcheck.report/")):
        return None, f"not an envcheck report (schema {schema!r}, expected {REPORT_SCHEMA!r})"
    problem = schemas.check(document, REPORT_SCHEMA, "this report")
    if problem:
        return None, problem.removeprefix("this report: ")
    try:
        utc_time(document["created"])
    except (ValueError, TypeError, OverflowError):
        return None, f"bad 'created' time {document['created']!r}"
    return document, None


def _run_row(path: Path, index: int, created: pd.Timestamp, document: dict, target: dict) -> list[Any]:
    outputs = target.get("outputs") or {}
    ulps = [o["max_ulp"] for o in outputs.values() if o.get("max_ulp") is not None]
    rels = [o["max_rel"] for o in outputs.values() if o.get("max_rel") is not None]
    severities = [d.get("severity") for d in target.get("fingerprint_diff") or []]
    return [str(path), index, created, created.strftime("%Y-%m-%d"), target.get("site") or NO_SITE, target["spec"],
            target["verdict"], document["exit_code"], document["golden"].get("sha256"), target.get("output_digest"),
            all(o["status"] == "identical" for o in outputs.values()) if outputs else None,
            (target.get("error") or {}).get("kind"), max(ulps) if ulps else None, max(rels) if rels else None,
            severities.count("fail"), severities.count("warn")]


def _value_text(value: Any) -> str:
    if value is None:
        return ABSENT
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------------------------- views

def latest(fleet: Fleet) -> pd.DataFrame:
    """The newest run of every site × target."""
    if fleet.runs.empty:
        return fleet.runs
    ordered = fleet.runs.sort_values("created", kind="stable")
    return ordered.groupby(["site", "spec"], sort=True).tail(1).sort_values(["site", "spec"])


def verdict_matrix(fleet: Fleet) -> pd.DataFrame:
    """Sites as rows, targets as columns, the latest verdict in each cell."""
    current = latest(fleet)
    if current.empty:
        return pd.DataFrame()
    return current.pivot(index="site", columns="spec", values="verdict")


def equivalence_classes(fleet: Fleet) -> pd.DataFrame:
    """Latest runs grouped by output digest: equal digests computed bitwise-identical outputs."""
    current = latest(fleet).dropna(subset=["output_digest"])
    if current.empty:
        return pd.DataFrame(columns=["output_digest", "members", "identical_to_golden", "sites", "targets", "verdicts"])
    classes = current.groupby("output_digest").agg(
        members=("spec", "size"), identical_to_golden=("outputs_identical", "all"),
        sites=("site", lambda s: sorted(set(s))), targets=("spec", lambda s: sorted(set(s))),
        verdicts=("verdict", lambda s: dict(s.value_counts())))
    return classes.reset_index().sort_values(["identical_to_golden", "members"], ascending=[False, False])


def attribution(fleet: Fleet) -> pd.DataFrame:
    """Which fingerprint differences co-occur with output drift across the latest runs, ranked."""
    current = latest(fleet).dropna(subset=["outputs_identical"])
    columns = ["path", "value", "severity", "drifting_with", "drifting_total", "others_with", "others_total"]
    if current.empty or fleet.diffs.empty:
        return pd.DataFrame(columns=columns)
    drifting = current.index[~current["outputs_identical"].astype(bool)]
    diffs = fleet.diffs[fleet.diffs["row"].isin(current.index)].copy()
    diffs["drifting"] = diffs["row"].isin(drifting)
    table = diffs.groupby(["path", "value", "severity"]).agg(drifting_with=("drifting", "sum"),
                                                             with_total=("row", "nunique")).reset_index()
    table["drifting_total"] = len(drifting)
    table["others_with"] = table["with_total"] - table["drifting_with"]
    table["others_total"] = len(current) - len(drifting)
    table = table[table["drifting_with"] > 0]
    return table.sort_values(["drifting_with", "others_with", "path"], ascending=[False, True, True])[columns]


def trend(fleet: Fleet) -> pd.DataFrame:
    """The worst verdict per site per day (sites × dates)."""
    if fleet.runs.empty:
        return pd.DataFrame()
    worst = fleet.runs.groupby(["site", "date"])["verdict_rank"].max().unstack("date")
    names = {rank: verdict for verdict, rank in VERDICT_RANK.items()}
    return worst.apply(lambda column: column.map(names))


def flat_table(fleet: Fleet) -> pd.DataFrame:
    """One row per site × target × run, for CSV export."""
    return fleet.runs.drop(columns=["verdict_rank"]).sort_values(["site", "spec", "created"])


def attribution_sentence(row: pd.Series) -> str:
    return (f"{row['drifting_with']} of {row['drifting_total']} drifting have {row['path']} = {row['value']} "
            f"({row['others_with']} of {row['others_total']} others)")


def evidence(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The full target entries behind run rows, in their order, reading each report file once."""
    documents: dict[str, dict[str, Any]] = {}
    found = []
    for file, index in zip(rows["file"], rows["target_index"], strict=True):
        if file not in documents:
            documents[file] = json.loads(Path(file).read_bytes())
        found.append(documents[file]["targets"][int(index)])
    return found
