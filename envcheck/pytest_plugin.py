"""The pytest plugin (entry point `pytest11`): check targets against a golden from a team's own test suite.

    def test_image_matches_golden(envcheck, envcheck_target):
        envcheck.check(envcheck_target).assert_ok()

`pytest --envcheck-golden golden/vision --envcheck-target docker:factory/vision:1.5` then runs one test per
target. The fixture calls the check service (envcheck/check.py) as `envcheck check` does: the same golden,
policy, probe and JSON report. Each target is probed once per session whatever the number of tests that
check it (the cache key: spec, docker image id, golden sha256, policy, latency budget), also under
pytest-xdist, whose workers share the cache through files under one run directory, each entry computed
by the worker that takes its lock first (fcntl) and read by the others.

pytest loads this module in every run of every project that installs envcheck: at import time it imports
the standard library and pytest only (tests/test_layering.py checks that); numpy, docker and the rest come
when a fixture is used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_REPORTS_DIR = "reports"
DEFAULT_REFERENCE_TARGET = "host"
FAIL_ON_CHOICES = ("warn", "fail")
MAX_HINTS = 3
"""Hints shown in an assertion message; the report has all of them."""
RUN_DIR_PREFIX = "envcheck-pytest-"
BUILTIN_PREFIX = "builtin:"
"""envcheck.golden.BUILTIN_PREFIX (a test keeps them equal): golden.py imports numpy, which this module may not
at import or configure time."""

_SETTINGS = pytest.StashKey["Settings"]()
_SESSION = pytest.StashKey["SessionState"]()
_RUN_ID = "envcheck_run_id"
"""The key under which the controller hands its run id to pytest-xdist workers (workerinput)."""


# ------------------------------------------------------------------------------------------ options

def pytest_addoption(parser: pytest.Parser) -> None:
    """The `--envcheck-*` options, each with an ini key of the same name (`envcheck_*`); an option wins."""
    group = parser.getgroup("envcheck", "envcheck: check targets against a golden TensorFlow model")
    group.addoption("--envcheck-golden", metavar="DIR", help="golden bundle, or builtin:NAME (builtin:edge) for a "
                    "built-in one (default: the built-in golden)")
    group.addoption("--envcheck-target", action="append", metavar="SPEC", dest="envcheck_targets",
                    help="host | python:PATH | docker:IMAGE; repeatable: the fixture envcheck_target is "
                         "parametrised over them, one test per target")
    group.addoption("--envcheck-policy", metavar="FILE", help="TOML policy over the golden's own")
    group.addoption("--envcheck-docker-host", metavar="URL", help="Docker daemon (default: DOCKER_HOST)")
    group.addoption("--envcheck-reports-dir", metavar="DIR",
                    help=f"where each target's JSON report is written (default: {DEFAULT_REPORTS_DIR}/ in the rootdir)")
    group.addoption("--envcheck-fail-on", choices=FAIL_ON_CHOICES,
                    help="default of assert_ok(): 'warn' fails WARN targets too (default: fail)")
    group.addoption("--envcheck-latency-budget", metavar="S",
                    help="at most the seconds each probe times batch-1 calls (default 2; 0 disables)")
    group.addoption("--envcheck-timeout", metavar="S", help=f"seconds one probe may take (default {DEFAULT_TIMEOUT_S:g})")
    group.addoption("--envcheck-reference-target", metavar="SPEC",
                    help=f"the golden's reference target, for --envcheck-update-golden (default {DEFAULT_REFERENCE_TARGET})")
    group.addoption("--envcheck-update-golden", action="store_true",
                    help="rebuild the golden's expected outputs from the reference target (never from a target "
                         "under test), check nothing and fail the run")
    parser.addini("envcheck_golden", "golden bundle (relative to the ini file)")
    parser.addini("envcheck_targets", "targets, one per line", type="linelist")
    parser.addini("envcheck_policy", "TOML policy file (relative to the ini file)")
    parser.addini("envcheck_docker_host", "Docker daemon URL")
    parser.addini("envcheck_reports_dir", "directory for the JSON reports (relative to the ini file)")
    parser.addini("envcheck_fail_on", "default of assert_ok(): warn or fail")
    parser.addini("envcheck_latency_budget", "at most the seconds each probe times batch-1 calls (0 disables)")
    parser.addini("envcheck_timeout", "seconds one probe may take")
    parser.addini("envcheck_reference_target", "the golden's reference target, for --envcheck-update-golden")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The plugin's options, resolved: paths absolute, numbers checked."""

    golden: Path | str | None
    """A bundle directory, or `builtin:NAME` (as the CLI's --golden takes it)."""
    targets: tuple[str, ...]
    policy: Path | None
    docker_host: str | None
    reports_dir: Path
    fail_on: str
    latency_budget: float | None
    timeout: float
    reference_target: str
    update_golden: bool


