"""Target `docker:IMAGE`: run the probe inside an image through the docker SDK.

No bind mounts, so the daemon may be remote (DOCKER_HOST or --docker-host: unix://, tcp://, ssh://):
the probe and the bundle go in with put_archive, the capture comes back with get_archive, and the
container is removed on every path out — success, failure, timeout and Ctrl-C. Probe containers
run without network, without privileges and with every capability dropped, and carry two labels:
envcheck.probe (what `envcheck gc` removes, targets/gc.py) and envcheck.run=<this run's id>.

With a capture cache, a remote daemon's machine is described by a tiny container of the image that reads its
CPU and NVIDIA driver (targets/cache.py); errors name the daemon as reports do, never through the SDK's text.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import posixpath
import re
import shlex
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.constants
import docker.errors
import docker.tls
import docker.types
import requests.exceptions

from envcheck.errors import Interrupted
from envcheck.files import sha256_file
from envcheck.model import Capture, TargetFailure
from envcheck.redact import redact_daemon_url
from envcheck.targets import PROBE_LABEL, RUN_LABEL, cache, integrity_cache, run_id
from envcheck.targets.base import CANCELLED, UNDER_WAY, probe_running
from envcheck.targets.exits import ChildExit, read_outcome
from envcheck.targets.host import DEFAULT_INTEGRITY
from envcheck.targets.probe_app import DEFAULT_LATENCY_BUDGET_S, PROBE_APP_NAME, probe_app_bytes, probe_arguments
from envcheck.targets.provenance import SignatureCheck

WORK_DIR = "/tmp/envcheck"
CAPTURE_DIR = f"{WORK_DIR}/capture"
NO_PYTHON_STATUS = 127
NO_PYTHON_MARKER = "envcheck: no python3 or python on PATH in this image"
CONTAINER_LABEL = PROBE_LABEL
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
LOCAL_SCHEMES = ("unix", "npipe")
FACTS_TIMEOUT_S = 60
FACTS_SEPARATOR = "@@envcheck-facts@@"
# Read with the shell's builtins only (an image may have no cat): the first CPU's block of /proc/cpuinfo, the
# NVIDIA kernel module's line, and the versioned userspace driver libraries the container sees (with --gpus,
# the container toolkit mounts the machine's own).
FACTS_SCRIPT = (
    'while IFS= read -r l; do [ -z "$l" ] && break; echo "$l"; done < /proc/cpuinfo; '
    f'echo {FACTS_SEPARATOR}; '
    '[ -r /proc/driver/nvidia/version ] && while IFS= read -r l; do echo "$l"; done < /proc/driver/nvidia/version; '
    f'echo {FACTS_SEPARATOR}; '
    f'for d in {" ".join(cache.DRIVER_LIB_DIRS)}; do for f in "$d"/libnvidia-ml.so.* "$d"/libcuda.so.*; do '
    '[ -e "$f" ] && echo "$f"; done; done; exit 0')
# Containers still running a probe, so that Ctrl-C in the main thread can stop them at once.
_live: set = set()
_live_lock = threading.Lock()
CLIENT_TIMEOUT_S = 120
STDERR_TAIL_LINES = 60


@dataclass(frozen=True)
class DockerTarget:
    """A Docker image: the probe runs in a fresh container without network or privileges, removed after."""

    spec: str
    image: str
    docker_host: str | None = None
    pull: bool = False
    memory: str | None = None
    gpus: str | None = None
    image_python: str | None = None
    cpus: float | None = None
    """CPU limit of the probe container (Docker's --cpus: a CFS quota), None for none."""
    latency_budget: float = DEFAULT_LATENCY_BUDGET_S
    """Seconds the probe spends timing batch-1 calls after the outputs (0: no latency measured)."""
    calibrate: bool = False
    """The probe also runs the calibration perturbations (a golden's reference target)."""
    layers: bool | None = None
    """Record the layer summaries: True (a golden's reference target), False (--no-layers), None (when the
    golden has a layer record)."""
    tflite: bool = False
    """Convert the model to TFLite and run it too (a golden's reference target, golden create --tflite)."""
    integrity: str = DEFAULT_INTEGRITY
    """Installed files the probe checks against their RECORD and dpkg: full, numerics or off (docs/integrity.md)."""
    tls: tuple[str, str, str] | None = None
    """(CA, client certificate, client key) files for a tcp:// daemon started with --tlsverify (mutual TLS)."""
    cache_dir: Path | None = None
    """Reuse a capture when nothing it depends on changed (targets/cache.py); None: always probe."""
    concurrent_probes: int = 1
    """Probes the run has going at once, its own and other sites' (targets.measured_alongside): the context
    the latency is measured in, part of the cache key."""
    signature: SignatureCheck | None = None
    """Verify with skopeo that a trusted key signed this image (--verify-signature, targets/provenance.py): outside
    the capture cache, every run."""

    def run(self, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
        """Probe the image; any failure (no image, no daemon, no Python, a crash) is a TargetFailure."""
        info: dict[str, Any] = {"kind": "docker", "image_ref": self.image, "gpus_requested": self.gpus,
                                "memory_limit": self.memory, "cpus_limit": self.cpus}

        def failure(kind: str, message: str) -> TargetFailure:
            return TargetFailure(spec=self.spec, kind=kind, message=message, target_info=info)

        # An ssh:// endpoint is tried with ssh itself first: a refused key or an unknown host is then said in
        # ssh's words, and no docker client is left with a dead ssh pipe to break at exit.
        refused = ssh_diagnosis(self.docker_host, seconds=min(timeout, 15.0))
        if refused:
            return failure("daemon-unreachable", f"cannot reach the Docker daemon at {self._daemon_name()}: {refused}")
        try:
            client = connect(self.docker_host, answer_within=timeout, tls=self.tls)
        except (requests.exceptions.RequestException, docker.errors.DockerException) as error:
            if _timed_out(error):
                return failure("daemon-timeout", f"the Docker daemon at {self._daemon_name()} accepted the connection "
                               f"but did not answer within {min(timeout, CLIENT_TIMEOUT_S):g} s")
            return failure("daemon-unreachable", f"cannot reach the Docker daemon at {self._daemon_name()}: "
                           f"{self._reason(error)}")
        try:
            info.update(daemon_identity(client, self.docker_host))
            image = self._image(client)
            if isinstance(image, TargetFailure):
                return image
            info.update(image_identity(image))
            if self.signature is not None:
                info["signature"] = self.signature.verify(self.image, image.id, info["image"]["repo_digests"], timeout)
            if self.cache_dir is None:
                return self._probe(client, image, Path(bundle_dir), Path(out_dir), timeout, info)
            return self._cached_probe(client, image, Path(bundle_dir), Path(out_dir), timeout, info)
        except requests.exceptions.Timeout as error:
            return failure("daemon-timeout", f"the Docker daemon at {self._daemon_name()} stopped answering: "
                           f"{self._reason(error)}")
        except (requests.exceptions.RequestException, docker.errors.DockerException) as error:
            return failure("docker-error", f"the Docker daemon at {self._daemon_name()} failed: {self._reason(error)}")
        finally:
            close_client(client)

    def _cached_probe(self, client, image, bundle_dir: Path, out_dir: Path, timeout: float,
                      info: dict) -> Capture | TargetFailure:
        """The cached capture when its key matches; else a probe, kept in the cache when it succeeded."""
        assert self.cache_dir is not None
        key = self._cache_key(client, image, bundle_dir, min(timeout, FACTS_TIMEOUT_S))
        if key is None:  # the machine's facts could not be read: nothing proves an entry still fits
            return self._probe(client, image, bundle_dir, out_dir, timeout, info)
        cached = cache.load(self.cache_dir, key, self.spec, info)
        if cached is not None:
            return cached
        known = set(info)
        outcome, load = self._measured_probe(client, image, bundle_dir, out_dir, timeout, info)
        if isinstance(outcome, Capture):
            # Kept under the load it was really measured at, which may exceed what the run declared.
            cache.store(self.cache_dir, dataclasses.replace(key, latency_context=self._latency_context(load)), out_dir,
                        probe_info={name: value for name, value in info.items() if name not in known})
        return outcome

    def _cache_key(self, client, image, bundle_dir: Path, facts_timeout: float) -> cache.CacheKey | None:
        """Everything a capture of this image depends on (targets/cache.py says why each); None when the
        facts of the machine that runs the container cannot be read."""
        endpoint = normalise_endpoint(self.docker_host, tls=self.tls is not None)
        if endpoint.partition("://")[0] in LOCAL_SCHEMES:
            machine: cache.MachineFacts | None = cache.local_machine()
        else:
            machine = self._remote_machine(client, image, facts_timeout)
        if machine is None:
            return None
        daemon = client.info()
        return cache.CacheKey(
            endpoint=endpoint, daemon_id=daemon.get("ID"), machine=machine,
            daemon={**{key: daemon.get(key) for key in ("Name", "KernelVersion", "OperatingSystem", "Architecture",
                                                        "NCPU", "MemTotal", "ServerVersion", "DefaultRuntime")},
                    "Runtimes": sorted(daemon.get("Runtimes") or {})},
            image_id=image.id, golden_sha256=sha256_file(bundle_dir / "manifest.json"),
            probe_sha256=hashlib.sha256(probe_app_bytes()).hexdigest(), run=self._run_options(),
            latency_context=self._latency_context(self.concurrent_probes))

    def _latency_context(self, concurrent_probes: int) -> dict[str, Any] | None:
        if not self.latency_budget:
            return None
        return {"concurrent_probes": max(concurrent_probes, self.concurrent_probes)}

    def _remote_machine(self, client, image, timeout: float) -> cache.MachineFacts | None:
        """The facts of the machine behind a remote daemon, read there by a tiny container of the image (with the
        probe's GPU request, so the toolkit shows the machine's driver libraries); None when it cannot run."""
        options = {key: value for key, value in self._run_options().items()
                   if key not in ("entrypoint", "command", "mem_limit", "memswap_limit", "nano_cpus")}
        try:
            container = client.containers.create(image.id, detach=True, labels=probe_labels(), entrypoint=["/bin/sh", "-c"],
                                                 command=[FACTS_SCRIPT], **options)
        except docker.errors.DockerException:
            return None
        with _live_lock:
            _live.add(container)
        try:
            if CANCELLED.is_set():
                raise Interrupted(signal.SIGINT)
            container.start()
            if container.wait(timeout=timeout)["StatusCode"] != 0:
                return None
            cpuinfo, driver, libraries = (container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
                                          .split(FACTS_SEPARATOR + "\n", 2) + ["", ""])[:3]
            return cache.machine_facts(cpuinfo, driver, libraries.split())
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return None
        finally:
            with _live_lock:
                _live.discard(container)
            with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
                container.remove(force=True)

    def _reason(self, error: BaseException) -> str:
        return describe_error(error, self.docker_host)

    def _daemon_name(self) -> str:
        # Messages reach shared reports: a remote daemon is named by its hashed address.
        return redact_daemon_url(self.docker_host) or "DOCKER_HOST / the default socket"

    def _image(self, client: docker.DockerClient):
        try:
            return client.images.get(self.image)
        except docker.errors.ImageNotFound:
            if not self.pull:
                return TargetFailure(spec=self.spec, kind="image-not-found", target_info={"image_ref": self.image},
                                     message=f"image {self.image} is not on the daemon at {self._daemon_name()} "
                                             "(envcheck never pulls unless --pull)")
        try:
            return client.images.pull(self.image)
        except docker.errors.DockerException as error:
            return TargetFailure(spec=self.spec, kind="image-not-found", target_info={"image_ref": self.image},
                                 message=f"image {self.image} is not present and pulling it failed: "
                                         f"{self._reason(error)}")

    def _probe(self, client, image, bundle_dir: Path, out_dir: Path, timeout: float, info: dict) -> Capture | TargetFailure:
        return self._measured_probe(client, image, bundle_dir, out_dir, timeout, info)[0]

    def _measured_probe(self, client, image, bundle_dir: Path, out_dir: Path, timeout: float,
                        info: dict) -> tuple[Capture | TargetFailure, int]:
        """The outcome, and the most probes this process ran at once meanwhile (its latency's context)."""
        with probe_running() as load:
            outcome = self._run_probe_container(client, image, bundle_dir, out_dir, timeout, info)
        return outcome, load.peak

    def _run_probe_container(self, client, image, bundle_dir: Path, out_dir: Path, timeout: float,
                             info: dict) -> Capture | TargetFailure:
        container = client.containers.create(image.id, detach=True, labels=probe_labels(), **self._run_options())
        info["container_user"] = image.attrs.get("Config", {}).get("User") or "root"
        with _live_lock:
            _live.add(container)
        try:
            if CANCELLED.is_set():  # created while the run was being cancelled: never start it
                raise Interrupted(signal.SIGINT)
            # The image's integrity digest table from its last probe: unchanged files are not hashed again.
            identity = f"docker\0{info.get('daemon', {}).get('name')}\0{image.id}"
            table = integrity_cache.table_to_hand_in(identity) if self.integrity != "off" else None
            container.put_archive("/tmp", probe_archive(bundle_dir, table))
            started = time.monotonic()
            try:
                container.start()
            except docker.errors.APIError as error:  # the runtime could not exec the entrypoint
                return self._start_failure(error, info)
            UNDER_WAY.set()
            timed_out, status = False, None
            try:
                status = container.wait(timeout=timeout)["StatusCode"]
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):  # the probe still runs
                timed_out = True
                container.kill()
            info["elapsed_s"] = round(time.monotonic() - started, 3)
            container.reload()
            stderr = container.logs(stdout=False, stderr=True, tail=STDERR_TAIL_LINES).decode("utf-8", "replace")
            if status == NO_PYTHON_STATUS and NO_PYTHON_MARKER in stderr:
                return TargetFailure(spec=self.spec, kind="no-python", exit_code=status, stderr_tail=stderr,
                                     target_info=info, message=f"image {self.image} has no python3 or python on PATH; "
                                     "name one with --image-python PATH")
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            fetch_capture(container, out_dir)
            if table is not None:
                integrity_cache.take_back(identity, out_dir)
            child = ChildExit(returncode=137 if oom and not timed_out else status, timed_out=timed_out,
                              timeout_s=timeout, stderr_tail=stderr)
            outcome = read_outcome(out_dir, self.spec, child, target_info=info)
            if oom and isinstance(outcome, TargetFailure) and outcome.kind == "killed":
                limit = f" of {self.memory}" if self.memory else ""
                stage = (outcome.stage or "probing").replace("-", " ")
                return dataclasses.replace(outcome, message=f"the container ran out of memory (OOM-killed at its "
                                                            f"limit{limit}) while {stage}")
            return outcome
        finally:
            with _live_lock:
                _live.discard(container)
            container.remove(force=True)

    def _start_failure(self, error: docker.errors.APIError, info: dict) -> TargetFailure:
        explanation = str(error.explanation or _first_line(error))
        if self.gpus and "device driver" in explanation:
            return TargetFailure(spec=self.spec, kind="gpus-unavailable", target_info=info,
                                 message=f"the daemon cannot give GPUs to containers (--gpus {self.gpus}): "
                                         f"{explanation}; is the NVIDIA container toolkit installed?")
        return TargetFailure(spec=self.spec, kind="no-python" if self.image_python else "container-start",
                             target_info=info, message=f"cannot start the probe in image {self.image}: {explanation}")

    def _run_options(self) -> dict[str, Any]:
        probe = [f"{WORK_DIR}/{PROBE_APP_NAME}", "--bundle", f"{WORK_DIR}/bundle", "--out", CAPTURE_DIR,
                 *probe_arguments(self.latency_budget, self.calibrate, self.layers, self.tflite),
                 "--integrity", self.integrity]
        if self.integrity != "off":  # handed in beside the capture folder, so that it never travels back
            probe += ["--hash-table", f"{WORK_DIR}/{integrity_cache.TABLE_IN}"]
        if self.image_python:
            entrypoint, command = [self.image_python], probe
        else:
            # NOTE: the image's own entrypoint is replaced; its user, workdir and environment are kept.
            args = " ".join(shlex.quote(a) for a in probe)
            script = (f'for p in python3 python; do if command -v "$p" >/dev/null 2>&1; then exec "$p" {args}; fi; done; '
                      f'echo {shlex.quote(NO_PYTHON_MARKER)} >&2; exit {NO_PYTHON_STATUS}')
            entrypoint, command = ["/bin/sh", "-c"], [script]
        options: dict[str, Any] = {
            "entrypoint": entrypoint, "command": command,
            "network_disabled": True, "network_mode": "none",
            "privileged": False, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "pids_limit": 4096,
        }
        if self.memory:
            options["mem_limit"] = self.memory
            options["memswap_limit"] = self.memory  # no swap: an over-limit probe is OOM-killed, not slowed
        if self.cpus:
            options["nano_cpus"] = round(self.cpus * 1e9)
        if self.gpus:
            count = -1 if self.gpus == "all" else int(self.gpus)
            options["device_requests"] = [docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])]
        return options


