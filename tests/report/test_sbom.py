"""The SBOM (`--sbom PATH`, envcheck/report/sbom.py): CycloneDX JSON that cyclonedx-python-lib's own validator
accepts, one component tree per target, TensorFlow with its PyPI purl, the report's redaction kept (no raw
hostname), Debian packages with the purl scanners match, and a fingerprint's odd data listed without breaking
the file. Recorded real reports, then one real `envcheck compare --sbom` of a capture."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from envcheck.cli import main
from envcheck.errors import ExitCode
from envcheck.redact import hash_identifier
from envcheck.report.sbom import render_sbom
from helpers import RECORDED_REPORTS
from hostile.cases import good_capture

NAMES = sorted(p.stem for p in RECORDED_REPORTS.glob("*.json"))
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def valid_sbom(text: str) -> dict:
    """The SBOM as a dict, once cyclonedx-python-lib's own validator has found nothing wrong with it."""
    assert VALIDATOR.validate_str(text) is None
    document = json.loads(text)
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")
    return document


def trees(sbom: dict) -> dict[str, dict]:
    """Each target's component by its bom-ref (`target-N`: the report's N-th target)."""
    return {component["bom-ref"]: component for component in sbom["components"]}


def purls(tree: dict) -> set[str]:
    return {component["purl"] for component in tree.get("components", []) if "purl" in component}