def _settings(config: pytest.Config) -> Settings:
    """Options over ini keys; a path from the command line is relative to the invocation directory, one
    from the ini file to the ini file. Bad values are usage errors."""
    here = config.invocation_params.dir
    ini_dir = config.inipath.parent if config.inipath else config.rootpath

    def value(name: str) -> tuple[Any, Path]:
        given = config.getoption(name)
        if given not in (None, [], ""):
            return given, here
        from_ini = config.getini(name)
        return (from_ini or None), ini_dir

    def path(name: str) -> Path | None:
        given, base = value(name)
        return None if given is None else (base / Path(given).expanduser()).resolve()

    def golden() -> Path | str | None:
        given, _ = value("envcheck_golden")
        return given if _is_builtin(given) else path("envcheck_golden")

    def seconds(name: str, default: float | None, allow_zero: bool) -> float | None:
        given, _ = value(name)
        if given is None:
            return default
        try:
            number = float(given)
        except ValueError:
            raise pytest.UsageError(f"{name}: {given!r} is not a number of seconds") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise pytest.UsageError(f"{name}: must be a {'non-negative' if allow_zero else 'positive'} number of "
                                    f"seconds, got {given!r}")
        return number

    fail_on = value("envcheck_fail_on")[0] or "fail"
    if fail_on not in FAIL_ON_CHOICES:
        raise pytest.UsageError(f"envcheck_fail_on: expected warn or fail, got {fail_on!r}")
    targets = tuple(config.getoption("envcheck_targets") or config.getini("envcheck_targets") or ())
    timeout = seconds("envcheck_timeout", DEFAULT_TIMEOUT_S, allow_zero=False)
    return Settings(golden=golden(), targets=targets, policy=path("envcheck_policy"),
                    docker_host=value("envcheck_docker_host")[0],
                    reports_dir=path("envcheck_reports_dir") or config.rootpath / DEFAULT_REPORTS_DIR,
                    fail_on=fail_on, latency_budget=seconds("envcheck_latency_budget", None, allow_zero=True),
                    timeout=timeout if timeout is not None else DEFAULT_TIMEOUT_S,
                    reference_target=value("envcheck_reference_target")[0] or DEFAULT_REFERENCE_TARGET,
                    update_golden=bool(config.getoption("envcheck_update_golden")))


def pytest_configure(config: pytest.Config) -> None:
    """Check the options (no import beyond the standard library) and give this run its id."""
    config.stash[_SETTINGS] = _settings(config)
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput.get(_RUN_ID) if workerinput else None
    config.stash[_SESSION] = SessionState(run_id=run_id or uuid.uuid4().hex, controller=workerinput is None)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker shares the controller's run id, hence its probe cache."""
    node.workerinput[_RUN_ID] = node.config.stash[_SESSION].run_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per target for a test that takes `envcheck_target` (skipped, saying why, when none is given)."""
    if "envcheck_target" not in metafunc.fixturenames:
        return
    targets = metafunc.config.stash[_SETTINGS].targets
    if targets:
        metafunc.parametrize("envcheck_target", list(targets), ids=list(targets))
    else:
        reason = "no envcheck target: pass --envcheck-target SPEC (repeatable) or set envcheck_targets in the ini file"
        metafunc.parametrize("envcheck_target", [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                             ids=["no-target"])


# ------------------------------------------------------------------------------- the session's state

@dataclasses.dataclass
class SessionState:
    """What one run shares: its id (the same in every xdist worker), goldens loaded, checks made."""

    run_id: str
    controller: bool
    goldens: dict[Path | str | None, Any] = dataclasses.field(default_factory=dict)
    memo: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    updated_golden: dict[str, str] | None = None

    @property
    def run_dir(self) -> Path:
        """The run's cache directory, shared by the xdist workers of this run (made when first needed)."""
        return Path(tempfile.gettempdir()) / f"{RUN_DIR_PREFIX}{self.run_id}"

    def entries(self) -> list[dict[str, Any]]:
        """Every check this run made, in any worker, oldest first."""
        if not self.run_dir.is_dir():
            return []
        found = []
        for path in self.run_dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text(encoding="utf-8")))
        return sorted(found, key=lambda entry: entry.get("finished", 0))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on `path` for the block (another worker waits)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------ the fixture

