"""The SBOM of a real image, for real: one `envcheck check` of envcheck-fixture/reference (Debian bookworm, so dpkg
keeps a status file) with `--sbom` and a kept report. Its Debian packages are pkg:deb components (libc6 with the
purl scanners match), both the one-file SBOM and the per-target file validate with cyclonedx-python-lib's own
validator, and the per-target file is the image's tree of the one-file SBOM."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from helpers import docker_with_images

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "envcheck-fixture/reference"
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """(the JSON report, the one-file SBOM, {per-target file name: SBOM}) of one check of the reference image."""
    docker_with_images(IMAGE).close()
    work = tmp_path_factory.mktemp("sbom")
    reports, sbom = work / "reports", work / "sbom.cdx.json"
    done = subprocess.run([sys.executable, "-m", "envcheck", "check", "--target", f"docker:{IMAGE}",
                           "--latency-budget", "0", "--reports-dir", str(reports), "--sbom", str(sbom)],
                          capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode in (0, 1), done.stderr  # the SBOM is written whatever the verdict
    (report,) = reports.glob("envcheck-*.json")
    per_target = {path.name: _valid(path.read_text()) for path in report.with_suffix(".sbom").iterdir()}
    return json.loads(report.read_text()), _valid(sbom.read_text()), per_target


def _valid(text: str) -> dict:
    assert VALIDATOR.validate_str(text) is None
    return json.loads(text)


def _components(tree: dict) -> list[dict]:
    return tree.get("components", [])


def test_the_images_debian_packages_are_in_the_fingerprint(checked):
    report, _, _ = checked
    packages = report["targets"][0]["fingerprint"]["debian_packages"]
    assert packages["libc6"]["architecture"] == "amd64" and packages["libc6"]["source"] == "glibc"
    assert packages["libc6"]["version"].startswith("2.36-")  # bookworm's glibc
    assert len(packages) > 50 and "debian_packages_error" not in report["targets"][0]["fingerprint"]


def test_the_sbom_lists_them_as_deb_components_with_the_purl_scanners_match(checked):
    report, sbom, _ = checked
    (tree,) = sbom["components"]
    debs = [c for c in _components(tree) if c.get("purl", "").startswith("pkg:deb/")]
    assert len(debs) == len(report["targets"][0]["fingerprint"]["debian_packages"])
    version = report["targets"][0]["fingerprint"]["debian_packages"]["libc6"]["version"].replace("+", "%2B")
    assert f"pkg:deb/debian/libc6@{version}?arch=amd64&distro=debian-12&upstream=glibc" in {c["purl"] for c in debs}
    # and TensorFlow with its PyPI purl, as before
    assert any(c.get("purl", "").startswith("pkg:pypi/tensorflow") for c in _components(tree))


def test_the_kept_report_has_the_images_own_sbom_beside_it(checked):
    _, sbom, per_target = checked
    (name,) = per_target
    assert name == "target-0-docker_envcheck-fixture_reference.cdx"
    (tree,) = per_target[name]["components"]
    assert tree == sbom["components"][0]
