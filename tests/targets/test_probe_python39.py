"""The probe zipapp on a real Python 3.9 (Debian bullseye's own python3, fixtures/images/python39), in a
network-less container as an unprivileged user: every standard-library stage runs, then the probe stops
plainly at importing TensorFlow, which that image does not have.

In CI a missing daemon or image fails this test; on a developer machine it is skipped with the command
that sets them up.
"""
from __future__ import annotations

import json

import pytest

from envcheck.errors import ExitCode
from helpers import docker_leaving_nothing

pytestmark = [pytest.mark.docker]

IMAGE = "envcheck-fixture/python39"


@pytest.fixture(scope="module")
def python39_image():
    with docker_leaving_nothing(IMAGE):
        yield IMAGE


def test_python_3_9_runs_every_stdlib_stage_then_names_the_missing_tensorflow(run_cli, python39_image, tmp_path):
    out = tmp_path / "capture"
    code, _, err, _ = run_cli("probe", "--target", f"docker:{python39_image}", "--out", str(out))
    assert code == ExitCode.UNDECIDED
    assert "TensorFlow is not importable in /usr/bin/python3: No module named 'tensorflow'" in err
    assert "Traceback" not in err
    capture = json.loads((out / "capture.json").read_text())
    # The stage it stopped at, and why: the first stage after the fingerprint, a plain failure.
    assert (capture["status"], capture["stage"]) == ("error", "import-tensorflow")
    error = capture["error"]
    assert error["kind"] == "tensorflow-not-importable" and error["stage"] == "import-tensorflow"
    assert error["message"] == "TensorFlow is not importable in /usr/bin/python3: No module named 'tensorflow'"
    assert error["traceback"] == "" and error["exit_code"] == 1
    # Everything before it ran, on Python 3.9.
    fingerprint = capture["fingerprint"]
    assert set(fingerprint) == {"python", "os", "host", "cpu", "packages", "env", "gpu", "native_libraries",
                                "debian_packages"}
    assert fingerprint["python"]["version"].startswith("3.9.")
    assert fingerprint["python"]["implementation"] == "CPython"
    assert fingerprint["os"]["release"]["id"] == "debian" and fingerprint["os"]["release"]["version_id"] == "11"
    assert fingerprint["os"]["glibc"].startswith("glibc 2.31")
    assert fingerprint["cpu"]["machine"] and fingerprint["cpu"]["logical_cpus"] >= 1 and fingerprint["cpu"]["flags"]
    assert fingerprint["host"]["in_container"] is True and fingerprint["host"]["uid"] == 10002
    assert fingerprint["gpu"]["nvml_error"]["name"] == "LIBRARY_NOT_FOUND"  # no driver in the container
    assert "tensorflow" not in fingerprint["packages"] and "tensorflow" not in fingerprint
    assert capture["target"]["info"]["container_user"] == "factory"
