"""Real servers for the endpoint tests, started by the tests on free ports and stopped at the end.

`start_kserve` runs KServe's ModelServer (tests/endpoint/kserve_app.py) with the interpreter of the kserve
venv that scripts/setup-endpoint-env.sh creates (kserve pins packages of its own; the venv sees the system
TensorFlow); missing, it skips locally and fails in CI. `start_stdlib` runs a tiny http.server script for what
KServe cannot be made to do on purpose (answer too slowly, die mid-run). S2's replica and load tests start
their servers here too.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import FIXTURE_CACHE, missing

HERE = Path(__file__).resolve().parent
KSERVE_VENV = Path(FIXTURE_CACHE) / "venv-kserve"
KSERVE_PYTHON = KSERVE_VENV / "bin" / "python"
READY_TIMEOUT_S = 180  # TensorFlow's import on two busy cores


@dataclass
class Server:
    """A server process of this test session, and where it listens."""

    process: subprocess.Popen
    port: int
    log: Path
    tls: dict[str, Path] | None = None
    """helpers.make_tls's files when the server speaks https."""

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self.tls else "http"

    def spec(self, protocol: str, model: str) -> str:
        """The envcheck target naming `model` on this server: protocol is `v2` or `tfserving`."""
        return f"{protocol}+{self.scheme}://127.0.0.1:{self.port}/{model}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's own log (for a failure message)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kserve_python() -> Path:
    """The kserve venv's interpreter; skips (fails in CI) when scripts/setup-endpoint-env.sh has not run."""
    if not KSERVE_PYTHON.exists():
        missing(f"the kserve venv {KSERVE_VENV} (run scripts/setup-endpoint-env.sh)")
    return KSERVE_PYTHON


def start_kserve(models: Sequence[dict], log_dir: Path, environment: dict[str, str] | None = None) -> Server:
    """KServe serving `models` (kserve_app.py's ENVCHECK_SERVE_MODELS entries) over REST, ready to answer."""
    port = free_port()
    log = log_dir / f"kserve-{port}.log"
    env = {**os.environ, **(environment or {}), "ENVCHECK_SERVE_MODELS": json.dumps(list(models)),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(kserve_python()), str(HERE / "kserve_app.py"), "--http_port", str(port), "--enable_grpc", "false",
               "--workers", "1"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=log_dir)
    server = Server(process=process, port=port, log=log)
    _wait_ready(server, ["/v2/health/ready"])  # the models load before the server listens
    return server


def start_stdlib(script: str, log_dir: Path, *arguments: str, tls: dict[str, Path] | None = None) -> Server:
    """tests/endpoint/<script> (a stdlib http.server) on a free port, ready to answer GET /v2; with `tls`
    (helpers.make_tls's files) over https, requiring the client certificate."""
    port = free_port()
    log = log_dir / f"{Path(script).stem}-{port}.log"
    env = dict(os.environ)
    if tls:
        env["ENVCHECK_STDLIB_TLS"] = f"{tls['ca']}:{tls['server_cert']}:{tls['server_key']}"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, str(HERE / script), str(port), *arguments], stdout=sink,
                                   stderr=subprocess.STDOUT, cwd=log_dir, env=env)
    server = Server(process=process, port=port, log=log, tls=tls)
    _wait_ready(server, ["/v2"])
    return server


def _wait_ready(server: Server, paths: list[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(paths)
    while pending:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited ({server.process.returncode}) before it was ready:\n"
                               f"{server.log_tail()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S} s:\n{server.log_tail()}")
        url = f"{server.scheme}://127.0.0.1:{server.port}{pending[0]}"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5, context=_client_tls(server)):
            pending.pop(0)
            continue
        time.sleep(0.5)


def _client_tls(server: Server) -> ssl.SSLContext | None:
    if not server.tls:
        return None
    context = ssl.create_default_context(cafile=str(server.tls["ca"]))
    context.load_cert_chain(str(server.tls["cert"]), str(server.tls["key"]))
    return context


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """The server, stopped when the block ends."""
    try:
        yield server
    finally:
        server.stop()
