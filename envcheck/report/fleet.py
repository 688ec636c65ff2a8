"""Fleet review: many JSON reports (one per factory per day…) read into pandas tables.

Each report is parsed once and reduced to flat rows (one per report × target) plus its decisive
fingerprint differences, so 10,000 reports fit in little memory; the evidence of the latest row per
site × target is read again only when a page needs it.

A target's identity is (golden, site, host, spec): reports against different goldens are reviewed
separately (`by_golden`), and two machines never merge into one row, even when neither named its site.
"""
from __future__ import annotations

import dataclasses
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
from envcheck.redact import REDACTED_PREFIX, hash_identifier
from envcheck.report.json import REPORT_SCHEMA
from envcheck.report.vocabulary import VERDICT_RANK

NO_SITE = "(no site)"
UNKNOWN_HOST = "unknown"
"""Shown for a host no target of its report named (a report of docker targets only, or of failures)."""
RUN_COLUMNS = ["file", "target_index", "created", "date", "site", "host", "spec", "verdict", "exit_code",
               "golden_sha256", "golden_path", "output_digest", "outputs_identical", "error_kind", "max_ulp", "max_rel",
               "fail_diffs", "warn_diffs"]
INTERNAL_COLUMNS = ["verdict_rank", "place"]
"""Added by load_fleet for the views; not exported."""
DIFF_COLUMNS = ["row", "path", "value", "severity"]


@dataclass
class Fleet:
    runs: pd.DataFrame
    """One row per report × target (RUN_COLUMNS), plus `verdict_rank` and `place` (the row label of its
    site and host: see _places)."""
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
        machine = _machine(document["targets"])
        for index, target in enumerate(document["targets"]):
            row = len(runs)
            runs.append(_run_row(path, index, created, document, target, machine))
            for d in target.get("fingerprint_diff") or []:
                if d.get("severity") in ("fail", "warn"):
                    diffs.append([row, d["path"], _value_text(d.get("target")), d["severity"]])
    frame = pd.DataFrame(runs, columns=RUN_COLUMNS)
    frame["verdict_rank"] = frame["verdict"].map(VERDICT_RANK)
    frame["place"] = _places(frame)
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


def _run_row(path: Path, index: int, created: pd.Timestamp, document: dict, target: dict, machine: str) -> list[Any]:
    outputs = target.get("outputs") or {}
    ulps = [o["max_ulp"] for o in outputs.values() if o.get("max_ulp") is not None]
    rels = [o["max_rel"] for o in outputs.values() if o.get("max_rel") is not None]
    severities = [d.get("severity") for d in target.get("fingerprint_diff") or []]
    # A container's hostname is its container id, new on every run: docker targets are placed on the
    # machine that ran them instead.
    host = (_daemon_host(target) or machine) if _is_docker(target) else (_hostname(target) or machine)
    golden = document["golden"]
    return [str(path), index, created, created.strftime("%Y-%m-%d"), target.get("site") or NO_SITE, host,
            target["spec"], target["verdict"], document["exit_code"], golden["sha256"], golden["path"],
            target.get("output_digest"),
            all(o["status"] == "identical" for o in outputs.values()) if outputs else None,
            (target.get("error") or {}).get("kind"), max(ulps) if ulps else None, max(rels) if rels else None,
            severities.count("fail"), severities.count("warn")]


def _is_docker(target: dict) -> bool:
    """Whether the target ran in a container envcheck started (its fingerprint's hostname is the container's)."""
    info = target.get("target")
    return target["spec"].startswith("docker:") or (isinstance(info, dict) and info.get("kind") == "docker")


def _hostname(target: dict) -> str:
    """The target's hashed hostname from its fingerprint, or "" (a failed target has no fingerprint).
    A report written before hostnames were hashed is hashed here: a review never shows a raw one."""
    host = (target.get("fingerprint") or {}).get("host")
    name = host.get("hostname") if isinstance(host, dict) else None
    if not isinstance(name, str) or not name:
        return ""
    return name if name.startswith(REDACTED_PREFIX) else hash_identifier(name)


def _daemon_host(target: dict) -> str:
    """The hashed name of the machine whose Docker daemon ran the target, when the report has it."""
    daemon = (target.get("target") or {}).get("daemon")
    name = daemon.get("name") if isinstance(daemon, dict) else None
    if not isinstance(name, str) or not name:
        return ""
    return name if name.startswith(REDACTED_PREFIX) else hash_identifier(name)


def _machine(targets: list[dict]) -> str:
    """The hashed hostname of the machine a report was made on, named by its non-docker targets
    (interpreters run on the machine itself); "" when none names it, or when they name several (a
    `compare` of captures from several machines cannot say where its docker captures ran)."""
    names = {_hostname(t) for t in targets if not _is_docker(t)} - {""}
    return names.pop() if len(names) == 1 else ""


def _places(runs: pd.DataFrame) -> pd.Series:
    """The row label of each run's site and host: the site alone while it is the only host seen there
    (as a review looked before hosts were told apart), else "site · host 1a2b3c4d". A run without a
    site always shows its host, so two machines checked without --site are two rows."""
    if runs.empty:
        return pd.Series(index=runs.index, dtype=object)
    hosts_per_site = runs[["site", "host"]].drop_duplicates().groupby("site").size()
    alone = (runs["site"] != NO_SITE) & (runs["site"].map(hosts_per_site) == 1)
    short = runs["host"].str.removeprefix(REDACTED_PREFIX).str[:8].replace("", UNKNOWN_HOST)
    return runs["site"].where(alone, runs["site"] + " · host " + short)