@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One target checked against the golden: the target's entry of the JSON report, and where it is."""

    spec: str
    verdict: str
    """IDENTICAL, PASS, WARN, FAIL or ERROR."""
    outputs: dict[str, dict[str, Any]]
    """Per output, the report's statistics: status, max_ulp, max_abs, max_rel, top1_agreement, …"""
    fingerprint_diff: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    hints: list[str]
    error: dict[str, Any] | None
    report_path: Path
    document: dict[str, Any]
    """The whole JSON report (schema envcheck.report/1) of this one target."""
    fail_on: str = "fail"
    """The default of assert_ok (--envcheck-fail-on)."""

    @classmethod
    def from_report(cls, document: dict[str, Any], report_path: Path, fail_on: str) -> CheckResult:
        """The result of a one-target report."""
        (entry,) = document["targets"]
        return cls(spec=entry["spec"], verdict=entry["verdict"], outputs=dict(entry.get("outputs") or {}),
                   fingerprint_diff=list(entry.get("fingerprint_diff") or []), findings=list(entry.get("findings") or []),
                   hints=list(entry.get("hints") or []), error=entry.get("error"), report_path=report_path,
                   document=document, fail_on=fail_on)

    def failed(self, fail_on: str | None = None) -> bool:
        """True when the verdict fails the gate: ERROR and FAIL, WARN too with fail_on='warn'."""
        fail_on = fail_on or self.fail_on
        if fail_on not in FAIL_ON_CHOICES:
            raise ValueError(f"fail_on must be 'warn' or 'fail', not {fail_on!r}")
        from envcheck.compare.verdict import exit_code_for

        return int(exit_code_for([self.verdict], fail_on)) != 0  # type: ignore[list-item,arg-type]

    def assert_ok(self, fail_on: str | None = None) -> None:
        """Fail the test unless the target passed the gate; the message reads like the CI log of `envcheck check`."""
        __tracebackhide__ = True
        if self.failed(fail_on):
            raise AssertionError(self.message(fail_on))

    def message(self, fail_on: str | None = None) -> str:
        """The CI-log rendering of this target (verdict, the worst output with its numbers, the fingerprint
        differences that decided, the first hints) under a line saying why it fails, and the report's path."""
        from envcheck.report.terminal import render_plain
        from envcheck.report.view import build_view

        fail_on = fail_on or self.fail_on
        view = build_view(self.document)
        (target,) = view.targets
        differing = target.differing_outputs
        worst = max(differing, key=_badness) if differing else None
        trimmed = dataclasses.replace(target, outputs=tuple(o for o in target.outputs if o is worst or o.status == "identical"),
                                      hints=target.hints[:MAX_HINTS])
        lines = render_plain(dataclasses.replace(view, targets=(trimmed,))).rstrip("\n").split("\n")
        if lines and lines[-1].startswith("exit "):
            lines.pop()  # the run's exit code: here the test's outcome says it
        more = len(target.hints) - MAX_HINTS
        if more > 0:
            lines.append(f"{' ' * (len(target.verdict) + 2)}({more} more hint{'s' if more > 1 else ''} in the report)")
        gate = "WARN, FAIL and ERROR" if fail_on == "warn" else "FAIL and ERROR"
        return "\n".join([f"envcheck: {self.spec} is {self.verdict} (fail_on={fail_on!r} fails {gate})", *lines,
                          f"report: {self.report_path}"])


def _badness(output: Any) -> tuple[int, float, float]:
    from envcheck.model import OUTPUT_STATUS_RANK

    stats = output.stats
    numbers = [stats.get(name) for name in ("max_ulp", "max_rel")]
    return (OUTPUT_STATUS_RANK.get(output.status, 0),
            *(float(n) if isinstance(n, (int, float)) else -1.0 for n in numbers))  # type: ignore[return-value]


