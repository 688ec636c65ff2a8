"""The review's index: every report × target as one row of a DataFrame, built once from parsed reports.

Each report is reduced to flat rows plus its decisive (warn and fail) fingerprint differences, so 10,000
reports fit in little memory. The full target entry is kept only while it is the newest of its identity
(golden, site, host, target): those are the entries a page shows as evidence, so no file is read twice.

A target's identity is (golden, site, host, spec): reports against different goldens are reviewed
separately, and two machines never merge into one row, even when neither named its site.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from envcheck.fields import INTEGRITY_CODES
from envcheck.localization_words import first_origin
from envcheck.model import ABSENT, VERDICT_RANK, is_parity
from envcheck.redact import REDACTED_PREFIX, hash_identifier

NO_SITE = "(no site)"
UNKNOWN_HOST = "unknown"
"""Shown for a host no target of its report named (a report of docker targets only, or of failures)."""
RUN_COLUMNS = ["file", "target_index", "created", "date", "site", "host", "spec", "verdict", "exit_code",
               "golden_sha256", "golden_path", "output_digest", "outputs_identical", "error_kind", "max_ulp", "max_rel",
               "consistency", "top1_agreement", "fail_diffs", "warn_diffs", "latency_p50_ms", "latency_ratio",
               "localization_status", "first_divergence_key", "first_divergence_op", "first_divergence_ulp",
               "image_ref", "image_id", "integrity_findings"]
INTERNAL_COLUMNS = ["verdict_rank", "place"]
"""Added to the runs for the views; not exported."""
DIFF_COLUMNS = ["row", "path", "value", "severity"]
GOLDEN, SITE, HOST = (RUN_COLUMNS.index(name) for name in ("golden_sha256", "site", "host"))


@dataclass
class Fleet:
    """Every report × target that was read, as tables; what could not be read, and why."""

    runs: pd.DataFrame
    """One row per report × target (RUN_COLUMNS), plus `verdict_rank` and `place` (the row label of its
    site and host: see places)."""
    diffs: pd.DataFrame
    """Warn- and fail-severity fingerprint differences: row (index into runs), path, value, severity."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, why) for every file that could not be read as a report."""
    files_read: int = 0
    files_before_since: int = 0
    """Reports read but older than --since: an empty review, not an unreadable one."""
    newest_targets: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)
    """The full target entry of every run that is the newest of its golden × site × host × target, by row
    (the rows `views.latest` picks): the evidence a page shows, kept from the one read of its file."""
    latest_runs: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)
    """views.latest, once computed (every view starts from it; dataclasses.replace starts a part afresh)."""


class IndexBuilder:
    """Collects parsed reports one by one (add), then builds the Fleet (build) once."""

    def __init__(self) -> None:
        self._runs: list[list[Any]] = []
        self._diffs: list[list[Any]] = []
        # identity -> (row, created) of the newest run so far; a later file wins a tie, as in views.latest.
        self._newest: dict[tuple[str, str, str, str], tuple[int, pd.Timestamp]] = {}
        self._targets: dict[int, dict[str, Any]] = {}

    def add(self, file: str, created: pd.Timestamp, document: dict[str, Any]) -> None:
        """Add a report's targets as rows; `document` is a report that passed the schema."""
        first = len(self._runs)
        runs, diffs = report_rows(file, created, document)
        self._runs += runs
        self._diffs += [[first + d[0], *d[1:]] for d in diffs]
        for index, (target, values) in enumerate(zip(document["targets"], runs, strict=True)):
            row = first + index
            identity = (values[GOLDEN], values[SITE], values[HOST], target["spec"])
            previous = self._newest.get(identity)
            if previous is None or created >= previous[1]:
                if previous is not None:
                    del self._targets[previous[0]]
                self._newest[identity] = (row, created)
                self._targets[row] = target

    def build(self, skipped: list[tuple[str, str]], files_read: int, files_before_since: int) -> Fleet:
        """The Fleet of every report added."""
        frame = pd.DataFrame(self._runs, columns=RUN_COLUMNS)
        frame["verdict_rank"] = frame["verdict"].map(VERDICT_RANK)
        frame["place"] = places(frame)
        return Fleet(runs=frame, diffs=pd.DataFrame(self._diffs, columns=DIFF_COLUMNS), skipped=skipped,
                     files_read=files_read, files_before_since=files_before_since, newest_targets=self._targets)


IDENTITY = ["golden_sha256", "site", "host", "spec"]
"""A target's identity: the newest run of each is the one whose full entry a page shows."""


def newest_rows(runs: pd.DataFrame) -> pd.Index:
    """The row labels of the newest run of each identity (a later row wins a tie), in the order of their
    `created` (stable): what `runs.sort_values("created", kind="stable").groupby(IDENTITY).tail(1).index`
    gives, without sorting every column of 100,000 rows."""
    created = runs["created"]
    if isinstance(created.dtype, pd.DatetimeTZDtype):  # (as datetime64 in UTC: to_numpy() would box every time)
        created = created.dt.tz_convert(None)
    order = np.argsort(created.to_numpy(), kind="stable")
    last = ~runs[IDENTITY].iloc[order].duplicated(keep="last").to_numpy()
    return runs.index[order[last]]


