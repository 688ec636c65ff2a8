"""Fleets without a reachable Docker API (issue 15, item 5): contrib/ansible/envcheck.yml run for real with
ansible-playbook against two sshd instances on loopback addresses, each a "factory host": it installs envcheck
from this checkout's wheel, runs `envcheck check` there under the host's name and fetches the reports back,
which `envcheck review` then reads."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from envcheck.errors import ExitCode
from helpers import REPO, require, start_sshd

PLAYBOOK = REPO / "contrib" / "ansible" / "envcheck.yml"


def test_the_playbook_checks_two_hosts_and_fetches_their_reports_for_review(run_cli, tmp_path):
    require(shutil.which("ansible-playbook") is not None, "ansible-core (pip install ansible-core)")
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts = {}
    try:
        for name, address in (("plant-a", "127.0.0.2"), ("plant-b", "127.0.0.3")):
            hosts[name] = start_sshd(tmp_path / f"sshd-{name}", address, "root", key.with_suffix(".pub"))
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                                str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, check=False)
        assert built.returncode == 0, built.stderr
        (wheel,) = (tmp_path / "dist").glob("envcheck-*.whl")
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(
            "[factories]\n"
            + "".join(f"{name} ansible_host=127.0.0.{2 + n} ansible_port={port}\n"
                      for n, (name, (_, port)) in enumerate(hosts.items()))
            + f"[factories:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\n"
              "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
              f"ansible_python_interpreter={sys.executable}\nenvcheck_python={sys.executable}\n")
        fetched = tmp_path / "fetched"
        played = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), "-e", f"envcheck_wheel={wheel}",
             "-e", f"envcheck_home={tmp_path / 'hosts'}/{{{{ inventory_hostname }}}}", "-e", f"envcheck_fetch_to={fetched}",
             "-e", "envcheck_check_args='--latency-budget 0'"],
            capture_output=True, text=True, check=False, timeout=900,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
                 "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote")})
        assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-2000:]
    finally:
        for daemon, _ in hosts.values():
            daemon.terminate()
            daemon.wait(timeout=30)
    for name in hosts:
        (report,) = (fetched / name).glob("envcheck-*.json")
        document = json.loads(report.read_text())
        assert [target["site"] for target in document["targets"]] == [name]
        assert document["targets"][0]["verdict"] != "ERROR", document["targets"][0]["error"]
    code, out, _, _ = run_cli("review", str(fetched))
    assert code == ExitCode.OK and "plant-a" in out and "plant-b" in out
