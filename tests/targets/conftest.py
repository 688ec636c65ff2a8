"""Remote Docker endpoints made for real on this machine: an sshd on loopback with key authentication."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import own_probes_filter, require, start_sshd

@pytest.fixture(scope="session")
def ssh_endpoint(tmp_path_factory):
    """An edge box's ssh:// Docker endpoint: Debian's sshd on 127.0.0.1, key authentication only, a user in
    the docker group (so `docker system dial-stdio` reaches the daemon). Yields (url, refused_url, ssh_dir):
    `ssh://edge-ok:PORT` logs in with the authorised key; `ssh://edge-refused:PORT` offers a key it refuses.
    The hosts are named in an ssh config (ssh_dir/config), as an operator's ~/.ssh/config names them; an `ssh`
    on PATH that reads it (ssh_dir/bin) stands in for that file, so the test never touches the real one."""
    require(shutil.which("ssh") is not None and shutil.which("useradd") is not None,
            "openssh-server and openssh-client (apt-get install openssh-server)")
    root = tmp_path_factory.mktemp("ssh")
    user = f"envchk{os.getpid() % 100000}"
    # The user's home must be reachable by the user (sshd reads authorized_keys as them): not under pytest's
    # root-only temporary folder.
    home = Path(tempfile.mkdtemp(prefix="envcheck-ssh-home-"))
    home.chmod(0o755)
    # (`--password '*'`: no password, but not a locked account, which sshd without PAM refuses.)
    subprocess.run(["useradd", "--home-dir", str(home), "--no-create-home", "--groups", "docker", "--shell",
                    "/bin/sh", "--password", "*", user], check=True, capture_output=True)
    daemon = None
    try:
        for key in ("client", "stranger"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
        ssh_home = home / ".ssh"
        ssh_home.mkdir(mode=0o700)
        shutil.copy(root / "client.pub", ssh_home / "authorized_keys")
        subprocess.run(["chown", "-R", f"{user}:{user}", str(ssh_home)], check=True)
        daemon, port = start_sshd(root / "sshd", "127.0.0.1", user, ssh_home / "authorized_keys")
        client = root / "client-ssh"
        (client / "bin").mkdir(parents=True)
        common = (f"  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentitiesOnly yes\n"
                  "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n")
        (client / "config").write_text(f"Host edge-ok\n  IdentityFile {root / 'client'}\n{common}"
                                       f"Host edge-refused\n  IdentityFile {root / 'stranger'}\n{common}")
        wrapper = client / "bin" / "ssh"
        wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {client / 'config'} \"$@\"\n")
        wrapper.chmod(0o755)
        # The port in the URL: the docker SDK passes `-p 22` for an ssh:// URL without one.
        yield f"ssh://edge-ok:{port}", f"ssh://edge-refused:{port}", client
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=30)
        subprocess.run(["pkill", "-u", user], check=False)
        subprocess.run(["userdel", user], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def via_ssh(ssh_endpoint, monkeypatch):
    """The ssh endpoint's client configuration in effect for this test (PATH finds its `ssh` first)."""
    _, _, client = ssh_endpoint
    monkeypatch.setenv("PATH", f"{client / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return ssh_endpoint



@pytest.fixture(scope="session")
def podman_endpoint(tmp_path_factory):
    """Podman's Docker-compatible API (`podman system service`) on its own socket and storage, with the
    reference fixture image loaded into it (saved from Docker, as a factory would receive it). Its containers'
    rlimits are set within this machine's hard limits (containers.conf), as a box's own Podman would be."""
    require(shutil.which("podman") is not None, "podman (apt-get install podman)")
    import docker

    root = tmp_path_factory.mktemp("podman")
    config = root / "containers.conf"
    config.write_text('[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]\n')
    socket_path = root / "podman.sock"
    service = subprocess.Popen(["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "system",
                                "service", "--time=0", f"unix://{socket_path}"],
                               env={**os.environ, "CONTAINERS_CONF": str(config)},
                               stdout=subprocess.DEVNULL, stderr=open(root / "podman.log", "wb"))
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        client = docker.DockerClient(base_url=f"unix://{socket_path}", timeout=600)
        client.ping()
        local = docker.from_env(timeout=600)
        client.images.load(local.images.get("envcheck-fixture/reference").save(named=True, chunk_size=1 << 20))
        local.close()
        yield f"unix://{socket_path}", client
        client.close()
    finally:
        service.terminate()
        service.wait(timeout=60)
        subprocess.run(["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "system", "reset",
                        "--force"], capture_output=True, check=False)


@pytest.fixture(scope="session")
def own_probes():
    """`own_probes(client, stopped=True)`: the probe containers of THIS test session's run (envcheck.run = its
    ENVCHECK_RUN_ID, tests/conftest.py) on that daemon, stopped ones too unless stopped=False; another envcheck
    sharing the daemon is not counted."""
    def containers(client, stopped: bool = True) -> list:
        return client.containers.list(all=stopped, filters=own_probes_filter())
    return containers
