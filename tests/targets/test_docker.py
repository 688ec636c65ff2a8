"""Docker image targets against a real daemon and real fixture images (fixtures/images/*).

In CI a missing daemon or image fails these tests; on a developer machine they are skipped with
the command that sets them up.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import KERNEL_OPS, docker_with_images, kill_quietly, make_tls, require, spawn_envcheck
from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir
from envcheck.model import Capture, TargetFailure
from envcheck.targets.base import UNDER_WAY

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PREFIX = "envcheck-fixture"
FIXTURES = ("reference", "onednn-off", "tf-older", "no-tf", "nonroot")


def _image(name: str) -> str:
    return f"docker:{PREFIX}/{name}"


@pytest.fixture(scope="session")
def docker_client():
    return docker_with_images(*(f"{PREFIX}/{name}" for name in FIXTURES))


@pytest.fixture(scope="session")
def reference_golden(docker_client, tmp_path_factory) -> Path:
    """A golden created from the reference image, as the issue's workflow does."""
    out = tmp_path_factory.mktemp("golden") / "reference"
    subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model", str(builtin_golden_dir() / "model"),
                    "--inputs", str(builtin_golden_dir() / "inputs.npz"), "--target", _image("reference"),
                    "--out", str(out), "--no-calibrate"], check=True, capture_output=True)
    return out


@pytest.fixture
def no_leftovers(docker_client, own_probes):
    """Every test leaves no probe container of its own run behind, whatever happened."""
    yield
    leftovers = own_probes(docker_client)
    assert leftovers == [], f"probe containers left behind: {[c.name for c in leftovers]}"


def _check(run_cli, golden: Path, *targets: str, extra=()):
    argv = ["check", "--golden", str(golden)]
    for target in targets:
        argv += ["--target", target]
    return run_cli(*argv, *extra)


@pytest.mark.parametrize("fixture", ["reference", "nonroot"])
def test_reference_and_nonroot_are_identical(run_cli, reference_golden, no_leftovers, fixture):
    # The non-root image records its layers all the same (a user that may write only its own folders).
    layers = ("--layers", "always") if fixture == "nonroot" else ()
    code, _, _, report = _check(run_cli, reference_golden, _image(fixture), extra=layers)
    target = report["targets"][0]
    assert code == ExitCode.OK and target["verdict"] == "IDENTICAL", target["fingerprint_diff"]
    if layers:  # the probe recorded every layer in the container
        assert target["localization"]["status"] == "identical"
    else:  # --layers auto: every output bitwise the golden's (made in this image), so nothing to localise
        assert target["localization"]["status"] == "unsupported"
        assert "every output bitwise equal to the golden's" in target["localization"]["reason"]
    assert target["target"]["image"]["id"].startswith("sha256:")
    assert target["target"]["daemon"]["version"]
    if fixture == "nonroot":  # a non-root USER and an entrypoint that is not Python
        assert target["target"]["container_user"] == "factory"
        assert target["fingerprint"]["host"]["uid"] == 10001


def test_onednn_off_image_warns_and_names_the_variable(run_cli, reference_golden, no_leftovers):
    code, _, _, report = _check(run_cli, reference_golden, _image("onednn-off"))
    target = report["targets"][0]
    assert code == ExitCode.OK and target["verdict"] == "WARN"
    # oneDNN is on by default only on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX: turning it off
    # changes kernels there (bitwise different, within the band), and nothing elsewhere.
    from envcheck.golden import load_golden
    was_on = load_golden(reference_golden).fingerprint["tensorflow"]["onednn_enabled"]
    assert all(o["status"] == ("noise" if was_on else "identical") for o in target["outputs"].values())
    assert any(d["path"] == "env.TF_ENABLE_ONEDNN_OPTS" and d["target"] == "0" for d in target["fingerprint_diff"])
    assert any("TF_ENABLE_ONEDNN_OPTS" in hint for hint in target["hints"])
    where = target["localization"]
    assert where["status"] == ("ok" if was_on else "identical"), where
    if was_on:  # the kernels oneDNN replaces: convolutions and matmuls
        assert where["origins"][0]["op"] in KERNEL_OPS and where["origins"][0]["key"] in where["summary"]


