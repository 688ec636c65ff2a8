"""The kit on Kubernetes: `envcheck kit k8s` prints manifests that the Kubernetes OpenAPI schema accepts (strictly:
no unknown field) and that run the kit unprivileged in the production image; the kit's `--out log:` frames its
capture so that `envcheck kit collect` takes it back out of a log, and refuses a truncated, damaged, doubled or
missing one (exit 3, one line); the printed Pod runs under `podman kube play` with the reference image and its
capture compares as `envcheck check --target docker:…` judges that image.

No Kubernetes cluster runs here: the Job and DaemonSet are validated against the schema (kubernetes-validate),
the Pod is also run for real by Podman's implementation of the Kubernetes API."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from helpers import NO_TF_PYTHON, require, require_module

from envcheck.cli import main
from envcheck.errors import ExitCode
from envcheck.kit_collect import _BEGIN, _END
from envcheck.kit_collect import LOG_FRAME_VERSION as collected_version
from envcheck.kit_k8s import HOLD_OPEN, MAX_CONFIGMAP_BYTES

from .conftest import build_kit, golden_made_in, run_kit
from .test_build import _runtime_constant

KUBERNETES_VERSION = "1.30"
"""The schema the manifests are held to (kubernetes-validate ships one per Kubernetes release)."""
IMAGE = "factory/vision:1.4"


def _manifests(capsys, *argv: str) -> list[dict]:
    """`envcheck kit k8s ARGV`'s documents (a YAML stream of JSON documents)."""
    assert main(["kit", "k8s", *argv]) == ExitCode.OK
    yaml = require_module("yaml")
    return list(yaml.safe_load_all(capsys.readouterr().out))


def _by_kind(documents: list[dict]) -> dict[str, dict]:
    return {document["kind"]: document for document in documents}


def _pod_spec(workload: dict) -> dict:
    return workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]


# ---------------------------------------------------------------------------------------------- manifests


@pytest.mark.parametrize("kind, workload", [("job", "Job"), ("daemonset", "DaemonSet"), ("pod", "Pod")])
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(capsys, kind, workload):
    validator = require_module("kubernetes_validate")
    documents = _manifests(capsys, "--image", IMAGE, "--kind", kind, "--nodes", "pool=vision",
                           "--nodes", "nvidia.com/gpu.present=true", "--gpus", "2", "--site", "shenzhen-3")
    assert [d["kind"] for d in documents] == ["ConfigMap", "NetworkPolicy", workload]
    for document in documents:
        validator.validate(document, KUBERNETES_VERSION, strict=True)  # raises on any error or unknown field


def test_the_schema_check_would_catch_a_misspelt_field(capsys):
    """The validation above is not vacuous: a field Kubernetes does not know fails it."""
    validator = require_module("kubernetes_validate")
    job = _by_kind(_manifests(capsys, "--image", IMAGE))["Job"]
    _pod_spec(job)["containers"][0]["securityContxt"] = {}
    with pytest.raises(validator.ValidationError):
        validator.validate(job, KUBERNETES_VERSION, strict=True)


