"""Debian's nginx as a round-robin load balancer in front of model servers started by the tests.

Everything nginx writes (its configuration, pid, error log, temporary folders) lives in a folder the caller
gives, on a free loopback port; nothing under /etc, /var or /run is touched, so it runs beside a system nginx
and as any user. Each answer carries `X-Replica: <upstream host:port>` (nginx's `$upstream_addr`), the header
the replica check's `--replica-header` names.
"""
from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from helpers import require
from servers import free_port

NGINX = "/usr/sbin/nginx"
REPLICA_HEADER = "X-Replica"
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
START_TIMEOUT_S = 20

CONFIG = """\
{user}daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp_paths}
    client_max_body_size 256m;
    upstream replicas {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_read_timeout 300s;
            # A replica that fails is an error of this request, never hidden by a retry on another replica.
            proxy_next_upstream off;
            add_header {header} $upstream_addr always;
        }}
    }}
}}
"""


def nginx_config(folder: Path, port: int, upstreams: Sequence[tuple[int, int]]) -> str:
    """nginx.conf for a balancer on `port` over `upstreams` ((port, weight) each, on 127.0.0.1). With weights,
    nginx's smooth weighted round robin is deterministic: weights 2 and 1 answer A, B, A, A, B, A, …"""
    temp_paths = "\n".join(f"    {name}_temp_path {folder}/{name};" for name in TEMP_FOLDERS)
    servers = "\n".join(f"        server 127.0.0.1:{upstream} weight={weight};" for upstream, weight in upstreams)
    return CONFIG.format(user=_worker_user(), folder=folder, temp_paths=temp_paths, servers=servers, port=port,
                         header=REPLICA_HEADER)


def _worker_user() -> str:
    """As root, nginx's worker would switch to `nobody`, which may not enter the test's folder (pytest's tmp is
    private): it stays the user that runs the tests. As anyone else it runs as that user anyway."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"


@contextlib.contextmanager
def load_balancer(folder: Path, upstreams: Sequence[tuple[int, int]]) -> Iterator[int]:
    """nginx balancing round robin over `upstreams` ((port, weight) on 127.0.0.1) while the block runs; yields
    its port. Stopped (SIGTERM to the master: its worker goes too) at the end."""
    require(shutil.which(NGINX) is not None or Path(NGINX).exists(), "nginx (apt-get install nginx)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in TEMP_FOLDERS:
        (folder / name).mkdir(exist_ok=True)
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(nginx_config(folder, port, upstreams))
    with open(folder / "stderr.log", "wb") as stderr:
        # -e: the error log from the first line on (nginx otherwise opens /var/log/nginx/error.log first).
        server = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")],
                                  stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    try:
        _wait_listening(server, port, folder)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_listening(server: subprocess.Popen, port: int, folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    logs = "".join(path.read_text(errors="replace")[-1500:] for path in (folder / "stderr.log", folder / "error.log")
                   if path.exists())
    if server.poll() is None:
        server.kill()
    server.wait()
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} (exit {server.returncode}): {logs}")