def properties(component: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in component.get("properties", []):
        found.setdefault(entry["name"], []).append(entry["value"])
    return found


@pytest.mark.parametrize("name", NAMES)
def test_a_recorded_report_gives_a_valid_sbom_with_a_tree_per_target(recorded_reports, name):
    report = recorded_reports[name]
    sbom = valid_sbom(render_sbom(report))
    by_ref = trees(sbom)
    assert set(by_ref) == {f"target-{i}" for i in range(len(report["targets"]))}
    for index, target in enumerate(report["targets"]):
        tree = by_ref[f"target-{index}"]
        assert tree["name"] == target["spec"]
        assert properties(tree)["envcheck:verdict"] == [target["verdict"]]
        packages = (target.get("fingerprint") or {}).get("packages", {})
        # every distribution of the fingerprint, each with its purl, under its own target
        assert {f"pkg:pypi/{n}@{v}" for n, v in packages.items()} <= purls(tree)


@pytest.mark.parametrize("name", NAMES)
def test_tensorflow_is_named_with_its_purl(recorded_reports, name):
    report = recorded_reports[name]
    by_ref = trees(valid_sbom(render_sbom(report)))
    with_tensorflow = [(i, t) for i, t in enumerate(report["targets"]) if "tensorflow" in (t.get("fingerprint") or {})]
    assert with_tensorflow, "every recorded report has a target that ran TensorFlow"
    for index, target in with_tensorflow:
        fingerprint = target["fingerprint"]
        (distribution,) = fingerprint["tensorflow"]["distribution"]
        version = fingerprint["packages"][distribution]
        assert f"pkg:pypi/{distribution}@{version}" in purls(by_ref[f"target-{index}"])


def test_the_hostname_is_the_reports_hashed_one(recorded_reports):
    report = recorded_reports["beijing-1"]
    by_ref = trees(valid_sbom(render_sbom(report)))
    for index, target in enumerate(report["targets"]):
        hashed = target["fingerprint"]["host"]["hostname"]
        assert hashed.startswith("sha256:")
        assert properties(by_ref[f"target-{index}"])["envcheck:hostname"] == [hashed]


def test_the_operating_system_interpreter_and_native_libraries_are_listed(recorded_reports):
    tree = trees(valid_sbom(render_sbom(recorded_reports["beijing-1"])))["target-0"]
    by_type = {(c["type"], c["name"]): c for c in tree["components"]}
    assert by_type[("operating-system", "debian")]["version"] == "12"
    assert by_type[("application", "CPython")]["cpe"] == "cpe:2.3:a:python:python:3.11.7:*:*:*:*:*:*:*"
    # the older probe's `cuda_libraries`: a CUDA runtime the linker knows of, and the loaded C++ runtime
    assert {"pkg:generic/libcudart@13", "pkg:generic/libstdc%2B%2B@6.0.30"} <= purls(tree)
    assert properties(by_type[("library", "libcudart")])["envcheck:loaded"] == ["false"]


def test_debian_packages_get_the_purl_scanners_match(recorded_reports):
    report = copy.deepcopy(recorded_reports["beijing-1"])
    report["targets"][0]["fingerprint"]["debian_packages"] = {
        "libc6": {"version": "2.36-9+deb12u4", "architecture": "amd64", "source": "glibc"},
        "zlib1g": {"version": "1:1.2.13.dfsg-1", "architecture": "amd64"}}
    tree = trees(valid_sbom(render_sbom(report)))["target-0"]
    assert {"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
            "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"} <= purls(tree)


def test_odd_fingerprint_data_is_listed_without_a_purl_and_the_sbom_stays_valid(recorded_reports):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    target = report["targets"][0]
    odd = ["\x1b[2J", "a\ud800b", "@/?#%", " ", "::error::x", "\u202e", "../.."]
    target["fingerprint"]["packages"].update({name: "1.0" for name in odd})
    target["fingerprint"]["packages"]["too-long-a-version"] = "9" * 5000
    target["fingerprint"]["packages"]["not-a-version"] = 3
    target["fingerprint"]["python"] = {"version": ["3"]}
    target["fingerprint"]["cuda_libraries"] = {"installed": {"a": "x", "b": [1, None]}, "loaded": {"c": 5}}
    target["spec"], target["site"] = "\x1b]8;;http://x/\x07", "a\ud800b"
    report["targets"][1]["fingerprint"] = "not a section"
    report["created"] = "not a time"
    tree = trees(valid_sbom(render_sbom(report)))["target-0"]
    listed = {c["name"]: c for c in tree["components"]}
    assert all(name in listed and "purl" not in listed[name] for name in odd)
    assert "too-long-a-version" not in listed and "not-a-version" not in listed
    assert "pkg:pypi/numpy@" + target["fingerprint"]["packages"]["numpy"] in purls(tree)


def test_a_target_that_could_not_be_probed_is_listed_with_nothing_in_it(recorded_reports):
    report = recorded_reports["shenzhen-3"]
    index = next(i for i, t in enumerate(report["targets"]) if not t.get("fingerprint"))
    tree = trees(valid_sbom(render_sbom(report)))[f"target-{index}"]
    assert properties(tree)["envcheck:verdict"] == ["ERROR"]
    assert not tree.get("components")


def test_the_same_report_gives_the_same_sbom(recorded_reports):
    report = recorded_reports["shenzhen-3"]
    assert render_sbom(report) == render_sbom(copy.deepcopy(report))
    assert json.loads(render_sbom(report))["metadata"]["timestamp"] == "2026-11-26T11:41:39+00:00"


def test_compare_with_sbom_writes_a_valid_sbom_without_the_hostname(tmp_path: Path):
    capture = good_capture(tmp_path)
    document = json.loads((capture / "capture.json").read_text())
    document["fingerprint"]["host"]["hostname"] = "line-7-inference-pc"  # as a probe writes it: raw
    (capture / "capture.json").write_text(json.dumps(document))
    sbom_path = tmp_path / "out" / "sbom.cdx.json"
    (tmp_path / "out").mkdir()

    code = main(["compare", str(capture), "--sbom", str(sbom_path), "--json", str(tmp_path / "report.json"),
                 "--no-reports"])

    assert code == ExitCode.OK
    text = sbom_path.read_text()
    assert "line-7-inference-pc" not in text
    (tree,) = valid_sbom(text)["components"]
    assert properties(tree)["envcheck:hostname"] == [hash_identifier("line-7-inference-pc")]
    assert properties(tree)["envcheck:site"] == ["line-7"]
    version = document["fingerprint"]["tensorflow"]["version"]
    assert f"pkg:pypi/{document['fingerprint']['tensorflow']['distribution'][0]}@{version}" in purls(tree)
    # the SBOM holds what the JSON report holds: the same targets, the same packages
    report = json.loads((tmp_path / "report.json").read_text())
    packages = report["targets"][0]["fingerprint"]["packages"]
    assert {f"pkg:pypi/{n}@{v}" for n, v in packages.items()} <= purls(tree)
