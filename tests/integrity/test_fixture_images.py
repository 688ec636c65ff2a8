"""Installed-file integrity and start-up code, for real: the four hand-altered fixture images against a golden made
in the reference image (fixtures/images/integrity-*). Each names its file in the JSON report, the terminal and the
HTML report; the reference image gives no such finding. One golden and one check of all five images."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import docker_with_images

from envcheck.fields import INTEGRITY_CODES
from envcheck.golden import builtin_golden_dir

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PREFIX = "envcheck-fixture"
SITE = "/usr/local/lib/python3.11/dist-packages"
# image -> (finding code, severity, the file the finding names)
ALTERED = {
    "integrity-edited-py": ("installed-file-modified", "fail", "tensorflow/python/ops/gradients_util.py"),
    "integrity-startup-pth": ("startup-code", "warn", f"{SITE}/factory-hotfix.pth"),
    "integrity-replaced-so": ("installed-file-modified", "fail",
                              "numpy/_core/_operand_flag_tests.cpython-311-x86_64-linux-gnu.so"),
    "integrity-ld-preload": ("startup-code", "warn", "/usr/local/lib/libhotfix.so.1"),
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """(exit code, terminal text, report, HTML) of one check of the reference and the four altered images."""
    client = docker_with_images(*(f"{PREFIX}/{name}" for name in ("reference", *ALTERED)))
    client.close()
    work = tmp_path_factory.mktemp("integrity")
    golden = work / "golden"
    subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model", str(builtin_golden_dir() / "model"),
                    "--inputs", str(builtin_golden_dir() / "inputs.npz"), "--target", f"docker:{PREFIX}/reference",
                    "--out", str(golden), "--no-calibrate"], check=True, capture_output=True)
    targets = [argument for name in ("reference", *ALTERED) for argument in ("--target", f"docker:{PREFIX}/{name}")]
    report, html = work / "report.json", work / "report.html"
    done = subprocess.run([sys.executable, "-m", "envcheck", "check", "--golden", str(golden), *targets,
                           "--latency-budget", "0", "--json", str(report), "--html", str(html)],
                          capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "400"})
    return done.returncode, done.stdout, json.loads(report.read_text()), html.read_text()


def _target(report: dict, name: str) -> dict:
    return next(t for t in report["targets"] if t["spec"] == f"docker:{PREFIX}/{name}")


def test_the_reference_image_has_no_integrity_finding(checked):
    _, _, report, _ = checked
    reference = _target(report, "reference")
    assert [f for f in reference["findings"] if f["code"] in INTEGRITY_CODES] == []
    record = reference["fingerprint"]["integrity"]
    assert record["mode"] == "numerics" and record["python"]["tensorflow-cpu"]["checked"] > 1000
    assert record["system"]["status"] == "ok" and record["system"]["checked"] > 0


@pytest.mark.parametrize("image", list(ALTERED))
def test_each_altered_image_names_its_file_in_the_report_terminal_and_html(checked, image):
    code, terminal, report, html = checked
    assert code == 1  # the edited TensorFlow file and the replaced NumPy .so fail the gate
    wanted_code, severity, file = ALTERED[image]
    findings = [f for f in _target(report, image)["findings"] if f["code"] == wanted_code and file in f["message"]]
    assert [f["severity"] for f in findings] == [severity], _target(report, image)["findings"]
    assert file in terminal and file in html


def test_a_preloaded_library_no_package_installed_is_named_as_loaded_and_unowned(checked):
    _, _, report, _ = checked
    findings = _target(report, "integrity-ld-preload")["findings"]
    assert any(f["code"] == "system-library-unowned" and "/usr/local/lib/libhotfix.so.1" in f["message"]
               for f in findings)


def test_the_startup_pth_changes_the_outputs_and_its_lines_are_shown(checked):
    _, _, report, _ = checked
    target = _target(report, "integrity-startup-pth")
    (finding,) = [f for f in target["findings"] if f["code"] == "startup-code"]
    assert "import factory_hotfix" in finding["message"] and "installed by no package" in finding["message"]
    assert target["fingerprint"]["env"].get("TF_ENABLE_ONEDNN_OPTS") == "0"  # what the start-up code did
