"""SIGTERM (a CI system's cancel) and Ctrl-C in the middle of every command that runs probes: it stops
starting work at once, ends the probes it started, writes nothing partial and exits 128 + the signal.

(Before the shared cancel path, `fleet run` ignored SIGTERM until every site had finished.)
"""
from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from contract.conftest import ENVCHECK, restore_default_signals
from helpers import alive, hanging_interpreter, kill_quietly, wait_for_pid
from hostile.cases import golden_copy


def _fleet(root: Path, interpreter: Path) -> list[str]:
    inventory = root / "fleet.toml"
    sites = "".join(f'[[site]]\nname = "line-{n}"\ntargets = ["python:{interpreter}"]\n' for n in range(4))
    inventory.write_text(sites)
    return ["fleet", "run", str(inventory), "--jobs", "1", "--reports-dir", str(root / "reports")]


RUNNERS: dict[str, Callable[[Path, Path], list[str]]] = {
    # id: argv that probes the given (hanging) interpreter and would write under root/reports
    "check": lambda root, hang: ["check", "--target", f"python:{hang}", "--reports-dir", str(root / "reports")],
    "probe": lambda root, hang: ["probe", "--target", f"python:{hang}", "--out", str(root / "reports" / "capture")],
    "fleet-run": _fleet,
    "golden-create": lambda root, hang: ["golden", "create", "--builtin", "--target", f"python:{hang}", "--out",
                                         str(root / "reports" / "golden")],
    "golden-calibrate": lambda root, hang: ["golden", "calibrate", str(golden_copy(root)), "--target",
                                            f"python:{hang}"],
}


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGTERM, id="sigterm"),
                                    pytest.param(signal.SIGINT, id="sigint")])
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_a_signal_stops_the_run_and_leaves_nothing(runner: str, signum: int, workdir: Path):
    hang, pid_file = hanging_interpreter(workdir)
    argv = RUNNERS[runner](workdir, hang)
    child = subprocess.Popen([*ENVCHECK, *argv, "--timeout", "120"], cwd=workdir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=restore_default_signals)
    probe_pid = None
    try:
        probe_pid = wait_for_pid(pid_file, 60)
        assert probe_pid is not None, "the hung probe never started"
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
        assert child.returncode == 128 + signum, err
        assert "interrupted" in err and "Traceback" not in err, err
        assert not alive(probe_pid), "a probe outlived the signal"
        assert pid_file.read_text().strip() == str(probe_pid), "another probe started after the signal"
        written = [p for p in (workdir / "reports").rglob("*") if p.is_file()] if (workdir / "reports").exists() else []
        assert not [p for p in written if p.suffix == ".json"], f"written after the signal: {written}"
    finally:
        kill_quietly(child.pid, probe_pid)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_signal_while_a_large_review_starts_its_workers_prints_no_traceback(tmp_path: Path):
    """A first review of thousands of reports reads them in worker processes; one still being started when
    SIGTERM arrives died inside multiprocessing and printed its traceback into the CI log."""
    import json

    from helpers import RECORDED_REPORTS

    reports = tmp_path / "reports"
    reports.mkdir()
    text = json.dumps(json.loads((RECORDED_REPORTS / "beijing-1.json").read_text()))
    for number in range(4000):
        (reports / f"r{number}.json").write_text(text)
    for _ in range(3):  # the window is the workers' start: aim the signal at it from the first child on
        index = reports / ".envcheck-review-index"
        if index.exists():
            import shutil
            shutil.rmtree(index)
        child = subprocess.Popen([*ENVCHECK, "review", str(reports)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=restore_default_signals)
        try:
            # the forkserver is the review's child; the workers are the forkserver's: signal as the first appears
            while child.poll() is None and not any(_children(server) for server in _children(child.pid)):
                pass
            child.send_signal(signal.SIGTERM)
            _, err = child.communicate(timeout=60)
            assert child.returncode in (0, 143), err
            assert "Traceback" not in err, err
        finally:
            kill_quietly(child.pid)