def test_the_pod_runs_the_image_unchanged_unprivileged_and_gets_the_kit_from_the_configmap(capsys, tmp_path):
    kit = build_kit(tmp_path / "kit.pyz", "--golden", "builtin:edge")
    capsys.readouterr()
    documents = _by_kind(_manifests(capsys, "--image", IMAGE, "--kit", str(kit), "--site", "line-7"))
    config_map, job = documents["ConfigMap"], documents["Job"]
    assert base64.b64decode(config_map["binaryData"]["envcheck-kit.pyz"]) == kit.read_bytes()
    assert config_map["immutable"] is True
    pod = _pod_spec(job)
    (container,) = pod["containers"]
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["python3", "/envcheck-kit/envcheck-kit.pyz", "--out", "log:", "--site", "line-7"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert {"name": "TMPDIR", "value": "/tmp"} in container["env"]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert mounts["/envcheck-kit"]["readOnly"] is True
    assert volumes[mounts["/envcheck-kit"]["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert "nodeSelector" not in pod and "resources" not in container
    # The NetworkPolicy selects exactly the kit's pods and allows nothing in or out.
    policy = documents["NetworkPolicy"]["spec"]
    assert policy == {"podSelector": {"matchLabels": job["spec"]["template"]["metadata"]["labels"]},
                      "policyTypes": ["Ingress", "Egress"]}


def test_gpus_nodes_and_a_daemonset_that_names_each_node(capsys):
    daemonset = _by_kind(_manifests(capsys, "--image", IMAGE, "--kind", "daemonset", "--nodes",
                                    "pool=vision,zone=b", "--gpus", "1", "--site", "cost $(5)",
                                    "--python", "/opt/venv/bin/python"))["DaemonSet"]
    pod = _pod_spec(daemonset)
    (container,) = pod["containers"]
    assert pod["nodeSelector"] == {"pool": "vision", "zone": "b"}
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert pod["restartPolicy"] == "Always"
    # The site's own `$` is escaped from the kubelet's $(VAR) expansion; the node's name is expanded.
    assert container["command"][0] == "/opt/venv/bin/python"
    assert container["command"][-2:] == ["--site", "cost $$(5)/$(NODE_NAME)"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]


def test_the_daemonset_container_stays_running_after_the_kit_and_ends_at_once_on_sigterm(tmp_path):
    """A DaemonSet restarts a container that exits (and would run the kit again): after the kit, it waits."""
    fake_kit = tmp_path / "kit.py"
    fake_kit.write_text("import sys; print('kit ran', sys.argv[1:]); sys.exit(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(fake_kit), "--out", "log:"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        assert holder.poll() is None, holder.communicate()
    finally:
        holder.send_signal(signal.SIGTERM)
        out, err = holder.communicate(timeout=10)
    assert holder.returncode == 0
    assert "kit ran ['--out', 'log:']" in out and "envcheck kit exited 3" in err


def test_a_kit_past_what_a_configmap_holds_is_refused_in_one_line(capsys, tmp_path):
    big = tmp_path / "big-kit.pyz"
    with zipfile.ZipFile(big, "w") as archive:
        archive.writestr("__main__.py", "")
        archive.writestr("kit.json", "{}")
        archive.writestr("golden/model.bin", os.urandom(MAX_CONFIGMAP_BYTES))
    assert main(["kit", "k8s", "--image", IMAGE, "--kit", str(big)]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "past the 1024 KiB a ConfigMap may hold" in err and "docs/kit-kubernetes.md" in err


@pytest.mark.parametrize("argv, words", [
    pytest.param(["--nodes", "pool"], "expected KEY=VALUE", id="selector-without-value"),
    pytest.param(["--nodes", "pool=a b"], "expected KEY=VALUE", id="selector-value-with-space"),
    pytest.param(["--gpus", "0"], "--gpus", id="zero-gpus"),
    pytest.param(["--kind", "deployment"], "invalid choice", id="unknown-kind"),
    pytest.param(["--golden", "builtin:edge", "--kit", "x.pyz"], "give one", id="kit-and-golden"),
    pytest.param(["--kit", "nowhere.pyz"], "nowhere.pyz", id="kit-missing"),
    pytest.param(["--kit", __file__], "not an envcheck kit", id="not-a-kit"),
])
def test_bad_k8s_options_are_one_line_usage_errors(capsys, argv, words):
    assert _exit_code(["kit", "k8s", "--image", IMAGE, *argv]) == ExitCode.USAGE
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and words in err, err


def _exit_code(argv: list[str]) -> int:
    """main's exit code, argparse's own (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


# ------------------------------------------------------------------------------------ the log and collect


def test_the_log_markers_are_the_kits_own():
    """The host never imports the kit's runtime; the markers it parses are the ones the runtime writes."""
    version = _runtime_constant("kit_capture.py", "LOG_FRAME_VERSION")
    begin = _runtime_constant("kit_capture.py", "LOG_BEGIN") % (version, 12, "0" * 64)
    assert _BEGIN.search("[pod/x/envcheck-kit] " + begin) and _END.fullmatch(
        _runtime_constant("kit_capture.py", "LOG_END"))
    assert version == collected_version


@pytest.fixture(scope="module")
def framed_log(kit, tmp_path_factory) -> str:
    """What `kubectl logs` gives of a kit run with --out log: (stdout and stderr together) on a box without
    TensorFlow: a real frame around an ERROR capture (no TensorFlow needed here)."""
    require(NO_TF_PYTHON.exists(), f"an interpreter without TensorFlow ({NO_TF_PYTHON})")
    cwd = tmp_path_factory.mktemp("box")
    ran = subprocess.run([str(NO_TF_PYTHON), str(kit), "--out", "log:", "--site", "line-7"], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert ran.returncode == ExitCode.UNDECIDED, ran.stdout[-2000:]
    assert list(cwd.iterdir()) == []  # nothing written but the log
    return ran.stdout.decode()


def _collect(tmp_path, capsys, log: str) -> tuple[int, str, str, Path]:
    (tmp_path / "pod.log").write_text(log)
    out = tmp_path / "capture.tar.gz"
    code = main(["kit", "collect", str(tmp_path / "pod.log"), "--out", str(out)])
    printed, err = capsys.readouterr()
    return code, printed, err, out


def test_a_collected_log_compares_like_the_capture_the_kit_would_have_written(run_cli, framed_log, tmp_path, capsys):
    assert "envcheck kit collect capture.log --out capture.tar.gz && envcheck compare capture.tar.gz" in framed_log
    code, printed, _, out = _collect(tmp_path, capsys, framed_log)
    assert code == ExitCode.OK and f"envcheck compare {out}" in printed
    code, _, _, report = run_cli("compare", str(out))
    (target,) = report["targets"]
    assert (code, target["verdict"], target["error"]["kind"]) == (ExitCode.UNDECIDED, "ERROR",
                                                                 "tensorflow-not-importable")
    assert target["site"] == "line-7"


def test_collect_reads_kubectl_prefixes_timestamps_and_stdin(framed_log, tmp_path, capsys, monkeypatch):
    direct_code, _, _, direct = _collect(tmp_path, capsys, framed_log)
    prefixed = "".join(f"[pod/envcheck-kit-abc/envcheck-kit] 2026-12-07T10:00:{n % 60:02d}.123456789Z {line}\r\n"
                       for n, line in enumerate(framed_log.splitlines()))
    monkeypatch.setattr(sys, "stdin", io.StringIO(prefixed))
    out = tmp_path / "from-stdin.tar.gz"
    assert main(["kit", "collect", "-", "--out", str(out)]) == ExitCode.OK == direct_code
    assert out.read_bytes() == direct.read_bytes()


def _frame_lines(log: str) -> tuple[list[str], int, int]:
    lines = log.splitlines()
    begin = next(i for i, line in enumerate(lines) if _BEGIN.search(line))
    end = next(i for i, line in enumerate(lines) if _END.search(line))
    return lines, begin, end


def _damaged(log: str, how: str) -> str:
    lines, begin, end = _frame_lines(log)
    middle = (begin + end) // 2
    if how == "truncated":
        return "\n".join(lines[:middle]) + "\n"
    if how == "line-lost":
        return "\n".join(lines[:middle] + lines[middle + 1:]) + "\n"
    if how == "byte-changed":
        line = lines[middle]
        lines[middle] = line[:10] + ("A" if line[10] != "A" else "B") + line[11:]
        return "\n".join(lines) + "\n"
    if how.startswith("foreign-line"):  # another writer's line inside the frame: its last word may look like base64
        foreign = "W1207 warning: something happened" + ("!" if how.endswith("punctuation") else "")
        return "\n".join(lines[:middle] + [foreign] + lines[middle:]) + "\n"
    if how == "two-captures":
        return log + log
    if how == "no-capture":
        return "\n".join(lines[:begin] + lines[end + 1:]) + "\n"
    raise AssertionError(how)


@pytest.mark.parametrize("how, words", [
    ("truncated", "cut short"), ("line-lost", "damaged"), ("byte-changed", "damaged"),
    ("foreign-line", "damaged"), ("foreign-line-ending-in-punctuation", "not base64"), ("two-captures", "2 captures"), ("no-capture", "no envcheck capture"),
])
def test_a_truncated_or_damaged_log_is_refused_in_one_line_and_nothing_is_written(framed_log, tmp_path, capsys,
                                                                                   how, words):
    code, printed, err, out = _collect(tmp_path, capsys, _damaged(framed_log, how))
    assert code == ExitCode.UNDECIDED
    assert printed == "" and len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_collect_of_a_missing_log_is_a_usage_error(tmp_path, capsys):
    assert main(["kit", "collect", str(tmp_path / "nowhere.log")]) == ExitCode.USAGE
    assert "nowhere.log" in capsys.readouterr().err


def test_the_kit_keeps_streaming_binary_with_out_dash(kit, tmp_path):
    """--out log: is a new value; --out - still writes the tar.gz's bytes (gzip magic first)."""
    require(NO_TF_PYTHON.exists(), f"an interpreter without TensorFlow ({NO_TF_PYTHON})")
    ran = run_kit(kit, "--out", "-", python=str(NO_TF_PYTHON), cwd=tmp_path)
    assert ran.returncode == ExitCode.UNDECIDED and ran.stdout[:2] == b"\x1f\x8b"


# ----------------------------------------------------------------------------------- podman kube play


PODMAN_IMAGE = "envcheck-fixture/reference"


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """`podman` with its own storage holding the reference image (saved from Docker, as a cluster's registry
    would hold it), its containers' rlimits within this machine's hard limits (containers.conf: without it the
    pod's infra container cannot start here), and Debian's catatonit for the infra container's pause image."""
    require(shutil.which("podman") is not None, "podman (apt-get install podman)")
    require(shutil.which("catatonit") is not None, "catatonit, podman's pause for kube play (apt-get install catatonit)")
    require(shutil.which("docker") is not None, "docker with the fixture images")
    root = tmp_path_factory.mktemp("podman")
    config = root / "containers.conf"
    config.write_text('[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]\n')
    command = ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run")]
    env = {**os.environ, "CONTAINERS_CONF": str(config)}
    try:
        saved = subprocess.Popen(["docker", "save", PODMAN_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run([*command, "load"], stdin=saved.stdout, capture_output=True, text=True, env=env)
        saved.wait()
        require(saved.returncode == 0 and loaded.returncode == 0,
                f"{PODMAN_IMAGE} loaded from Docker into Podman ({loaded.stderr.strip()[-300:]})")
        yield lambda *argv, **options: subprocess.run([*command, *argv], capture_output=True, text=True, env=env,
                                                      **options)
    finally:
        subprocess.run([*command, "system", "reset", "--force"], capture_output=True, env=env)


@pytest.fixture(scope="module")
def reference_golden_k8s(tmp_path_factory) -> Path:
    """The built-in model as a golden made IN the reference image (Docker): that image is IDENTICAL to it."""
    return golden_made_in(PODMAN_IMAGE, tmp_path_factory.mktemp("golden") / "reference")


@pytest.mark.docker
def test_the_printed_pod_runs_under_podman_kube_play_and_compares_as_check_judges_the_image(
        podman, reference_golden_k8s, run_cli, tmp_path, capsys):
    golden = str(reference_golden_k8s)
    assert main(["kit", "k8s", "--image", f"localhost/{PODMAN_IMAGE}:latest", "--kind", "pod", "--golden", golden,
                 "--site", "line-7"]) == ExitCode.OK
    manifests = tmp_path / "kit.yaml"
    manifests.write_text(capsys.readouterr().out)
    pod_name = next(d["metadata"]["name"] for d in map(json.loads, manifests.read_text().split("\n---\n"))
                    if d["kind"] == "Pod")
    container = f"{pod_name}-envcheck-kit"
    try:
        # --network none: nothing the kit does needs a network (a cluster enforces it with the NetworkPolicy).
        played = podman("kube", "play", "--network", "none", str(manifests), timeout=300)
        assert played.returncode == 0, played.stderr
        waited = podman("wait", container, timeout=600)
        assert waited.stdout.strip() == "0", (waited.stdout, waited.stderr, podman("logs", container).stderr[-3000:])
        logs = podman("logs", container)
        (tmp_path / "pod.log").write_text(logs.stdout + logs.stderr)
    finally:
        down = podman("kube", "down", str(manifests))
        podman("pod", "rm", "--force", pod_name)
    assert down.returncode == 0, down.stderr
    assert podman("pod", "exists", pod_name).returncode == 1  # removed
    capture = tmp_path / "capture.tar.gz"
    assert main(["kit", "collect", str(tmp_path / "pod.log"), "--out", str(capture)]) == ExitCode.OK
    capsys.readouterr()
    compared = _verdict(run_cli("compare", str(capture), "--golden", golden))
    checked = _verdict(run_cli("check", "--golden", golden, "--target", f"docker:{PODMAN_IMAGE}"))
    assert compared == checked
    assert compared[:2] == (ExitCode.OK, "IDENTICAL") and compared[2], compared


def _verdict(result) -> tuple:
    code, _, err, report = result
    assert report is not None, err
    (target,) = report["targets"]
    return code, target["verdict"], {name: o.get("status") for name, o in (target.get("outputs") or {}).items()}

