"""Helpers shared by tests: import them from here (`from helpers import …`); fixtures stay in conftest.py.

Infrastructure (TensorFlow, extra interpreters, Docker, optional Python modules) is real: when it is missing,
`require` (`require_module` for a module) skips locally but fails in CI (CI=true), so a green CI run means
everything really ran."""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from envcheck.golden import builtin_golden_dir

REPO = Path(__file__).resolve().parents[1]
FIXTURE_CACHE = Path(os.environ.get("ENVCHECK_FIXTURE_CACHE", Path.home() / ".cache" / "envcheck-fixtures"))
TF_OLDER_PYTHON = FIXTURE_CACHE / "venv-tf-older" / "bin" / "python"
NO_TF_PYTHON = FIXTURE_CACHE / "venv-no-tf" / "bin" / "python"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
KERNEL_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BatchMatMul", "Einsum"}
"""Ops whose kernels oneDNN replaces (the convolution and matmul families): where turning it off shows first."""


def require(condition: bool, what: str) -> None:
    """Skip on a developer's machine, fail loudly in CI, when infrastructure is missing."""
    if not condition:
        missing(what)


def missing(what: str) -> NoReturn:
    """The test cannot run without `what`: skipped on a developer's machine, a failure in CI."""
    message = f"missing test infrastructure: {what} (run scripts/setup-test-env.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_module(name: str) -> ModuleType:
    """The module `name`, imported; missing, it is infrastructure missing (`missing`). Never
    `pytest.importorskip`, which skips in CI too."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        missing(f"the Python module {name!r} ({error})")


def docker_with_images(*images: str):
    """A docker SDK client to a running daemon that has every one of `images`; without them the test fails
    loudly in CI and is skipped on a developer's machine (require). The caller closes the client."""
    docker = require_module("docker")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as error:
        require(False, f"a running Docker daemon ({error})")
    missing = [image for image in images if not client.images.list(name=image)]
    require(not missing, f"fixture images {missing} (python fixtures/images/build.py)")
    return client


@contextlib.contextmanager
def docker_leaving_nothing(*images: str):
    """`docker_with_images` for a module's tests, closed afterwards, asserting that they left no probe container."""
    client = docker_with_images(*images)
    try:
        yield client
        leftovers = probe_containers_left(client)
        assert leftovers == [], f"probe containers left behind: {leftovers}"
    finally:
        client.close()


def own_probes_filter() -> dict[str, list[str]]:
    """The Docker filter for this test run's probe containers only: another envcheck (another CI job) may share
    the daemon, and its containers are none of this run's business."""
    from envcheck.targets import PROBE_LABEL, RUN_LABEL, run_id

    return {"label": [PROBE_LABEL, f"{RUN_LABEL}={run_id()}"]}


def probe_containers_left(client) -> list[str]:
    """Names of this run's probe containers still there (envcheck removes every one it starts)."""
    return [c.name for c in client.containers.list(all=True, filters=own_probes_filter())]


def write_reports(folder: Path, reports: dict) -> Path:
    """Each report dict as NAME.json in `folder` (made if need be), which is returned."""
    import json

    folder.mkdir(exist_ok=True)
    for name, report in reports.items():
        (folder / f"{name}.json").write_text(json.dumps(report))
    return folder


def set_at(document, path: tuple, value) -> None:
    """Set (or, with value KeyError, delete) the entry at `path` (keys and list indexes) of a JSON document."""
    *parents, last = path
    for part in parents:
        document = document[part]
    if value is KeyError:
        del document[last]
    else:
        document[last] = value


def tensorflow_installed() -> bool:
    return subprocess.run([sys.executable, "-c", "import importlib.util as u, sys; "
                           "sys.exit(u.find_spec('tensorflow') is None)"]).returncode == 0


RECORDED_REPORTS = REPO / "fixtures" / "reports" / "recorded"


