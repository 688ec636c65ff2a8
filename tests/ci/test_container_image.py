"""envcheck itself as a container image (docker/Dockerfile), built from this checkout's wheel on the fixtures'
Debian base without any registry (fixtures/images/build.py: `envcheck`), then run the way a pipeline runs it:

    docker run --rm -v /var/run/docker.sock:/var/run/docker.sock --group-add <the socket's group> \\
        -v <reports>:/work/reports -v <golden>:/work/golden:ro envcheck-fixture/envcheck \\
        check --golden golden/vision --target docker:envcheck-fixture/reference --json reports/report.json

The probe container is created by the host's daemon through the socket (envcheck copies the probe and the
golden into it: no bind mount), and must be gone afterwards. In CI a missing daemon, base or fixture image
fails these tests; on a developer machine they are skipped.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from ci.support import NO_TF, PREFIX, REFERENCE, copy_golden, wait_for_no_probes
from envcheck.errors import ExitCode
from helpers import REPO, require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = f"{PREFIX}/envcheck"
BUILD_PY = REPO / "fixtures" / "images" / "build.py"


def _build_module():
    spec = importlib.util.spec_from_file_location("envcheck_fixture_build", BUILD_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _socket() -> Path:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    require(host.startswith("unix://"), f"a local Docker daemon socket to mount (DOCKER_HOST is {host})")
    return Path(host.removeprefix("unix://"))


@pytest.fixture(scope="module")
def envcheck_image(docker_client) -> str:
    """The image, built (or found up to date) exactly as scripts/setup-test-env.sh builds it."""
    require(bool(docker_client.images.list(name=f"{PREFIX}/base:bookworm")),
            f"fixture image {PREFIX}/base:bookworm (python fixtures/images/build.py)")
    build = _build_module()
    build.build_envcheck_image(docker_client, build.build_base(docker_client))
    return IMAGE


def _run(client, image: str, *argv: str, reports: Path, golden: Path | None = None) -> tuple[int, str]:
    socket = _socket()
    volumes = {str(socket): {"bind": "/var/run/docker.sock", "mode": "rw"},
               str(reports): {"bind": "/work/reports", "mode": "rw"}}
    if golden is not None:
        volumes[str(golden)] = {"bind": "/work/golden/vision", "mode": "ro"}
    container = client.containers.run(image, list(argv), volumes=volumes, group_add=[str(socket.stat().st_gid)],
                                      detach=True)
    try:
        status = container.wait(timeout=600)["StatusCode"]
        return status, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def test_the_image_is_envcheck_without_tensorflow_as_a_user_other_than_root(docker_client, envcheck_image):
    config = docker_client.images.get(envcheck_image).attrs["Config"]
    assert config["Entrypoint"] == ["envcheck"] and config["User"] == "envcheck", config
    assert "/work/reports" in (config.get("Volumes") or {})
    output = docker_client.containers.run(
        envcheck_image, ["-c", "import importlib.util as u, os; import envcheck; "
                         "print(u.find_spec('tensorflow') is None, os.getuid(), envcheck.__version__)"],
        entrypoint=["python3"], remove=True).decode().split()
    assert output[:2] == ["True", "10001"], output


def test_a_second_build_finds_the_image_up_to_date(docker_client, envcheck_image, capsys):
    before = docker_client.images.get(envcheck_image).id
    build = _build_module()
    started = time.monotonic()
    assert build.build_envcheck_image(docker_client, build.build_base(docker_client)) == before
    assert f"{IMAGE} is up to date" in capsys.readouterr().out
    assert time.monotonic() - started < 120   # a wheel build and a hash, no image build


def test_a_check_through_the_container_writes_its_report_to_the_mounted_folder(docker_client, envcheck_image,
                                                                              team_golden, tmp_path):
    golden, sha256 = team_golden
    mounted = copy_golden(golden, tmp_path / "golden")
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o777)
    reports.chmod(0o777)   # the image's own user writes it (`--user "$(id -u)"` would write it as you)
    image_ids = {docker_client.images.get(REFERENCE).id}
    started = time.time()
    code, log = _run(docker_client, envcheck_image, "check", "--golden", "golden/vision", "--golden-sha256", sha256,
                     "--target", f"docker:{REFERENCE}", "--no-reports", "--json", "reports/report.json",
                     reports=reports, golden=mounted)
    assert code == ExitCode.OK, log
    document = json.loads((reports / "report.json").read_text())
    assert document["exit_code"] == 0 and document["golden"]["sha256"] == sha256
    (target,) = document["targets"]
    assert target["spec"] == f"docker:{REFERENCE}" and target["verdict"] in ("IDENTICAL", "PASS", "WARN"), target["verdict"]
    assert target["target"]["kind"] == "docker" and target["target"]["image"]["id"] in image_ids
    assert (reports / "report.json").stat().st_uid == 10001
    assert wait_for_no_probes(docker_client, image_ids, started) == [], "probe container left behind"


def test_a_target_that_cannot_be_checked_exits_3_through_the_container(docker_client, envcheck_image, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    reports.chmod(0o777)
    image_ids = {docker_client.images.get(NO_TF).id}
    started = time.time()
    code, log = _run(docker_client, envcheck_image, "check", "--target", f"docker:{NO_TF}", "--no-reports",
                     "--json", "reports/report.json", reports=reports)
    assert code == ExitCode.UNDECIDED, log
    document = json.loads((reports / "report.json").read_text())
    assert document["exit_code"] == 3 and document["targets"][0]["error"]["kind"] == "tensorflow-not-importable"
    assert wait_for_no_probes(docker_client, image_ids, started) == [], "probe container left behind"
