"""Fleets without a reachable Docker API (issue 25, item 3): contrib/ansible/envcheck.yml run for real with
ansible-playbook against sshd instances on loopback addresses, each a "factory host" whose TensorFlow lives
somewhere else: plant-a in a virtual environment (TensorFlow 2.20, older than the golden's), plant-b in an
interpreter that is no venv (TensorFlow 2.21). The play copies the kit, runs it with the host's own Python,
fetches the capture, leaves nothing behind, and compares the captures on the controller for `envcheck review`.

The hosts' interpreters never depend on the one running the suite: plant-b's is the base interpreter under it
(`sys._base_executable`, or one on the PATH) that has TensorFlow and is no venv, so the test checks the same
two hosts whether pytest runs in a venv or not. When the suite itself runs in a venv that sees TensorFlow (a
`--system-site-packages` venv), that interpreter is a third host, plant-c: a production venv built the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.cli import main
from envcheck.errors import ExitCode
from helpers import NO_TF_PYTHON, REPO, TF_OLDER_PYTHON, require, start_sshd

PLAYBOOK = REPO / "contrib" / "ansible" / "envcheck.yml"
# One line per installed distribution: what `pip list --format=freeze` says, without needing pip on the box.
LIST_PACKAGES = ("import importlib.metadata as m; print('\\n'.join(sorted("
                 "'%s==%s' % (d.metadata['Name'], d.version) for d in m.distributions())))")
# Is it a venv, and does it have TensorFlow (found, not imported: an import takes seconds)?
DESCRIBE = ("import importlib.util, sys; print(sys.prefix != sys.base_prefix, "
            "importlib.util.find_spec('tensorflow') is not None)")


def _describe(python: str) -> tuple[bool, bool] | None:
    """(is a venv, has TensorFlow) of an interpreter; None when it does not run."""
    try:
        described = subprocess.run([python, "-c", DESCRIBE], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    if described.returncode != 0:
        return None
    in_venv, has_tensorflow = described.stdout.split()
    return in_venv == "True", has_tensorflow == "True"


def _box_interpreters() -> dict[str, str]:
    """The hosts' interpreters: plant-a's TensorFlow in a venv, plant-b's in an interpreter that is no venv, and
    plant-c the suite's own when it is a venv that sees TensorFlow."""
    require(TF_OLDER_PYTHON.exists() and _describe(str(TF_OLDER_PYTHON)) == (True, True),
            f"the venv with tensorflow-cpu 2.20.0 at {TF_OLDER_PYTHON} (scripts/setup-test-env.sh)")
    candidates = [getattr(sys, "_base_executable", None), sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    system = next((python for python in dict.fromkeys(filter(None, candidates))
                   if _describe(python) == (False, True)), None)
    require(system is not None, f"TensorFlow in an interpreter that is no venv (tried {candidates})")
    boxes = {"plant-a": str(TF_OLDER_PYTHON), "plant-b": str(system)}
    # (a venv's python is a link to its base interpreter: venvs are told apart by their folder)
    if _describe(sys.executable) == (True, True) and Path(sys.prefix).resolve() != TF_OLDER_PYTHON.parents[1].resolve():
        boxes["plant-c"] = sys.executable
    return boxes


def _installed(python: str) -> str:
    listed = subprocess.run([python, "-c", LIST_PACKAGES], capture_output=True, text=True, timeout=120, check=True)
    return listed.stdout


def _ansible_interpreter() -> str:
    """The Python that Ansible's own modules run with on the hosts: Debian's when there is one, so that it is not
    the one checked (any Python 3.8+ does; discovery is not used, as it may pick a broken pyenv shim)."""
    debian = Path("/usr/bin/python3")
    return str(debian) if debian.exists() else getattr(sys, "_base_executable", sys.executable)


def _inventory(path: Path, key: Path, hosts: dict[str, tuple[str, int, str]], boxes: Path) -> Path:
    """One host per sshd: (address, port, its envcheck_python); each host's temporary directory made under
    boxes/<host>, where the test then finds nothing left."""
    lines = ["[factories]"]
    for name, (address, port, python) in hosts.items():
        (boxes / name).mkdir(parents=True)
        lines.append(f"{name} ansible_host={address} ansible_port={port} envcheck_python={python} "
                     f"envcheck_tmp_base={boxes / name}")
    lines += ["[factories:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={key}",
              "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
              f"ansible_python_interpreter={_ansible_interpreter()}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _play(tmp_path: Path, inventory: Path, *extra_vars: str) -> subprocess.CompletedProcess:
    """ansible-playbook from tmp_path; the controller's envcheck is this checkout's."""
    require(shutil.which("ansible-playbook") is not None, "ansible-core (pip install ansible-core)")
    controller = f"{sys.executable} -m envcheck"
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
                   "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    arguments = ["-e", f"envcheck_cli='{controller}'"]
    for variable in extra_vars:
        arguments += ["-e", variable]
    return subprocess.run(["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), *arguments], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=600, env=environment)


@pytest.fixture
def factory_hosts(tmp_path):
    """start({host: its envcheck_python}) -> the inventory of that many sshd on 127.0.0.2, .3…, stopped after the
    test."""
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    daemons: list[subprocess.Popen] = []

    def start(boxes: dict[str, str]) -> Path:
        hosts = {}
        for n, (name, python) in enumerate(boxes.items()):
            address = f"127.0.0.{2 + n}"
            daemon, port = start_sshd(tmp_path / f"sshd-{name}", address, "root", key.with_suffix(".pub"))
            daemons.append(daemon)
            hosts[name] = (address, port, python)
        return _inventory(tmp_path / "inventory.ini", key, hosts, tmp_path / "boxes")

    yield start
    for daemon in daemons:
        daemon.terminate()
        daemon.wait(timeout=30)


@pytest.fixture
def kit(tmp_path) -> Path:
    """The kit of the built-in golden, as headquarters builds it."""
    assert main(["kit", "build", "--out", str(tmp_path / "envcheck-kit.pyz")]) == ExitCode.OK
    return tmp_path / "envcheck-kit.pyz"


def _left_on_the_boxes(tmp_path: Path) -> list[str]:
    """Whatever the play or Ansible itself left in the hosts' temporary directories (boxes/<host>/…, and
    Ansible's remote temporary directory)."""
    folders = [*(tmp_path / "boxes").iterdir(), tmp_path / "ansible-remote"]
    return [str(path) for folder in folders if folder.exists() for path in folder.rglob("*")]


def test_the_playbook_runs_the_kit_with_each_hosts_own_python_and_installs_nothing(run_cli, tmp_path, kit,
                                                                                   factory_hosts):
    boxes = _box_interpreters()
    before = {name: _installed(python) for name, python in boxes.items()}
    played = _play(tmp_path, factory_hosts(boxes), "envcheck_kit=envcheck-kit.pyz",  # relative: to where it runs
                   f"envcheck_kit_sha256={hashlib.sha256(kit.read_bytes()).hexdigest().upper()}")
    assert played.returncode == 0, played.stdout[-4000:] + played.stderr[-2000:]
    assert {name: _installed(python) for name, python in boxes.items()} == before
    assert _left_on_the_boxes(tmp_path) == []
    assert sorted(path.name for path in (tmp_path / "captures").iterdir()) == [f"{name}.tar.gz" for name in boxes]

    (report,) = (tmp_path / "reports").glob("envcheck-*.json")
    verdicts = {target["site"]: target for target in json.loads(report.read_text())["targets"]}
    assert sorted(verdicts) == sorted(boxes)
    older = verdicts.pop("plant-a")  # TensorFlow 2.20 against the golden's 2.21: drift, named
    assert older["verdict"] == "FAIL", older["error"]
    assert {"path": "tensorflow.version", "golden": "2.21.0", "target": "2.20.0", "severity": "fail"} \
        in older["fingerprint_diff"]
    for site, target in verdicts.items():
        assert target["verdict"] in ("IDENTICAL", "PASS", "WARN"), (site, target["error"], target["fingerprint_diff"])
    assert "exit 1 — drift" in played.stdout  # compare's own word, printed by the play, not an Ansible failure

    code, out, _, _ = run_cli("review", str(tmp_path / "reports"))
    assert code == ExitCode.OK and all(site in out for site in boxes)


def test_a_box_without_tensorflow_still_sends_its_capture_and_a_kit_that_cannot_run_fails_that_host_alone(
        tmp_path, kit, factory_hosts):
    require(NO_TF_PYTHON.exists(), f"the venv without TensorFlow at {NO_TF_PYTHON} (scripts/setup-test-env.sh)")
    played = _play(tmp_path, factory_hosts({"plant-x": str(NO_TF_PYTHON), "plant-y": "/bin/false"}),
                   f"envcheck_kit={kit}")
    recap = played.stdout.split("PLAY RECAP")[-1]
    assert played.returncode != 0 and re.search(r"plant-x\s*:.* failed=0 ", recap) \
        and re.search(r"plant-y\s*:.* failed=1 ", recap), played.stdout[-3000:]
    assert _left_on_the_boxes(tmp_path) == []
    # The kit's exit 3 is a result: fetched and compared (the report says why), plant-y's exit 1 is not.
    assert [path.name for path in (tmp_path / "captures").iterdir()] == ["plant-x.tar.gz"]
    (report,) = (tmp_path / "reports").glob("envcheck-*.json")
    (target,) = json.loads(report.read_text())["targets"]
    assert (target["site"], target["verdict"]) == ("plant-x", "ERROR")
    assert target["error"]["kind"] == "tensorflow-not-importable"


def test_a_kit_that_is_not_the_one_built_is_not_run_and_nothing_is_left(tmp_path, kit, factory_hosts):
    played = _play(tmp_path, factory_hosts({"plant-a": "/bin/false"}), f"envcheck_kit={kit}",
                   f"envcheck_kit_sha256={'0' * 64}")
    assert played.returncode != 0
    assert f"not {'0' * 64}: not run" in played.stdout, played.stdout[-3000:]
    assert _left_on_the_boxes(tmp_path) == []
    assert not (tmp_path / "captures").exists() and not (tmp_path / "reports").exists()


def test_the_playbook_refuses_to_start_without_a_kit(tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[factories]\nplant-a ansible_host=127.0.0.2 ansible_port=9\n")
    played = _play(tmp_path, inventory)
    assert played.returncode != 0 and "pass -e envcheck_kit=PATH/envcheck-kit.pyz" in played.stdout, played.stdout