class Envcheck:
    """The `envcheck` fixture: `check(spec)` probes a target once per session and judges it against the golden."""

    def __init__(self, config: pytest.Config, record_property: Any) -> None:
        self._config = config
        self._record_property = record_property
        self.settings: Settings = config.stash[_SETTINGS]

    def check(self, spec: str, golden: str | Path | None = None, policy: str | Path | None = None) -> CheckResult:
        """Check `spec` (host | python:PATH | docker:IMAGE) against `golden` (default --envcheck-golden, else the
        built-in golden) under `policy` (default --envcheck-policy); records the verdict and the report's
        path as JUnit properties. A target that cannot be checked is a result with verdict ERROR."""
        __tracebackhide__ = True
        settings = self.settings
        state: SessionState = self._config.stash[_SESSION]
        if settings.update_golden:
            pytest.fail(f"envcheck: --envcheck-update-golden rebuilt the golden from its reference target "
                        f"{settings.reference_target}; nothing is checked in this run: rerun without it", pytrace=False)
        if spec is None:
            pytest.fail("envcheck.check: no target (envcheck_target is None: give --envcheck-target SPEC)", pytrace=False)
        from envcheck.errors import EnvcheckError

        try:
            result = self._check(state, str(spec), _golden(golden) or settings.golden, _path(policy) or settings.policy)
        except EnvcheckError as error:
            pytest.fail(f"envcheck: {spec}: {error}", pytrace=False)
        self._record_property("envcheck_target", result.spec)
        self._record_property("envcheck_verdict", result.verdict)
        self._record_property("envcheck_report", str(result.report_path))
        return result

    def _check(self, state: SessionState, spec: str, golden_dir: Path | str | None, policy_file: Path | None
               ) -> CheckResult:
        from envcheck.check import layered_policy, load_pinned_golden

        settings = self.settings
        if golden_dir not in state.goldens:
            state.goldens[golden_dir] = load_pinned_golden(golden_dir)
        golden = state.goldens[golden_dir]
        policy, record = layered_policy(golden, policy_file)
        policy_hash = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        identity = {"spec": spec, "image_id": _image_id(spec, settings.docker_host), "docker_host": settings.docker_host,
                    "golden_sha256": golden.sha256, "policy": policy_hash, "latency_budget": settings.latency_budget}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        entry = state.memo.get(key)
        if entry is None:
            entry_path = state.run_dir / f"{key}.json"
            with _locked(state.run_dir / f"{key}.lock"):
                if entry_path.exists():  # another worker probed it
                    entry = json.loads(entry_path.read_text(encoding="utf-8"))
                else:
                    entry = self._probe(spec, golden, policy, record, key)
                    from envcheck.files import atomic_write_text

                    atomic_write_text(entry_path, json.dumps(entry))
            state.memo[key] = entry
        document = json.loads(Path(entry["report"]).read_text(encoding="utf-8"))
        return CheckResult.from_report(document, Path(entry["report"]), settings.fail_on)

    def _probe(self, spec: str, golden: Any, policy: Any, record: dict[str, Any], key: str) -> dict[str, Any]:
        from envcheck.check import check_targets
        from envcheck.files import atomic_write_text, report_file_name
        from envcheck.report.json import render_json, report_to_dict
        from envcheck.targets import parse_target

        settings = self.settings
        budget: dict[str, Any] = {} if settings.latency_budget is None else {"latency_budget": settings.latency_budget}
        target = parse_target(spec, **budget, docker_host=settings.docker_host)
        report = check_targets(golden, [target], policy, record, timeout=settings.timeout, jobs=1,
                               fail_on=settings.fail_on)  # type: ignore[arg-type]
        document = report_to_dict(report)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[:60]
        path = settings.reports_dir / report_file_name(suffix=f"-{slug}-{key[:8]}")
        atomic_write_text(path, render_json(document))
        return {"spec": spec, "verdict": document["targets"][0]["verdict"], "report": str(path),
                "finished": time.time()}


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value).expanduser().resolve()


