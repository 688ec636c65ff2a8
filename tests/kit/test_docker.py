"""The kit for real, in the fixture images, network-less, as a technician runs it (`docker run … python3 /kit.pyz`):
`envcheck compare` of what it writes gives the verdict `envcheck check --target docker:IMAGE` gives, on the
reference image (TensorFlow; read-only root, the capture streamed to stdout), the edge image (TFLite only; the
container's filesystem unchanged afterwards: nothing installed, nothing left) and the images without TensorFlow
(Python 3.9 as an unprivileged user, and bookworm's Python: an ERROR capture that compares, exit 3)."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import docker_leaving_nothing

from envcheck.errors import ExitCode
from envcheck.targets import PROBE_LABEL, RUN_LABEL, run_id

from .conftest import build_kit, golden_made_in, same_as_check

pytestmark = [pytest.mark.docker]

PREFIX = "envcheck-fixture"
IMAGES = ("reference", "edge", "python39", "no-tf")


@pytest.fixture(scope="module")
def docker_client():
    with docker_leaving_nothing(*(f"{PREFIX}/{name}" for name in IMAGES)) as client:
        yield client


@pytest.fixture(scope="module")
def reference_golden(docker_client, tmp_path_factory) -> Path:
    """The built-in model as a golden made IN the reference image: that image is IDENTICAL to it."""
    return golden_made_in(f"{PREFIX}/reference", tmp_path_factory.mktemp("golden") / "reference")


def _docker_run(kit: Path, image: str, *kit_argv: str, options: tuple[str, ...] = ("--rm",)) -> subprocess.CompletedProcess:
    """`docker run … IMAGE python3 /kit.pyz KIT_ARGV`, labelled as this test run's (bytes: stdout may be the capture)."""
    command = ["docker", "run", *options, "--network", "none", "--label", f"{PROBE_LABEL}=1",
               "--label", f"{RUN_LABEL}={run_id()}", "-v", f"{kit}:/kit.pyz:ro", f"{PREFIX}/{image}", "python3",
               "/kit.pyz", *kit_argv]
    return subprocess.run(command, capture_output=True, timeout=600)


def test_reference_image_read_only_streamed_capture_is_judged_as_check_judges_it(run_cli, reference_golden, tmp_path):
    kit = build_kit(tmp_path / "kit.pyz", "--golden", str(reference_golden))
    ran = _docker_run(kit, "reference", "--site", "line-7", "--out", "-", options=("--rm", "--read-only"))
    assert ran.returncode == ExitCode.OK, ran.stderr.decode()
    assert f"envcheck compare capture.tar.gz --golden {reference_golden}" in ran.stderr.decode()
    capture = tmp_path / "capture.tar.gz"
    capture.write_bytes(ran.stdout)
    code, verdict, statuses, _ = same_as_check(run_cli, capture, str(reference_golden), "reference")
    assert (code, verdict) == (ExitCode.OK, "IDENTICAL") and statuses


def test_edge_image_installs_nothing_and_is_judged_as_check_judges_it(run_cli, docker_client, tmp_path):
    kit = build_kit(tmp_path / "kit.pyz", "--golden", "builtin:edge")
    out = tmp_path / "out"
    out.mkdir()
    name = f"envcheck-kit-test-{uuid.uuid4().hex[:12]}"
    try:
        ran = _docker_run(kit, "edge", "--out", "/out/capture.tar.gz",
                          options=("--name", name, "-v", f"{out}:/out"))
        assert ran.returncode == ExitCode.OK, ran.stderr.decode()
        # The container's own filesystem against its image: nothing installed, nothing left (its temporary
        # directory removed). Only the two mount points Docker itself adds show.
        changed = docker_client.containers.get(name).diff() or []
        assert [c["Path"] for c in changed if c["Path"] not in ("/out", "/kit.pyz")] == [], changed
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    code, verdict, statuses, _ = same_as_check(run_cli, out / "capture.tar.gz", "builtin:edge", "edge")
    # (builtin:edge was made on another CPU: this one may WARN on its flags, in both reports alike.)
    assert code == ExitCode.OK and verdict in ("IDENTICAL", "PASS", "WARN")
    assert set(statuses) == {"tflite:class_probs", "tflite:embedding"}


@pytest.mark.parametrize("image", ["python39", "no-tf"])
def test_a_box_without_tensorflow_sends_an_error_capture_that_compares_as_check(run_cli, kit, tmp_path, image):
    ran = _docker_run(kit, image, "--out", "-")
    assert ran.returncode == ExitCode.UNDECIDED and "TensorFlow is not importable" in ran.stderr.decode()
    capture = tmp_path / "capture.tar.gz"
    capture.write_bytes(ran.stdout)
    golden = "builtin:default"
    code, verdict, _, kind = same_as_check(run_cli, capture, golden, image)
    assert (code, verdict, kind) == (ExitCode.UNDECIDED, "ERROR", "tensorflow-not-importable")
