"""A fleet in one command: the site inventory (fleet.toml, fleet-1.schema.json), every site checked
concurrently with its own Docker endpoint, one JSON report per site under <reports>/<site>/, and the latest
verdict per site read back from those reports.

A site is checked exactly as `envcheck check --docker-host URL --site NAME --target …` checks it (the check
service, check.py): an unreachable daemon is an ERROR row of that site's report, and the other sites finish.
"""
from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from envcheck import schemas
from envcheck.check import check_targets, layered_policy, load_pinned_golden
from envcheck.compare.verdict import FailOn
from envcheck.errors import EnvcheckError, UsageError
from envcheck.files import atomic_write_text, read_regular_file, read_toml, report_file_name
from envcheck.golden import BUILTIN_PREFIX
from envcheck.model import VERDICT_RANK, RunReport
from envcheck.runner import run_interruptibly
from envcheck.targets import check_docker_host, parse_target
from envcheck.targets.base import CANCELLED

REPORT_PATTERN = "envcheck-*.json"


@dataclass(frozen=True, slots=True)
class Site:
    """One factory site of the inventory."""

    name: str
    targets: tuple[str, ...]
    docker_host: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    golden: str | None = None
    """A path (resolved against the inventory's folder) or builtin:NAME; None: the built-in golden."""
    policy: Path | None = None
    tls: tuple[str, str, str] | None = None
    """(CA, client certificate, client key) for a tcp:// daemon with --tlsverify."""


@dataclass(frozen=True, slots=True)
class SiteRun:
    """What one site's check produced: its report (and where it was written), or why there is none."""

    site: Site
    report: RunReport | None
    path: Path | None
    error: str | None = None

    @property
    def kind(self) -> str | None:
        """Why the site could not be checked at all (progress shows it as a failure), else None."""
        return "site-not-checked" if self.report is None else None

    @property
    def exit_code(self) -> int:
        """The site's exit code: its report's, 3 when it has none."""
        return self.report.exit_code if self.report is not None else 3


def load_inventory(path: Path) -> list[Site]:
    """The inventory's sites, checked against fleet-1.schema.json; UsageError naming the key otherwise."""
    table = read_toml(path, "inventory", UsageError)
    # An unknown key first: a misspelt `targts` says so, not that `targets` is missing.
    found = sorted(schemas.problems("fleet", table), key=lambda problem: problem.keyword != "additionalProperties")
    if found:
        raise UsageError(f"{path}: {schemas.describe(found)}")
    folder = Path(path).resolve().parent
    names = [entry["name"] for entry in table["site"]]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"{path}: site names must be unique ({', '.join(twice)} more than once)")
    for entry in table["site"]:
        if entry.get("docker_host"):
            try:
                check_docker_host(entry["docker_host"])
            except UsageError as error:
                raise UsageError(f"{path}: site {entry['name']}: docker_host {error}") from None
    return [Site(name=entry["name"], targets=tuple(entry["targets"]), docker_host=entry.get("docker_host"),
                 labels=dict(entry.get("labels") or {}), golden=_golden(entry.get("golden", table.get("golden")), folder),
                 policy=_relative(entry.get("policy", table.get("policy")), folder), tls=_tls(entry.get("tls"), folder))
            for entry in table["site"]]


def select(sites: list[Site], names: Sequence[str] | None) -> list[Site]:
    """The sites named (all when None); UsageError for a name the inventory does not have."""
    if not names:
        return sites
    known = {site.name for site in sites}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"--sites: no site {', '.join(unknown)} in the inventory (it has {', '.join(sorted(known))})")
    return [site for site in sites if site.name in names]


def run_fleet(sites: Sequence[Site], reports_dir: Path, *, jobs: int, timeout: float, fail_on: FailOn = "fail",
              cache_dir: Path | None = None, on_start: Callable[[Site], None] | None = None,
              on_finish: Callable[[SiteRun], None] | None = None) -> list[SiteRun]:
    """Check every site, up to `jobs` at once, each site's targets one after another; every report is
    written to reports_dir/<site>/ before its site counts as finished. `cache_dir`: Docker targets reuse a
    capture when nothing it depends on changed (targets/cache.py)."""
    sharing = sites_sharing_a_machine(sites, jobs)

    def one(site: Site) -> SiteRun:
        if on_start:
            on_start(site)
        outcome = check_site(site, reports_dir, timeout=timeout, fail_on=fail_on, cache_dir=cache_dir,
                             others_at_once=sharing[site.name])
        if on_finish:
            on_finish(outcome)
        return outcome

    # The same cancel path as `check`: SIGTERM or Ctrl-C starts no further site and stops every running probe.
    return run_interruptibly([partial(one, site) for site in sites], jobs)