def _value_text(value: Any) -> str:
    if value is None:
        return ABSENT
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------------------------- views

@dataclass(frozen=True)
class Golden:
    """One golden bundle, by content: reports against another golden are reviewed apart from it."""

    sha256: str
    path: str
    """The path the newest report gave; the same bundle may lie elsewhere on other machines."""
    other_paths: int = 0

    @property
    def label(self) -> str:
        """Path and short sha: reports carry no golden description to show instead."""
        plural = "s" if self.other_paths > 1 else ""
        elsewhere = f" (also at {self.other_paths} other path{plural})" if self.other_paths else ""
        return f"{self.path} · {self.sha256[:12]}{elsewhere}"


def by_golden(fleet: Fleet) -> list[tuple[Golden, Fleet]]:
    """The fleet split by golden (by path, then sha), each part a Fleet the views below accept.

    A verdict, an equivalence class ("same as golden") and an attribution only mean something against
    one golden; skipped files and file counts stay with every part, as they belong to the whole review."""
    runs = fleet.runs
    if runs.empty:
        return []
    shas = runs["golden_sha256"].unique()
    parts = []
    for sha in shas:
        # One golden, the common case, is the fleet itself: no copies of 10,000 rows.
        part = runs if len(shas) == 1 else runs[runs["golden_sha256"] == sha]
        newest = part["created"].idxmax()
        golden = Golden(str(sha), str(part.at[newest, "golden_path"]), part["golden_path"].nunique() - 1)
        if len(shas) == 1:
            parts.append((golden, fleet))
        else:
            diffs = fleet.diffs[fleet.diffs["row"].isin(part.index)]
            parts.append((golden, dataclasses.replace(fleet, runs=part, diffs=diffs)))
    return sorted(parts, key=lambda item: (item[0].path, item[0].sha256))


def _one_golden(fleet: Fleet) -> None:
    """The views compare runs with each other: refuse to mix runs against different goldens."""
    if fleet.runs["golden_sha256"].nunique() > 1:
        raise ValueError("these runs are against several goldens: review each part of by_golden(fleet)")


def latest(fleet: Fleet) -> pd.DataFrame:
    """The newest run of every golden × site × host × target, in row-label order."""
    if fleet.runs.empty:
        return fleet.runs
    ordered = fleet.runs.sort_values("created", kind="stable")
    newest = ordered.groupby(["golden_sha256", "site", "host", "spec"], sort=False).tail(1)
    return newest.sort_values(["place", "spec"])


def verdict_matrix(fleet: Fleet) -> pd.DataFrame:
    """Sites (with their host where needed: see `place`) as rows, targets as columns, the latest verdict in
    each cell; one golden's runs."""
    _one_golden(fleet)
    current = latest(fleet)
    if current.empty:
        return pd.DataFrame()
    return current.pivot(index="place", columns="spec", values="verdict").rename_axis(index="site")


def equivalence_classes(fleet: Fleet) -> pd.DataFrame:
    """Latest runs grouped by output digest: equal digests computed bitwise-identical outputs. One
    golden's runs, so "identical to golden" means identical to the golden these runs were checked against."""
    _one_golden(fleet)
    current = latest(fleet).dropna(subset=["output_digest"])
    if current.empty:
        return pd.DataFrame(columns=["output_digest", "members", "identical_to_golden", "sites", "targets", "verdicts"])
    classes = current.groupby("output_digest").agg(
        members=("spec", "size"), identical_to_golden=("outputs_identical", "all"),
        sites=("place", lambda s: sorted(set(s))), targets=("spec", lambda s: sorted(set(s))),
        verdicts=("verdict", lambda s: dict(s.value_counts())))
    return classes.reset_index().sort_values(["identical_to_golden", "members"], ascending=[False, False])


def attribution(fleet: Fleet) -> pd.DataFrame:
    """Which fingerprint differences co-occur with output drift across the latest runs, ranked; one
    golden's runs (a difference is a difference from that golden's fingerprint)."""
    _one_golden(fleet)
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
    """The worst verdict per site (and host, as in the matrix) per day (sites × dates); one golden's runs."""
    _one_golden(fleet)
    if fleet.runs.empty:
        return pd.DataFrame()
    worst = fleet.runs.groupby(["place", "date"])["verdict_rank"].max().unstack("date").rename_axis(index="site")
    names = {rank: verdict for verdict, rank in VERDICT_RANK.items()}
    return worst.apply(lambda column: column.map(names))


def flat_table(fleet: Fleet) -> pd.DataFrame:
    """One row per golden × site × host × target × run, for CSV export."""
    return fleet.runs.drop(columns=INTERNAL_COLUMNS).sort_values(["golden_path", "golden_sha256", "site", "host",
                                                                  "spec", "created"])


def counts(fleet: Fleet) -> str:
    """ "5 sites · 7 targets · 10 runs" over the latest runs, naming the hosts too when a site's row is
    split by host (a site checked on two machines, or machines checked without --site)."""
    current = latest(fleet)
    if current.empty:
        return f"0 sites · 0 targets · {len(fleet.runs)} runs"
    sites = current["site"].nunique()
    hosts = f" · {current['host'].nunique()} hosts" if current["place"].nunique() != sites else ""
    return f"{sites} sites{hosts} · {current['spec'].nunique()} targets · {len(fleet.runs)} runs"


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
