"""Every hostile case: the contract's exit code, one plain line (never a traceback), the other
targets unharmed, no process or container left behind, and no partial report."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import own_probes_filter, require, tensorflow_installed
from envcheck.cli import main
from hostile.cases import CASES, REPO, Case, close_sockets


def _docker_ready() -> bool:
    try:
        import docker
        client = docker.from_env(timeout=30)
        client.ping()
        return bool(client.images.list(name="envcheck-fixture/reference"))
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _leftover_processes(marker: Path) -> list[str]:
    """Processes still running whose command line names this case's directory."""
    found = subprocess.run(["pgrep", "-af", str(marker)], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def _probe_containers() -> list:
    import docker
    return docker.from_env().containers.list(all=True, filters=own_probes_filter())


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.docker] if c.needs == "docker" else [])
                                  for c in CASES])
def test_hostile_input(case: Case, tmp_path, capsys, monkeypatch):
    if case.needs == "docker":
        require(_docker_ready(), "a running Docker daemon with the fixture images")
    if case.needs == "gcc":
        require(shutil.which("gcc") is not None, "gcc")
    if case.needs == "tensorflow":
        require(tensorflow_installed(), "TensorFlow")
    work = tmp_path / "case"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = case.make(work)
    reports = tmp_path / "reports"
    if argv[0] in ("check", "compare"):
        if "--reports-dir" not in argv:
            argv += ["--reports-dir", str(reports)]
        argv += ["--json", str(tmp_path / "report.json")]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    finally:
        close_sockets()
    out, err = capsys.readouterr()
    try:
        assert code == case.code, f"exit {code}, expected {case.code}\nstdout:\n{out}\nstderr:\n{err}"
        assert "Traceback" not in out + err
        report = tmp_path / "report.json"
        if case.kind:  # a target that could not be checked: an ERROR row in a complete report
            document = json.loads(report.read_text())
            assert document["exit_code"] == code
            (target,) = document["targets"]
            assert target["verdict"] == "ERROR" and target["error"]["kind"] == case.kind, target["error"]
            assert case.says in target["error"]["message"], target["error"]["message"]
        else:
            assert case.says in out + err, f"{case.says!r} not in\nstdout:\n{out}\nstderr:\n{err}"
            if code in (2, 3) and argv[0] != "review":
                errors = [line for line in err.splitlines() if line.strip()]
                assert len(errors) == 1 and errors[0].startswith("envcheck: error:"), err
                assert not report.exists() and not list(reports.glob("*.json")), "a partial report was written"
        assert _leftover_processes(work) == []
        if case.needs == "docker":
            assert _probe_containers() == []
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(work)], check=False)  # only what this case started


def test_docs_table_lists_every_case():
    """The docs' bad-input table (docs/bad-input.md, above its reproductions) and the battery name the same cases."""
    page = (REPO / "docs" / "bad-input.md").read_text()
    section = page.split("# What envcheck does with bad input\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(c.id for c in CASES)
    for case in CASES:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{case.id}` |"))
        assert f"| {case.code} |" in row, row


@pytest.mark.control
def test_the_battery_is_broad():
    areas = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) >= 30 and {"golden", "policy", "capture", "review", "target", "docker", "cli"} <= areas