THIS_MACHINE = "this machine"


def machine_of(site: Site) -> str:
    """The machine a site's probes run on: its daemon's host (a unix socket, or none, is this machine)."""
    if not site.docker_host or site.docker_host.startswith("unix://"):
        return THIS_MACHINE
    host = urlsplit(site.docker_host).hostname or site.docker_host
    return THIS_MACHINE if _loopback(host) else host


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return False


def sites_sharing_a_machine(sites: Sequence[Site], jobs: int) -> dict[str, int]:
    """Per site, how many other sites may probe on its machine at the same time (at most jobs - 1): their
    latencies are then shown, not judged. Sites on machines of their own are judged as if alone."""
    per_machine = Counter(machine_of(site) for site in sites)
    return {site.name: min(jobs, per_machine[machine_of(site)]) - 1 for site in sites}


def check_site(site: Site, reports_dir: Path, *, timeout: float, fail_on: FailOn = "fail",
               cache_dir: Path | None = None, others_at_once: int = 0) -> SiteRun:
    """One site: its golden and policy, its targets on its endpoint, its report written atomically. A golden
    or policy that cannot be used is the site's error (no report), never the fleet's. `others_at_once`: sites
    checked meanwhile (their probes may share this machine: latencies are then shown, not judged)."""
    try:
        golden = load_pinned_golden(Path(site.golden) if site.golden else None)
        policy, record = layered_policy(golden, site.policy)
        targets = [parse_target(spec, docker_host=site.docker_host, tls=site.tls, cache_dir=cache_dir)
                   for spec in site.targets]
        report = check_targets(golden, targets, policy, record, timeout=timeout, site=site.name, fail_on=fail_on,
                               others_at_once=others_at_once)
    except EnvcheckError as error:
        return SiteRun(site=site, report=None, path=None, error=str(error))
    if CANCELLED.is_set():  # stopped midway: its targets' ERROR rows would be a report of the cancel, not the site
        return SiteRun(site=site, report=None, path=None, error="cancelled")
    from envcheck.report.json import render_json, report_to_dict

    document = report_to_dict(report)
    document["labels"] = site.labels
    path = reports_dir / site.name / report_file_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_json(document))
    return SiteRun(site=site, report=report, path=path)


def worst_exit_code(runs: Sequence[SiteRun]) -> int:
    """3 over 1 over 0, over every site."""
    codes = {run.exit_code for run in runs}
    return 3 if 3 in codes else 1 if 1 in codes else 0


@dataclass(frozen=True, slots=True)
class SiteStatus:
    """A site's latest stored report, as `fleet status` shows it."""

    site: str
    report: Path | None
    created: str | None
    exit_code: int | None
    verdicts: dict[str, int]
    worst: str | None
    problem: str | None = None


def fleet_status(reports_dir: Path) -> list[SiteStatus]:
    """The latest report of every site folder under reports_dir (a report that cannot be read says why)."""
    found = []
    folders = sorted(p for p in Path(reports_dir).iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if Path(reports_dir).is_dir() else []
    for folder in folders:  # (.cache and other dot-folders are no sites)
        reports = sorted(folder.glob(REPORT_PATTERN))
        if not reports:
            continue
        latest = reports[-1]  # the names are UTC timestamps: the last sorts latest
        try:
            document = json.loads(read_regular_file(latest))
        except OSError as error:
            found.append(SiteStatus(folder.name, latest, None, None, {}, None, f"unreadable: {error.strerror}"))
            continue
        except ValueError as error:
            found.append(SiteStatus(folder.name, latest, None, None, {}, None, f"unreadable: {error}"))
            continue
        problem = schemas.check(document, schemas.REPORT_SCHEMA, str(latest))
        if problem:
            found.append(SiteStatus(folder.name, latest, None, None, {}, None, problem))
            continue
        verdicts = {str(k): int(v) for k, v in (document.get("summary") or {}).items()}
        worst = max(verdicts, key=lambda v: VERDICT_RANK.get(v, -1)) if verdicts else None
        found.append(SiteStatus(folder.name, latest, document.get("created"), document.get("exit_code"), verdicts,
                                worst))
    return found


def _golden(value: Any, folder: Path) -> str | None:
    if value is None or str(value).startswith(BUILTIN_PREFIX):
        return value
    return str(_relative(value, folder))


def _tls(table: dict[str, str] | None, folder: Path) -> tuple[str, str, str] | None:
    if table is None:
        return None
    return (str(_relative(table["ca"], folder)), str(_relative(table["cert"], folder)), str(_relative(table["key"], folder)))


def _relative(value: Any, folder: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path