def test_older_tensorflow_image_fails_naming_the_version(run_cli, reference_golden, no_leftovers):
    code, out, _, report = _check(run_cli, reference_golden, _image("tf-older"))
    target = report["targets"][0]
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    version = next(d for d in target["fingerprint_diff"] if d["path"] == "tensorflow.version")
    assert version["severity"] == "fail" and version["target"].startswith("2.20")
    assert "tensorflow.version" in out
    # TensorFlow 2.20 records the same graph: localisation works across the two releases.
    where = target["localization"]
    assert where["status"] in ("ok", "identical") and where["coverage"]["matched"] == where["coverage"]["reference"]


@pytest.mark.parametrize("spec, extra, kind, says", [
    pytest.param(_image("no-tf"), (), "tensorflow-not-importable", "TensorFlow is not importable", id="no-tf"),
    pytest.param(f"docker:{PREFIX}/does-not-exist", (), "image-not-found", "never pulls", id="missing-image"),
    pytest.param(_image("reference"), ("--timeout", "1.5"), "timeout", "did not finish within 1.5 s", id="timeout"),
    pytest.param(_image("reference"), ("--memory", "48m"), "killed", "out of memory", id="oom"),
    pytest.param(_image("no-tf"), ("--image-python", "/usr/bin/python9"), "no-python", "/usr/bin/python9",
                 id="bad-image-python"),
    pytest.param(_image("reference"), ("--docker-host", "unix:///nonexistent/docker.sock"), "daemon-unreachable",
                 "cannot reach the Docker daemon", id="daemon-down"),
])
def test_failures_are_errors_with_plain_words(run_cli, reference_golden, no_leftovers, spec, extra, kind, says):
    code, _, err, report = _check(run_cli, reference_golden, spec, extra=extra)
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and report["targets"][0]["verdict"] == "ERROR"
    assert error["kind"] == kind and says in error["message"], error
    assert "Traceback" not in err


def test_image_without_python_is_named(run_cli, reference_golden, docker_client, no_leftovers, tmp_path):
    image, _ = docker_client.images.build(fileobj=_dockerfile(
        f"FROM {PREFIX}/base:bookworm\nRUN rm -f /usr/bin/python3* /usr/bin/python\n"), tag=f"{PREFIX}/no-python", rm=True)
    code, _, _, report = _check(run_cli, reference_golden, f"docker:{PREFIX}/no-python")
    assert code == ExitCode.UNDECIDED and report["targets"][0]["error"]["kind"] == "no-python"


def _dockerfile(text: str):
    import io
    return io.BytesIO(text.encode())


def test_probe_containers_have_no_network_and_no_privileges(docker_client, no_leftovers):
    from envcheck.targets.docker import DockerTarget

    options = DockerTarget(spec="x", image=f"{PREFIX}/nonroot")._run_options()
    options.update(entrypoint=["/bin/sh", "-c"], command=["grep CapEff /proc/self/status; ls /sys/class/net"])
    from envcheck.targets.docker import probe_labels
    output = docker_client.containers.run(f"{PREFIX}/nonroot", remove=True, labels=probe_labels(),
                                          **options).decode()
    assert "CapEff:\t0000000000000000" in output
    assert output.split()[-1] == "lo" and len(output.split()) == 3  # loopback only


def test_a_probe_says_when_it_is_under_way_so_the_background_imports_begin(reference_golden, no_leftovers,
                                                                            tmp_path):
    """check's imports for judging wait for the first started probe (cli._preload_verdict), up to 2 s."""
    from envcheck.targets.docker import DockerTarget

    UNDER_WAY.clear()
    missing = DockerTarget(spec="x", image=f"{PREFIX}/does-not-exist", latency_budget=0)
    assert isinstance(missing.run(reference_golden, tmp_path, timeout=60), TargetFailure)
    assert not UNDER_WAY.is_set()  # no probe started: the imports wait their 2 s at most
    target = DockerTarget(spec="x", image=f"{PREFIX}/reference", latency_budget=0, integrity="off")
    assert isinstance(target.run(reference_golden, tmp_path, timeout=300), Capture)
    assert UNDER_WAY.is_set()


def test_many_targets_in_one_run(run_cli, reference_golden, no_leftovers):
    specs = [_image(name) for name in FIXTURES] + [f"docker:{PREFIX}/does-not-exist"]
    code, _, _, report = _check(run_cli, reference_golden, *specs, extra=("--jobs", "2"))
    verdicts = {t["spec"]: t["verdict"] for t in report["targets"]}
    assert code == ExitCode.UNDECIDED
    assert [t["spec"] for t in report["targets"]] == specs
    assert verdicts == {_image("reference"): "IDENTICAL", _image("nonroot"): "IDENTICAL",
                        _image("onednn-off"): "WARN", _image("tf-older"): "FAIL", _image("no-tf"): "ERROR",
                        f"docker:{PREFIX}/does-not-exist": "ERROR"}


