"""The per-target SBOMs beside a kept report (`<reports-dir>/envcheck-<stamp>Z.sbom/target-N-<spec>.cdx`,
envcheck/report/sbom.py render_target_sboms, written by the CLI's publishing), Debian packages in the SBOM, and
the registry's verdict on a Debian package list difference. Recorded reports and a capture: no Docker."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hostile.cases import good_capture

from envcheck.cli import main
from envcheck.compare.policy import build_policy
from envcheck.errors import ExitCode
from envcheck.redact import hash_identifier
from envcheck.report.sbom import render_sbom, render_target_sboms
from envcheck.review.find import report_files

VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def _valid(text: str) -> dict:
    assert VALIDATOR.validate_str(text) is None
    return json.loads(text)


def _purls(tree: dict) -> set[str]:
    return {component["purl"] for component in tree.get("components", []) if "purl" in component}


def _target_0(sbom: dict) -> dict:
    return next(tree for tree in sbom["components"] if tree["bom-ref"] == "target-0")


def _properties(component: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in component.get("properties", []):
        found.setdefault(entry["name"], []).append(entry["value"])
    return found


def test_one_valid_sbom_per_target_holding_that_targets_tree(recorded_reports):
    report = recorded_reports["shenzhen-3"]
    whole = {tree["bom-ref"]: tree for tree in json.loads(render_sbom(report))["components"]}
    files = render_target_sboms(report)
    assert len(files) == len(report["targets"]) > 1
    names = [name for name, _ in files]
    assert len(set(names)) == len(names) and not any(name.endswith(".json") for name in names)
    serials = set()
    for index, (name, text) in enumerate(files):
        sbom = _valid(text)
        (tree,) = sbom["components"]
        assert name.startswith(f"target-{index}-") and name.endswith(".cdx")
        assert tree == whole[f"target-{index}"]  # the same tree as in the one-file SBOM, with the same bom-refs
        serials.add(sbom["serialNumber"])
    assert len(serials) == len(files)
    assert render_target_sboms(report) == render_target_sboms(copy.deepcopy(report))  # deterministic


def test_a_spec_is_made_a_safe_file_name(recorded_reports):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    report["targets"][0]["spec"] = "docker:../../etc/passwd\x1b[2J::x"
    report["targets"][1]["spec"] = None
    (first, _), (second, _), *_ = render_target_sboms(report)
    assert first == "target-0-docker_.._.._etc_passwd_2J_x.cdx" and "/" not in first
    assert second == "target-1.cdx"


def test_debian_packages_of_two_architectures_and_a_dpkg_error(recorded_reports):
    report = copy.deepcopy(recorded_reports["beijing-1"])
    fingerprint = report["targets"][0]["fingerprint"]
    fingerprint["debian_packages"] = {
        "libstdc++6:amd64": {"version": "12.2.0-14", "architecture": "amd64", "source": "gcc-12"},
        "libstdc++6:i386": {"version": "12.2.0-14", "architecture": "i386", "source": "gcc-12"}}
    tree = _target_0(_valid(render_sbom(report)))
    assert {"pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12",
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=i386&distro=debian-12&upstream=gcc-12"} <= _purls(tree)
    del fingerprint["debian_packages"]
    fingerprint["debian_packages_error"] = "cannot read /var/lib/dpkg/status: larger than 64 MiB"
    tree = _target_0(_valid(render_sbom(report)))
    assert _properties(tree)["envcheck:debian-packages-error"] == [fingerprint["debian_packages_error"]]


def test_a_debian_package_list_difference_is_info_only():
    """Context, never a verdict: numerics are judged on the libraries loaded; a cuDNN *package* is no loaded cuDNN."""
    policy = build_policy()
    for path in ("debian_packages", "debian_packages.libc6.version", "debian_packages.libcudnn9-cuda-12.version",
                 "debian_packages.libcudnn9-cuda-12", "debian_packages_error"):
        assert policy.severity_for(path) == "info", path


def _compare_keeping_reports(tmp_path: Path, hostname: str = "line-7-inference-pc") -> tuple[int, Path]:
    capture = good_capture(tmp_path)
    document = json.loads((capture / "capture.json").read_text())
    document["fingerprint"]["host"]["hostname"] = hostname  # as a probe writes it: raw
    document["fingerprint"]["debian_packages"] = {"libc6": {"version": "2.36-9+deb12u14", "architecture": "amd64",
                                                            "source": "glibc"}}
    (capture / "capture.json").write_text(json.dumps(document))
    reports = tmp_path / "reports"
    return main(["compare", str(capture), "--reports-dir", str(reports)]), reports


def test_a_kept_report_gets_its_per_target_sboms_which_review_does_not_read(tmp_path, capsys):
    code, reports = _compare_keeping_reports(tmp_path)
    assert code == ExitCode.OK
    (report,) = reports.glob("envcheck-*.json")
    folder = report.with_suffix(".sbom")
    (sbom_file,) = folder.iterdir()
    assert sbom_file.name == "target-0-host.cdx"
    text = sbom_file.read_text()
    assert "line-7-inference-pc" not in text
    (tree,) = _valid(text)["components"]
    assert _properties(tree)["envcheck:hostname"] == [hash_identifier("line-7-inference-pc")]
    assert any(p.startswith("pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64") for p in _purls(tree))
    assert f"{folder}/" in capsys.readouterr().out  # named with the reports written
    # `envcheck review reports/` reads the report, and nothing in the SBOM folder as one
    assert report_files([reports]) == ([report], [])


def test_no_reports_writes_no_per_target_sbom(tmp_path):
    capture = good_capture(tmp_path)
    reports = tmp_path / "reports"
    assert main(["compare", str(capture), "--reports-dir", str(reports), "--no-reports",
                 "--json", str(tmp_path / "r.json")]) == ExitCode.OK
    assert not reports.exists() or not any(reports.iterdir())


def test_a_folder_that_cannot_be_made_is_exit_3_recorded_in_the_json(tmp_path, monkeypatch, capsys):
    """Something already has the folder's name (here a link planted there): never written through, exit 3,
    and the JSON reports say why."""
    import envcheck.files

    monkeypatch.setattr(envcheck.files, "report_file_name", lambda *a, **k: "envcheck-fixed.json")
    reports, elsewhere = tmp_path / "reports", tmp_path / "elsewhere"
    reports.mkdir()
    elsewhere.mkdir()
    (reports / "envcheck-fixed.sbom").symlink_to(elsewhere)
    capture = good_capture(tmp_path)
    code = main(["compare", str(capture), "--reports-dir", str(reports), "--json", str(tmp_path / "r.json")])
    assert code == ExitCode.UNDECIDED
    assert list(elsewhere.iterdir()) == []
    err = capsys.readouterr().err
    assert "cannot write the per-target SBOMs in" in err and "Traceback" not in err
    for written in (tmp_path / "r.json", reports / "envcheck-fixed.json"):
        document = json.loads(written.read_text())
        assert document["exit_code"] == ExitCode.UNDECIDED
        assert any("per-target SBOMs" in problem for problem in document["publish_errors"])