def _is_builtin(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(BUILTIN_PREFIX)


def _golden(value: str | Path | None) -> Path | str | None:
    """A golden as envcheck.check takes it: `builtin:NAME` as it is, a path resolved."""
    return value if _is_builtin(value) else _path(value)


def _image_id(spec: str, docker_host: str | None) -> str | None:
    """The id of a docker: target's image (a tag moved to a rebuilt image is another target); None when it
    cannot be resolved: the probe then reports why, once."""
    kind, _, image = spec.partition(":")
    if kind != "docker" or not image:
        return None
    from envcheck.targets.docker import connect

    try:
        client = connect(docker_host, answer_within=30)
    except Exception:  # noqa: BLE001  # no daemon: the probe's own ERROR says so
        return None
    try:
        return str(client.images.get(image).id)
    except Exception:  # noqa: BLE001  # no such image: the probe's own ERROR says so
        return None
    finally:
        client.close()


@pytest.fixture
def envcheck(pytestconfig: pytest.Config, record_property: Any) -> Envcheck:
    """`envcheck.check(spec)`: the target checked against the golden (see Envcheck.check)."""
    return Envcheck(pytestconfig, record_property)


# ----------------------------------------------------------------------- --envcheck-update-golden

@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """--envcheck-update-golden: rebuild the golden from its reference target before any test (and before
    pytest-xdist starts its workers), once, in the controller."""
    config = session.config
    settings: Settings = config.stash[_SETTINGS]
    state: SessionState = config.stash[_SESSION]
    if not settings.update_golden or not state.controller:
        return
    if not isinstance(settings.golden, Path):
        raise pytest.UsageError("--envcheck-update-golden needs --envcheck-golden DIR (the built-in goldens are "
                                "rebuilt with `envcheck golden create --builtin`)")
    if settings.reference_target in settings.targets:
        raise pytest.UsageError(f"--envcheck-update-golden: the reference target {settings.reference_target} is also "
                                "a target under test; a golden is never rebuilt from a target under test (name "
                                "another with --envcheck-reference-target)")
    from envcheck.errors import EnvcheckError

    try:
        state.updated_golden = update_golden(settings.golden, settings.reference_target,
                                             docker_host=settings.docker_host, timeout=settings.timeout)
    except EnvcheckError as error:
        raise pytest.UsageError(f"--envcheck-update-golden: {error}") from None


def update_golden(golden_dir: Path, reference: str, *, docker_host: str | None, timeout: float) -> dict[str, str]:
    """Rebuild the golden in the reference target (golden_create.update_golden: what it rewrites, what it keeps).
    Returns what changed, for the summary."""
    from envcheck.golden_create import update_golden as rebuild
    from envcheck.targets import parse_target

    old, new = rebuild(golden_dir, parse_target(reference, docker_host=docker_host), timeout)
    return {"path": str(old.path), "reference": reference, "old_sha256": old.sha256, "new_sha256": new.sha256}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that rebuilt the golden fails (as pytest-regressions' --force-regen does): nothing was checked."""
    state: SessionState = session.config.stash[_SESSION]
    if state.updated_golden and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------------------------- the summary

def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name every report this run wrote (from every xdist worker), and a rebuilt golden."""
    state: SessionState = config.stash[_SESSION]
    if not state.controller:
        return
    entries = state.entries()
    if not entries and not state.updated_golden:
        return
    terminalreporter.write_sep("=", "envcheck")
    if state.updated_golden:
        update = state.updated_golden
        terminalreporter.write_line(f"golden {update['path']} rebuilt from reference target {update['reference']} "
                                    f"(sha256 {update['old_sha256'][:12]} → {update['new_sha256'][:12]}); nothing was "
                                    "checked: rerun without --envcheck-update-golden")
    width = max((len(entry.get("verdict", "")) for entry in entries), default=0)
    for entry in entries:
        terminalreporter.write_line(f"{entry.get('verdict', ''):<{width}}  {entry.get('spec')}  report: {entry.get('report')}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller removes the run's cache directory (the reports stay)."""
    state = config.stash.get(_SESSION, None)
    if state is not None and state.controller and state.run_dir.is_dir():
        shutil.rmtree(state.run_dir, ignore_errors=True)


__all__ = ["CheckResult", "Envcheck", "Settings", "update_golden"]