def probe_labels() -> dict[str, str]:
    """The labels of every container envcheck starts: a probe's, and this run's (cleanup and gc go by them)."""
    return {PROBE_LABEL: "1", RUN_LABEL: run_id()}


def normalise_endpoint(docker_host: str | None, tls: bool = False) -> str:
    """The daemon's address in one spelling: DOCKER_HOST or the default socket when none is named, the scheme
    and host lower case, tcp's default port written out, a socket's path normalised."""
    url = urllib.parse.urlsplit((docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET).strip())
    scheme = url.scheme.lower()
    if scheme in LOCAL_SCHEMES:
        return f"{scheme}://{posixpath.normpath(url.netloc + url.path)}"
    default_port = {"tcp": 2376 if tls else 2375, "ssh": 22, "http": 80, "https": 443}.get(scheme)
    try:
        port = url.port or default_port
    except ValueError:  # not a number: say it as written (connecting fails and says so)
        port = None
    user = f"{url.username}@" if url.username else ""
    return f"{scheme}://{user}{(url.hostname or '').lower()}" + (f":{port}" if port else "")


def describe_error(error: BaseException, docker_host: str | None) -> str:
    """What went wrong talking to the daemon, in plain words: the root cause (refused, does not resolve, TLS,
    timed out) rather than the SDK's text, which repeats the daemon's raw address inside a third-party repr
    (`HTTPConnectionPool(host=…, port=…)`)."""
    root = _root_cause(error)
    if isinstance(root, ssl.SSLError):
        said = root.reason or root.strerror or type(root).__name__
        return f"the TLS (SSL) handshake failed: {str(said).replace('_', ' ').lower()}"
    if isinstance(root, ConnectionRefusedError):
        return "connection refused (is the daemon running and listening there?)"
    if isinstance(root, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(root, TimeoutError):
        return "the connection timed out"
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    return _without_address(_first_line(error), docker_host)


def _root_cause(error: BaseException) -> BaseException | None:
    """The first operating-system error behind `error`: its causes, urllib3's `reason`, exceptions in args."""
    seen: set[int] = set()
    queue: list[BaseException] = [error]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and type(current).__module__ in ("builtins", "ssl", "socket"):
            return current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        queue += [item for item in linked if isinstance(item, BaseException)]
    return None


CONNECTION_POOL = re.compile(r"HTTPS?ConnectionPool\(host=[^)]*\)(: )?")


def _without_address(text: str, docker_host: str | None) -> str:
    """`text` without a connection pool's repr or the daemon's raw host (when nothing plainer is known)."""
    text = CONNECTION_POOL.sub("", text)
    url = urllib.parse.urlsplit(docker_host or "")
    for raw in filter(None, (url.netloc, url.hostname)):
        text = text.replace(raw, "…")
    return text


def cancel_containers() -> None:
    """Kill every running probe container (called on Ctrl-C); each run then removes its own."""
    with _live_lock:
        containers = list(_live)
    for container in containers:
        with contextlib.suppress(docker.errors.DockerException):  # already gone
            container.kill()


def connect(docker_host: str | None, answer_within: float = CLIENT_TIMEOUT_S,
            tls: tuple[str, str, str] | None = None) -> docker.DockerClient:
    """A client for `docker_host` (with `tls`: mutual TLS, the daemon's certificate verified against the CA), or
    for DOCKER_HOST / the default socket.

    The first call (ping) must answer within `answer_within` seconds, so a daemon that accepts the
    connection and then hangs costs no more than the target's own timeout; later calls get the
    ordinary client timeout (an image upload can be slow)."""
    ping_timeout = max(1, min(answer_within, CLIENT_TIMEOUT_S))
    if docker_host:
        client = _tls_client(docker_host, tls, ping_timeout) if tls else docker.DockerClient(
            base_url=docker_host, timeout=ping_timeout, use_ssh_client=docker_host.startswith("ssh://"))
    else:
        client = docker.from_env(timeout=ping_timeout)
    try:
        client.ping()
    except BaseException:
        close_client(client)
        raise
    client.api.timeout = CLIENT_TIMEOUT_S
    return client


def _tls_client(docker_host: str, tls: tuple[str, str, str], timeout: float) -> docker.DockerClient:
    """A client that verifies the daemon against the site's CA and shows its own certificate. requests lets
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's CA (its trust_env), so the client trusts no
    environment; and since the SDK asks the daemon's API version before that could be said, the version is
    asked first by a client of the oldest API."""
    secured = docker.tls.TLSConfig(client_cert=(tls[1], tls[2]), ca_cert=tls[0], verify=True)
    asking = docker.APIClient(base_url=docker_host, tls=secured, timeout=timeout,
                              version=docker.constants.MINIMUM_DOCKER_API_VERSION)
    asking.trust_env = False
    try:
        version = asking.version(api_version=False)["ApiVersion"]
    finally:
        asking.close()
    client = docker.DockerClient(base_url=docker_host, tls=secured, timeout=timeout, version=version)
    client.api.trust_env = False
    return client


def close_client(client: docker.DockerClient) -> None:
    """Close the client; a transport that cannot close cleanly (an ssh that already exited) is closed anyway."""
    with contextlib.suppress(Exception):
        client.close()


def _tolerate_dead_ssh() -> None:
    """The docker SDK's ssh socket writes to its ssh process when it closes, and raises BrokenPipeError when
    that process has already exited; urllib3 closes pooled connections again at interpreter exit, where the
    error would print as a traceback. Closing a socket whose ssh is gone is done: make it say nothing."""
    try:
        from docker.transport import sshconn
    except ImportError:  # without paramiko there is no ssh transport at all
        return
    original = sshconn.SSHSocket.close
    if getattr(original, "envcheck_tolerant", False):
        return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            original(self)

    close.envcheck_tolerant = True  # type: ignore[attr-defined]
    sshconn.SSHSocket.close = close


_tolerate_dead_ssh()


def ssh_diagnosis(docker_host: str | None, seconds: float = 15.0) -> str | None:
    """Why an ssh:// endpoint failed, in ssh's own words (the docker SDK only sees a broken pipe): a refused key,
    an unknown host, no `docker` there. None for other endpoints, or when ssh itself succeeds. The user and host
    are left out: the message reaches shared reports."""
    if not docker_host or not docker_host.startswith("ssh://"):
        return None
    url = urllib.parse.urlparse(docker_host)
    command = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(seconds)}"]
    command += ["-l", url.username] if url.username else []
    command += ["-p", str(url.port)] if url.port else []
    command += ["--", url.hostname or "", "docker version --format '{{.Server.Version}}'"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 5, stdin=subprocess.DEVNULL,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"ssh could not be run: {error}"
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == 0 or not lines:
        return None
    said = re.sub(r"^\S+@\S+: ", "", lines[-1])
    for name in filter(None, (url.hostname, url.username)):
        said = said.replace(name, "…")
    return f"ssh failed: {said}"


def daemon_identity(client: docker.DockerClient, docker_host: str | None) -> dict[str, Any]:
    """The daemon, seen from outside: its address, version and the name of the machine it runs on
    (a container's own hostname is its id, new every run; the review groups a site's runs by this)."""
    version = client.version()
    return {"daemon": {"host": docker_host or "default", "name": client.info().get("Name"),
                       "version": version.get("Version"), "api_version": version.get("ApiVersion"),
                       "os": version.get("Os"), "arch": version.get("Arch")}}


def image_identity(image) -> dict[str, Any]:
    """What exactly was checked, seen from outside the container."""
    attrs = image.attrs
    return {"image": {"id": image.id, "tags": sorted(image.tags), "repo_digests": sorted(attrs.get("RepoDigests") or []),
                      "labels": dict(sorted((image.labels or {}).items())), "created": attrs.get("Created"),
                      "architecture": attrs.get("Architecture"), "os": attrs.get("Os"),
                      "variant": attrs.get("Variant")}}


def probe_archive(bundle_dir: Path, hash_table: bytes | None = None) -> bytes:
    """A tar of envcheck/{probe.pyz, bundle/model/…, bundle/inputs.npz, bundle/manifest.json, bundle/model.tflite,
    capture/} to unpack under /tmp (the probe reads the golden's batch size from the manifest), and beside them the
    integrity digest table handed in (`hash_table`, targets/integrity_cache.py; outside capture/, which comes back).

    Owned by root and world-readable; capture/ is world-writable (sticky), so the probe can write it
    whatever user the image runs as.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        def add_dir(name: str, mode: int) -> None:
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, mode, int(time.time())
            archive.addfile(entry)

        def add_file(name: str, path: Path) -> None:
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode, entry.mtime = path.stat().st_size, 0o644, int(time.time())
            with open(path, "rb") as stream:
                archive.addfile(entry, stream)

        def add_bytes(name: str, data: bytes) -> None:
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode, entry.mtime = len(data), 0o644, int(time.time())
            archive.addfile(entry, io.BytesIO(data))

        for directory, mode in (("envcheck", 0o755), ("envcheck/bundle", 0o755), ("envcheck/capture", 0o1777)):
            add_dir(directory, mode)
        add_bytes(f"envcheck/{PROBE_APP_NAME}", probe_app_bytes())
        if hash_table is not None:
            add_bytes(f"envcheck/{integrity_cache.TABLE_IN}", hash_table)
        add_file("envcheck/bundle/inputs.npz", bundle_dir / "inputs.npz")
        for optional in ("manifest.json", "model.tflite"):  # the batch size and layers; the edge model
            if (bundle_dir / optional).is_file():
                add_file(f"envcheck/bundle/{optional}", bundle_dir / optional)
        for path in sorted((bundle_dir / "model").rglob("*")):
            name = f"envcheck/bundle/{path.relative_to(bundle_dir).as_posix()}"
            add_dir(name, 0o755) if path.is_dir() else add_file(name, path)
    return buffer.getvalue()


def fetch_capture(container, out_dir: Path) -> None:
    """Copy the capture directory out of the container; nothing there is fine (read_outcome says so)."""
    try:
        stream, _ = container.get_archive(CAPTURE_DIR)
    except docker.errors.NotFound:
        return
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            name = Path(member.name)
            if member.isfile() and len(name.parts) == 2 and name.parts[0] == "capture":
                source = archive.extractfile(member)
                if source is not None:
                    (Path(out_dir) / name.name).write_bytes(source.read())


def _timed_out(error: BaseException | None) -> bool:
    """True when a timeout is anywhere in the chain (the SDK wraps the version probe's ReadTimeout)."""
    while error is not None:
        if isinstance(error, requests.exceptions.Timeout):
            return True
        error = error.__cause__ or error.__context__
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