def make_golden_here(out: Path, calibrate: bool = False, **environment: str | None) -> Path:
    """The built-in model and inputs as a golden made on the machine under test (calibrated only when
    asked: calibration runs the model a few more times, in child processes), with `environment` set over
    this one's (a None unsets a variable).

    Tests that expect bitwise identity compare against this, never against the committed golden/default,
    which another CPU (AMD vs Intel, AVX2 vs AVX-512/AMX) computes a few ULP differently."""
    env = {name: value for name, value in {**os.environ, **environment}.items() if value is not None}
    result = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                             str(builtin_golden_dir() / "model"), "--inputs", str(builtin_golden_dir() / "inputs.npz"),
                             "--out", str(out), *([] if calibrate else ["--no-calibrate"])],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def restore_default_signals() -> None:
    # CI may run the suite as a background job, with SIGINT ignored; an ignored signal stays ignored
    # across exec, so the child would never see the Ctrl-C the test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn_envcheck(*argv: str, **options) -> subprocess.Popen:
    """`python -m envcheck ARGV` in a child whose SIGINT and SIGTERM have their default meaning."""
    return subprocess.Popen([sys.executable, "-m", "envcheck", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=restore_default_signals, **options)


def hanging_interpreter(directory: Path, seconds: int = 601) -> tuple[Path, Path]:
    """A fake `python` that writes its PID to a file and sleeps: (interpreter, pid file)."""
    pid_file = directory / "hang.pid"
    interpreter = directory / "python"
    interpreter.write_text(f"#!/bin/sh\necho $$ > {pid_file}\n"
                           f"exec {sys.executable} -c 'import time; time.sleep({seconds})'\n")
    interpreter.chmod(0o755)
    return interpreter, pid_file


def wait_for_pid(pid_file: Path, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        if text.isdigit():
            return int(text)
        time.sleep(0.1)
    return None


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def kill_quietly(*pids: int | None) -> None:
    """Leave nothing running, whatever the test's outcome: only the processes it started, by PID."""
    for pid in pids:
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def make_tls(folder: Path, name: str) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl (as `docker` docs
    describe for --tlsverify): {ca, server_cert, server_key, cert, key}, all PEM files in `folder`."""
    require(shutil.which("openssl") is not None, "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    files = {part: folder / f"{name}-{part}.pem" for part in ("ca", "ca_key", "server_cert", "server_key", "cert", "key")}

    def openssl(*arguments: str) -> None:
        subprocess.run(["openssl", *arguments], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
            "-keyout", str(files["ca_key"]), "-out", str(files["ca"]))
    for role, subject, usage in (("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                                 ("client", "/CN=envcheck", "extendedKeyUsage=clientAuth")):
        key, cert = (files["server_key"], files["server_cert"]) if role == "server" else (files["key"], files["cert"])
        request, extensions = folder / f"{name}-{role}.csr", folder / f"{name}-{role}.ext"
        extensions.write_text(usage + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(request))
        openssl("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca_key"]),
                "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert))
    return files


SSHD = Path("/usr/sbin/sshd")


def start_sshd(folder: Path, address: str, user: str, authorized_key: Path) -> tuple[subprocess.Popen, int]:
    """Debian's sshd on `address` (a loopback address) and a free port, key authentication only, `user` (root
    included) allowed with `authorized_key` alone; (process, port). The caller terminates it."""
    require(SSHD.exists() and shutil.which("ssh-keygen") is not None, "openssh-server (apt-get install openssh-server)")
    import socket as sockets

    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "host_key"
    if not host_key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    with sockets.socket() as free:
        free.bind((address, 0))
        port = free.getsockname()[1]
    config = folder / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress {address}\nHostKey {host_key}\nPidFile {folder / 'sshd.pid'}\n"
                      f"AuthorizedKeysFile {authorized_key}\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\n"
                      f"PermitRootLogin prohibit-password\nAllowUsers {user}\n"
                      "Subsystem sftp /usr/lib/openssh/sftp-server\n")  # how Ansible copies files
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    daemon = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=open(folder / "sshd.log", "wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sockets.socket() as probe:
            if probe.connect_ex((address, port)) == 0:
                return daemon, port
        time.sleep(0.2)
    daemon.terminate()
    pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
