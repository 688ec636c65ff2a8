"""Shared fixtures. Infrastructure (TensorFlow, extra interpreters, Docker) is real: when it is missing,
`require` skips locally but fails in CI (CI=true), so a green CI run means everything really ran."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

# This test session's run id, for every envcheck it runs in-process or spawns: its probe containers carry
# it (envcheck.run), and the tests look for their own containers only, never another run's on a shared daemon.
os.environ.setdefault("ENVCHECK_RUN_ID", f"tests-{uuid.uuid4().hex}")
# envcheck's own caches (the integrity hash tables, envcheck/targets/integrity_cache.py) in a folder of this
# session's: no test reads what an earlier run, or the user's own checks, left in ~/.cache.
_CACHE_HOME = tempfile.mkdtemp(prefix="envcheck-tests-cache-")
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME

import pytest

from envcheck.cli import main
from envcheck.golden import builtin_golden_dir
# Re-exported for tests that still import them from here; new tests import tests/helpers.py.
from helpers import (FIXTURE_CACHE, IN_CI, NO_TF_PYTHON, RECORDED_REPORTS, REPO, TF_OLDER_PYTHON,  # noqa: F401
                     make_golden_here, require, tensorflow_installed)

@pytest.fixture(scope="session")
def needs_tensorflow() -> None:
    require(tensorflow_installed(), f"TensorFlow in {sys.executable}")


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr, parsed JSON report or None)."""
    def run(*argv: str):
        report = tmp_path / f"report-{len(list(tmp_path.glob('report-*.json')))}.json"
        extra = ["--json", str(report), "--reports-dir", str(tmp_path / "kept")] if argv[0] in ("check", "compare") else []
        code = main([*argv, *extra])
        out, err = capsys.readouterr()
        document = json.loads(report.read_text()) if report.exists() else None
        return code, out, err, document
    return run


@pytest.fixture(scope="session")
def host_golden(tmp_path_factory, needs_tensorflow) -> Path:
    """The built-in model as a golden made and calibrated in this environment: the same environment is
    IDENTICAL to it, with every output 0 noise units away."""
    return make_golden_here(tmp_path_factory.mktemp("golden") / "host", calibrate=True)


@pytest.fixture(scope="session")
def golden_onednn_on(tmp_path_factory, needs_tensorflow) -> Path:
    """The built-in model as a golden made with TF_ENABLE_ONEDNN_OPTS=1 set explicitly."""
    return make_golden_here(tmp_path_factory.mktemp("golden") / "onednn-on", TF_ENABLE_ONEDNN_OPTS="1")


@pytest.fixture
def golden_copy(tmp_path) -> Path:
    """A writable copy of the built-in golden, to corrupt."""
    copy = tmp_path / "golden"
    shutil.copytree(builtin_golden_dir(), copy)
    return copy


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true",
                     help="rewrite the renderer snapshots under tests/report/snapshots/ instead of comparing")


@pytest.fixture
def snapshot(request):
    """Compare text with tests/report/snapshots/NAME; a mismatch writes NAME.obtained for review.
    Only --update-snapshots overwrites a snapshot (never silently)."""
    directory = REPO / "tests" / "report" / "snapshots"

    def check(name: str, text: str) -> None:
        expected = directory / name
        obtained = directory / f"{name}.obtained"
        if request.config.getoption("--update-snapshots"):
            directory.mkdir(parents=True, exist_ok=True)
            expected.write_text(text)
            obtained.unlink(missing_ok=True)
            return
        if not expected.exists() or expected.read_text() != text:
            obtained.write_text(text)
            pytest.fail(f"{name} differs from its snapshot; review {obtained} and rerun with --update-snapshots "
                        "if the change is intended")
        obtained.unlink(missing_ok=True)
    return check




@pytest.fixture(scope="session")
def recorded_reports() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RECORDED_REPORTS.glob("*.json"))}