def test_image_capture_and_host_capture_of_the_same_environment(run_cli, reference_golden, needs_tensorflow,
                                                                monkeypatch):
    """The host runs the same TensorFlow build on the same CPU: the same bits, only Python/packages differ."""
    for name in [n for n in os.environ if n.startswith(("TF_", "ONEDNN_", "DNNL_"))]:
        monkeypatch.delenv(name)  # the image sets none of these: keep the host the same environment
    code, _, _, report = _check(run_cli, reference_golden, "host")
    target = report["targets"][0]
    assert all(o["status"] == "identical" for o in target["outputs"].values())
    assert not [d for d in target["fingerprint_diff"] if d["severity"] == "fail"]
    assert target["output_digest"] == _digest_of_golden(reference_golden)


def _digest_of_golden(golden: Path) -> str:
    from envcheck.compare.evaluate import output_digest
    from envcheck.golden import load_golden
    return output_digest(load_golden(golden).expected)


def test_golden_created_from_an_image_records_the_image_fingerprint(reference_golden):
    from envcheck.golden import load_golden
    fingerprint = load_golden(reference_golden).fingerprint
    assert fingerprint["host"]["in_container"] is True
    assert fingerprint["tensorflow"]["version"] == "2.21.0"


SECOND_TLS: dict = {}
"""The second daemon's TLS endpoint (set by the second_daemon fixture): url, files, stranger."""


@pytest.fixture(scope="module")
def second_daemon(docker_client, tmp_path_factory):
    """Another dockerd on this machine, with its own socket, data-root, pid file and bridge: a second site. It
    also listens on tcp://127.0.0.1 with --tlsverify (certificates made for the test): SECOND_TLS holds that
    URL, the client's (CA, cert, key), and a client certificate of another CA, which the daemon refuses."""
    require(shutil.which("dockerd") is not None and shutil.which("ip") is not None, "dockerd and ip")
    root = Path(tempfile_dir := tmp_path_factory.mktemp("site2"))
    tls, stranger = make_tls(root / "tls", "site2"), make_tls(root / "tls", "stranger")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        tls_port = free.getsockname()[1]
    bridge = f"envchk{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    unix_socket = root / "docker.sock"
    daemon = subprocess.Popen(["dockerd", "--host", f"unix://{unix_socket}", "--host", f"tcp://127.0.0.1:{tls_port}",
                               "--tlsverify", "--tlscacert", str(tls["ca"]), "--tlscert", str(tls["server_cert"]),
                               "--tlskey", str(tls["server_key"]), "--data-root", str(root / "data"),
                               "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"),
                               "--bridge", bridge, "--iptables=false", "--ip-masq=false"],
                              stdout=subprocess.DEVNULL, stderr=open(root / "dockerd.log", "wb"))
    try:
        import docker
        for _ in range(60):
            if unix_socket.exists():
                try:
                    client = docker.DockerClient(base_url=f"unix://{unix_socket}", timeout=600)
                    client.ping()
                    break
                except docker.errors.DockerException:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail(f"second dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}")
        # Ship the reference image to the second site the way a factory would receive it: save/load.
        client.images.load(docker_client.images.get(f"{PREFIX}/reference").save(named=True, chunk_size=1 << 20))
        SECOND_TLS.update(url=f"tcp://127.0.0.1:{tls_port}", files=(str(tls["ca"]), str(tls["cert"]), str(tls["key"])),
                          stranger=(str(tls["ca"]), str(stranger["cert"]), str(stranger["key"])))
        yield f"unix://{unix_socket}", client
        client.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        subprocess.run(["ip", "link", "delete", bridge], check=False)
        shutil.rmtree(tempfile_dir, ignore_errors=True)


def test_second_daemon_is_checked_as_another_site(run_cli, reference_golden, second_daemon, own_probes):
    url, client = second_daemon
    code, _, _, report = run_cli("check", "--golden", str(reference_golden), "--target", _image("reference"),
                                 "--docker-host", url, "--site", "factory-2")
    target = report["targets"][0]
    assert code == ExitCode.OK and target["verdict"] == "IDENTICAL" and target["site"] == "factory-2"
    assert target["target"]["daemon"]["host"] == url
    assert own_probes(client) == []