def report_rows(file: str, created: pd.Timestamp, document: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """A report's rows: one run per target (RUN_COLUMNS) and its warn- and fail-severity fingerprint
    differences (DIFF_COLUMNS, `row` counted within the report); `document` passed the schema."""
    machine = _machine(document["targets"])
    runs, diffs = [], []
    for index, target in enumerate(document["targets"]):
        runs.append(_run_row(file, index, created, document, target, machine))
        diffs += [[index, d["path"], _value_text(d.get("target")), d["severity"]]
                  for d in target.get("fingerprint_diff") or [] if d.get("severity") in ("fail", "warn")]
    return runs, diffs


def _run_row(file: str, index: int, created: pd.Timestamp, document: dict, target: dict, machine: str) -> list[Any]:
    # Parity (a TFLite model against its own SavedModel) is the conversion's, not the site's drift.
    outputs = {name: o for name, o in (target.get("outputs") or {}).items() if not is_parity(str(name))}
    ulps = [o["max_ulp"] for o in outputs.values() if o.get("max_ulp") is not None]
    rels = [o["max_rel"] for o in outputs.values() if o.get("max_rel") is not None]
    severities = [d.get("severity") for d in target.get("fingerprint_diff") or []]
    # A container's hostname is its container id, new on every run: docker targets are placed on the
    # machine that ran them instead.
    host = (_daemon_host(target) or machine) if _is_docker(target) else (_hostname(target) or machine)
    golden = document["golden"]
    return [file, index, created, created.strftime("%Y-%m-%d"), target.get("site") or NO_SITE, host,
            target["spec"], target["verdict"], document["exit_code"], golden["sha256"], golden["path"],
            target.get("output_digest"),
            all(o["status"] == "identical" for o in outputs.values()) if outputs else None,
            (target.get("error") or {}).get("kind"), max(ulps) if ulps else None, max(rels) if rels else None,
            _lowest(outputs, "consistency"), _lowest(outputs, "top1_agreement_all"), severities.count("fail"),
            severities.count("warn"), *_latency_columns(target.get("latency")),
            *_localization_columns(target.get("localization")), *_image_columns(target), _integrity_findings(target)]


def _integrity_findings(target: dict) -> str | None:
    """The codes of the target's installed-file and start-up-code findings (docs/integrity.md), or None."""
    codes = {f.get("code") for f in target.get("findings") or [] if isinstance(f, dict)}
    return ", ".join(code for code in INTEGRITY_CODES if code in codes) or None


def _lowest(outputs: dict[str, Any], rate: str) -> float | None:
    """The lowest of a per-output rate (consistency, top-1 agreement) over a target's outputs; None where no
    output has it (a report from before per-sample evidence, or a target that was not compared)."""
    rates = [o[rate] for o in outputs.values() if isinstance(o.get(rate), (int, float))]
    return min(rates) if rates else None


def _latency_columns(latency: Any) -> tuple[float | None, float | None]:
    """(P50 in ms, P50 ratio to the golden) of a target's latency entry; None where the report has none."""
    if not isinstance(latency, dict):
        return None, None
    measured: dict[str, Any] = latency["target"] if isinstance(latency.get("target"), dict) else {}
    p50, ratio = measured.get("p50_s"), latency.get("ratio_p50")
    number = (int, float)
    return (round(p50 * 1000, 4) if isinstance(p50, number) else None,
            ratio if isinstance(ratio, number) and not isinstance(ratio, bool) else None)


def _localization_columns(localization: Any) -> tuple[str | None, str | None, str | None, float | None]:
    """(localization status, then key, op and error in ULP of the first origin, as localization_words picks
    it; the renderers word these columns with its tensor_text). None where absent."""
    if not isinstance(localization, dict):
        return None, None, None, None
    status = localization.get("status") if isinstance(localization.get("status"), str) else None
    first = first_origin(localization)
    if first is None or not isinstance(first.get("key"), str):
        return status, None, None, None
    op, ulp = first.get("op"), first.get("error_ulp")
    return (status, first["key"], op if isinstance(op, str) else None,
            ulp if isinstance(ulp, (int, float)) and not isinstance(ulp, bool) else None)


def _image_columns(target: dict) -> tuple[str | None, str | None]:
    """(the image reference as the user wrote it, the image id it resolved to) of a Docker target; None for
    any other target, and for a value that is missing or not a text (the schema leaves `target` free, so a
    hand-edited report may hold anything there). A target whose image was not found has a reference only."""
    info = target.get("target")
    if not _is_docker(target) or not isinstance(info, dict):
        return None, None
    image = info.get("image")
    return _text(info.get("image_ref")), _text(image.get("id") if isinstance(image, dict) else None)


def _text(value: Any) -> str | None:
    """A non-empty text as it is; None for anything else."""
    return value if isinstance(value, str) and value else None


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


def places(runs: pd.DataFrame) -> pd.Series:
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