@pytest.mark.parametrize("signum, exit_code", [pytest.param(signal.SIGINT, 130, id="ctrl-c"),
                                               pytest.param(signal.SIGTERM, 143, id="ci-cancel")])
def test_signal_stops_and_removes_the_probe_container(reference_golden, docker_client, own_probes, tmp_path, signum,
                                                      exit_code):
    """Ctrl-C, or a CI system cancelling the job with SIGTERM: the container is stopped and removed."""
    child = spawn_envcheck("check", "--golden", str(reference_golden), "--target", _image("reference"),
                           "--timeout", "300", "--reports-dir", str(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while not own_probes(docker_client, stopped=False) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert own_probes(docker_client, stopped=False), "the probe container (of this run) never started"
        started = time.monotonic()
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
        assert child.returncode == exit_code and "interrupted" in err and "Traceback" not in err, err
        assert time.monotonic() - started < 20  # stopped, not waited out
        assert own_probes(docker_client) == []
        assert not list(tmp_path.glob("*.json"))  # nothing partial
    finally:
        kill_quietly(child.pid)
        for container in own_probes(docker_client):
            container.remove(force=True)


def _daemon_gives_gpus(client) -> bool:
    """The daemon's own answer, asked without envcheck: can a container of the base image get every GPU?"""
    import docker.errors
    import docker.types
    try:
        client.containers.run(f"{PREFIX}/base:bookworm", ["true"], remove=True, network_mode="none",
                              device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
    except docker.errors.APIError as error:
        assert "device driver" in str(error), error  # the refusal this test is about, nothing else
        return False
    return True


def test_gpus_are_given_or_refused_in_plain_words_as_the_daemon_decides(run_cli, reference_golden, docker_client,
                                                                        no_leftovers):
    """`--gpus all`: where the daemon (asked directly, not through envcheck) cannot give GPUs, a plain
    gpus-unavailable error naming the option; where it can, the probe sees them. envcheck's outcome never
    chooses which of the two is checked."""
    gives_gpus = _daemon_gives_gpus(docker_client)
    code, _, _, report = _check(run_cli, reference_golden, _image("reference"), extra=("--gpus", "all"))
    target = report["targets"][0]
    assert target["target"]["gpus_requested"] == "all"  # recorded whatever happens
    if gives_gpus:
        assert target["verdict"] != "ERROR" and target["fingerprint"]["gpu"]["gpus"], target.get("error")
    else:
        assert code == ExitCode.UNDECIDED and target["verdict"] == "ERROR"
        assert target["error"]["kind"] == "gpus-unavailable" and "--gpus all" in target["error"]["message"]


def latency_shown(folder: Path) -> Path:
    """A policy under which latency is shown, not judged: for tests of something else, on a CI machine whose load
    would move a judged latency."""
    (folder / "latency-shown.toml").write_text('[severity]\n"finding.latency-*" = "info"\n')
    return folder / "latency-shown.toml"


def fleet_toml(golden: Path, *sites: dict) -> str:
    """An inventory: `golden` for every site, each site a dict of its keys (name, docker_host, targets, labels,
    tls) written as TOML."""
    def value(item) -> str:
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{key} = {json.dumps(str(v))}" for key, v in item.items()) + " }"
        return json.dumps(item)

    return f"golden = {json.dumps(str(golden))}\n" + "".join(
        "[[site]]\n" + "".join(f"{key} = {value(item)}\n" for key, item in site.items()) for site in sites)


def test_a_fleet_run_checks_every_site_on_its_own_daemon_and_isolates_the_unreachable_one(
        run_cli, reference_golden, second_daemon, via_ssh, podman_endpoint, own_probes, tmp_path):
    """`envcheck fleet run` over four real endpoints, the local daemon, a second dockerd, an ssh endpoint (a
    real sshd) and Podman's Docker-compatible API, and a site whose daemon refuses: five reports, one folder
    each, the unreachable site an ERROR row naming it, the exit code the worst (3)."""
    url, client = second_daemon
    ssh_url, _, _ = via_ssh
    podman_url, podman = podman_endpoint
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()
    inventory = tmp_path / "fleet.toml"
    reference = _image("reference")
    inventory.write_text(fleet_toml(
        reference_golden,
        {"name": "beijing-1", "docker_host": "unix:///var/run/docker.sock", "targets": [reference, _image("onednn-off")],
         "labels": {"region": "north"}},
        {"name": "shenzhen-3", "docker_host": url, "targets": [reference]},
        {"name": "wuhan-2", "docker_host": f"tcp://127.0.0.1:{port}", "targets": [reference]},
        {"name": "edge-17", "docker_host": ssh_url, "targets": [reference]},
        {"name": "nanjing-podman", "docker_host": podman_url, "targets": [reference]}))
    reports = tmp_path / "reports"
    code, out, err, _ = run_cli("fleet", "run", str(inventory), "--reports-dir", str(reports), "--jobs", "5",
                                "--timeout", "120")
    assert code == ExitCode.UNDECIDED, out + err
    assert "wuhan-2" in out and "daemon-unreachable" in out and "Traceback" not in err
    by_site = {folder.name: json.loads(next(folder.glob("envcheck-*.json")).read_text())
               for folder in reports.iterdir() if not folder.name.startswith(".")}
    assert set(by_site) == {"beijing-1", "shenzhen-3", "wuhan-2", "edge-17", "nanjing-podman"}
    assert [t["verdict"] for t in by_site["nanjing-podman"]["targets"]] == ["IDENTICAL"]
    assert own_probes(podman) == []
    assert [t["verdict"] for t in by_site["shenzhen-3"]["targets"]] == ["IDENTICAL"]
    assert [t["verdict"] for t in by_site["edge-17"]["targets"]] == ["IDENTICAL"]
    assert by_site["beijing-1"]["targets"][0]["verdict"] == "IDENTICAL" and by_site["beijing-1"]["labels"] == {
        "region": "north"}
    assert by_site["wuhan-2"]["targets"][0]["error"]["kind"] == "daemon-unreachable"
    assert all(t["site"] == site for site, document in by_site.items() for t in document["targets"])
    assert own_probes(client) == []
    code, out, _, _ = run_cli("fleet", "status", "--reports-dir", str(reports))
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == ExitCode.OK and lines["wuhan-2"].split()[1] == "ERROR" and lines["shenzhen-3"].split()[1] == "IDENTICAL"


def test_a_tag_rebuilt_since_the_golden_is_a_finding_naming_both_images(run_cli, docker_client, tmp_path,
                                                                         no_leftovers):
    """The golden is made in an image under a tag; the tag then moves to another build (here: the onednn-off
    image, tagged over it). The check of that tag names both image ids."""
    moving = "envcheck-test/moving:1"
    reference, other = (docker_client.images.get(f"{PREFIX}/{name}") for name in ("reference", "onednn-off"))
    reference.tag(moving)
    try:
        golden = tmp_path / "golden"
        made = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                               str(builtin_golden_dir() / "model"), "--inputs", str(builtin_golden_dir() / "inputs.npz"),
                               "--target", f"docker:{moving}", "--out", str(golden), "--no-calibrate", "--no-layers"],
                              capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        assert json.loads((golden / "manifest.json").read_text())["reference_image"]["id"] == reference.id
        _, _, _, same = _check(run_cli, golden, f"docker:{moving}")
        assert "image-differs-from-golden" not in [f["code"] for f in same["targets"][0]["findings"]]
        other.tag(moving)
        _, _, _, report = _check(run_cli, golden, f"docker:{moving}")
        (finding,) = [f for f in report["targets"][0]["findings"] if f["code"] == "image-differs-from-golden"]
        assert other.id.removeprefix("sha256:")[:12] in finding["message"]
        assert reference.id.removeprefix("sha256:")[:12] in finding["message"]
        assert report["targets"][0]["verdict"] in ("WARN", "FAIL")
    finally:
        docker_client.images.remove(moving, noprune=True)


def test_an_ssh_site_is_checked_through_a_real_sshd(run_cli, reference_golden, via_ssh, no_leftovers):
    url, _, _ = via_ssh
    code, _, err, report = run_cli("check", "--golden", str(reference_golden), "--target", _image("reference"),
                                   "--docker-host", url, "--site", "edge-17")
    target = report["targets"][0]
    assert code == ExitCode.OK and target["verdict"] == "IDENTICAL", (err, target["error"])
    assert target["target"]["daemon"]["version"]


def test_a_refused_ssh_key_is_a_plain_error_naming_the_reason(run_cli, reference_golden, via_ssh, no_leftovers):
    _, refused, _ = via_ssh
    code, out, err, report = run_cli("check", "--golden", str(reference_golden), "--target", _image("reference"),
                                     "--docker-host", refused, "--timeout", "60")
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "daemon-unreachable", error
    assert "Permission denied" in error["message"] and "Traceback" not in err + out


def test_a_tcp_site_with_mutual_tls_is_checked_and_a_stranger_certificate_is_refused(run_cli, reference_golden,
                                                                                       second_daemon, tmp_path):
    """The second dockerd's tcp:// listener with --tlsverify: the inventory's client certificate gets in; one
    from another CA is an ERROR naming the TLS failure, without a traceback, and the other site still runs."""
    inventory = tmp_path / "fleet.toml"
    ca, cert, key = SECOND_TLS["files"]
    _, stranger_cert, stranger_key = SECOND_TLS["stranger"]
    inventory.write_text(fleet_toml(
        reference_golden,
        {"name": "plant-tls", "docker_host": SECOND_TLS["url"], "targets": [_image("reference")],
         "tls": {"ca": ca, "cert": cert, "key": key}},
        {"name": "plant-stranger", "docker_host": SECOND_TLS["url"], "targets": [_image("reference")],
         "tls": {"ca": ca, "cert": stranger_cert, "key": stranger_key}}))
    reports = tmp_path / "reports"
    code, out, err, _ = run_cli("fleet", "run", str(inventory), "--reports-dir", str(reports), "--timeout", "120")
    assert code == ExitCode.UNDECIDED and "Traceback" not in out + err
    by_site = {folder.name: json.loads(next(folder.glob("envcheck-*.json")).read_text())["targets"][0]
               for folder in reports.iterdir() if not folder.name.startswith(".")}
    assert by_site["plant-tls"]["verdict"] == "IDENTICAL", by_site["plant-tls"]["error"]
    refused = by_site["plant-stranger"]["error"]
    assert refused["kind"] == "daemon-unreachable" and ("certificate" in refused["message"].lower()
                                                         or "ssl" in refused["message"].lower()), refused


def test_the_cache_reuses_an_unchanged_image_and_never_a_rebuilt_tag(run_cli, reference_golden, docker_client,
                                                                     tmp_path, no_leftovers):
    """A second fleet run over the same image comes from the cache (the report says so, and when it was
    captured); the tag rebuilt (moved to the onednn-off image) is probed afresh and its drift seen: the cache
    never turns a changed image into a stale PASS. A damaged entry is probed afresh too."""
    moving = "envcheck-test/cached:1"
    docker_client.images.get(f"{PREFIX}/reference").tag(moving)
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(fleet_toml(reference_golden, {"name": "plant-1", "targets": [f"docker:{moving}"],
                                                        "policy": str(latency_shown(tmp_path))}))
    reports = tmp_path / "reports"

    def run() -> dict:
        code, out, err, _ = run_cli("fleet", "run", str(inventory), "--reports-dir", str(reports))
        assert "Traceback" not in err
        latest = sorted((reports / "plant-1").glob("envcheck-*.json"))[-1]
        return json.loads(latest.read_text())["targets"][0]

    try:
        cold = run()
        assert cold["verdict"] == "IDENTICAL" and "cache" not in cold["target"]
        warm = run()
        assert warm["target"]["cache"]["hit"] is True and warm["target"]["cache"]["captured"]
        assert (warm["verdict"], warm["output_digest"]) == (cold["verdict"], cold["output_digest"])
        docker_client.images.get(f"{PREFIX}/onednn-off").tag(moving)
        rebuilt = run()
        assert "cache" not in rebuilt["target"]
        assert any(d["path"] == "env.TF_ENABLE_ONEDNN_OPTS" for d in rebuilt["fingerprint_diff"])
        assert rebuilt["verdict"] == "WARN"
        (entry,) = [p for p in (reports / ".cache").iterdir()
                    if json.loads((p / "entry.json").read_text())["parts"]["image_id"] == rebuilt["target"]["image"]["id"]]
        (entry / "outputs.npz").write_bytes(b"tampered")
        assert "cache" not in run()["target"]  # the damaged entry is not used
    finally:
        docker_client.images.remove(moving, noprune=True)
