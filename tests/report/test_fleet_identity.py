"""The golden and the host are part of every target's identity in the fleet review.

Reports are copies of the recorded real ones with the fields that carry identity edited: the golden's
sha256 and path, the site, the fingerprint's hashed hostname, the output digest and statuses, the time.
"""
from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest

from envcheck.errors import ExitCode
from envcheck.report.fleet_html import render_review_html
from envcheck.review import review, views
from helpers import write_reports
from envcheck.review.load import load_fleet

GOLDEN_B = {"path": "golden/onednn-off", "sha256": "b" * 64}
"""A second golden of the same model, made where oneDNN is off: wuhan-2's drifted bits are its own bits."""
MACHINE_1, MACHINE_2 = "sha256:1111aaaa22223333", "sha256:4444bbbb55556666"


def edited(recorded: dict, *, created: str, golden: dict | None = None, site: str | None = "keep",
           hostname: str | None = "keep", digest: str | None = None, status: str | None = None,
           verdict: str | None = None) -> dict:
    """A copy of a recorded report with identity fields replaced on every target ("keep" keeps a field;
    hostname=None removes the fingerprint's host)."""
    report = dict(copy.deepcopy(recorded), created=created)
    if golden:
        report["golden"] = dict(golden)
    for target in report["targets"]:
        if site != "keep":
            target["site"] = site
        if hostname is None:
            target["fingerprint"].pop("host", None)
        elif hostname != "keep":
            target["fingerprint"]["host"]["hostname"] = hostname
        if digest:
            target["output_digest"] = digest
        if status:
            for output in target["outputs"].values():
                output["status"] = status
        if verdict:
            target["verdict"] = verdict
    return report


@pytest.fixture
def two_goldens(recorded_reports, tmp_path) -> Path:
    """Golden A (the recorded one): beijing-1 and wuhan-2 as recorded. Golden B: plant-b computes the
    same bits as wuhan-2 and is IDENTICAL to B; plant-c drifts from B."""
    wuhan = recorded_reports["wuhan-2-onednn-off"]
    return write_reports(tmp_path / "fleet", {
        "beijing-1": edited(recorded_reports["beijing-1"], created="2026-11-21T08:00:00Z"),
        "wuhan-2": edited(wuhan, created="2026-11-21T08:00:00Z"),
        "plant-b": edited(wuhan, created="2026-11-22T08:00:00Z", golden=GOLDEN_B, site="plant-b", hostname=MACHINE_1,
                          status="identical", verdict="IDENTICAL"),
        "plant-c": edited(recorded_reports["xian-4-avx2"], created="2026-11-22T08:00:00Z", golden=GOLDEN_B,
                          site="plant-c", hostname=MACHINE_2),
    })


def test_two_goldens_are_two_sections(two_goldens, recorded_reports):
    fleet = load_fleet([two_goldens])
    sections = views.by_golden(fleet)
    golden_a = recorded_reports["beijing-1"]["golden"]
    assert [golden.label for golden, _ in sections] == [f"{golden_a['path']} · {golden_a['sha256'][:12]}",
                                                         f"golden/onednn-off · {'b' * 12}"]
    (_, a), (_, b) = sections
    assert set(views.verdict_matrix(a).index) == {"beijing-1", "wuhan-2"}
    assert set(views.verdict_matrix(b).index) == {"plant-b", "plant-c"}
    with pytest.raises(ValueError, match="several goldens"):
        views.equivalence_classes(fleet)  # a mixed fleet is never compared as one


def test_one_golden_at_two_paths_is_one_section(recorded_reports, tmp_path):
    """A golden is its content: copied to another path on another machine, it is the same golden."""
    moved = dict(recorded_reports["beijing-1"]["golden"], path="/opt/goldens/default")
    folder = write_reports(tmp_path / "fleet", {
        "here": edited(recorded_reports["xian-4-avx2"], created="2026-11-21T08:00:00Z"),
        "there": edited(recorded_reports["wuhan-2-onednn-off"], created="2026-11-22T08:00:00Z", golden=moved)})
    ((golden, _),) = views.by_golden(load_fleet([folder]))
    assert golden.label == f"/opt/goldens/default · {moved['sha256'][:12]} (also at 1 other path)"  # the newest path


def test_same_as_golden_means_the_targets_own_golden(two_goldens):
    (_, a), (_, b) = views.by_golden(load_fleet([two_goldens]))
    onednn_off_bits = views.latest(b).set_index("site").at["plant-b", "output_digest"]  # wuhan-2's bits
    classes_a = views.equivalence_classes(a).set_index("output_digest")["identical_to_golden"]
    classes_b = views.equivalence_classes(b).set_index("output_digest")["identical_to_golden"]
    assert not classes_a[onednn_off_bits]  # wuhan-2 drifted from golden A…
    assert classes_b[onednn_off_bits]  # …and the same bits are golden B's own
    assert classes_a.sum() == 1 and classes_b.sum() == 1  # beijing-1's bits are A's; plant-c's are no one's


def test_attribution_is_per_golden(two_goldens):
    (_, a), (_, b) = views.by_golden(load_fleet([two_goldens]))
    onednn = views.attribution(a).set_index(["path", "value"]).loc[("env.TF_ENABLE_ONEDNN_OPTS", "0")]
    assert (onednn["drifting_with"], onednn["drifting_total"], onednn["others_total"]) == (1, 1, 3)
    assert set(views.attribution(b)["drifting_total"]) == {1}  # plant-c only: plant-b matches its golden


def test_several_goldens_are_announced_in_terminal_and_html(two_goldens, run_cli, tmp_path):
    code, out, _, _ = run_cli("review", str(two_goldens), "--html", str(tmp_path / "f.html"))
    flat = " ".join(out.split())
    assert code == ExitCode.OK and "2 goldens: reviewing each separately" in flat
    assert "golden golden/onednn-off · bbbbbbbbbbbb" in flat
    page = (tmp_path / "f.html").read_text()
    assert "<b>2 goldens: reviewing each separately</b>" in page and page.count("<h2>Golden ") == 2
    assert 'id="matrix"' in page and 'id="matrix-1"' in page  # table ids stay unique for the filters


def test_one_golden_keeps_the_single_review(recorded_reports, tmp_path):
    html = render_review_html(review([write_reports(tmp_path / "one", {"b": recorded_reports["beijing-1"]})]))
    assert "goldens: reviewing" not in html and "<h2>Latest verdict per site × target</h2>" in html


def test_two_machines_without_site_are_two_rows(recorded_reports, tmp_path):
    xian = recorded_reports["xian-4-avx2"]
    folder = write_reports(tmp_path / "fleet", {
        "m1": edited(xian, created="2026-11-21T08:00:00Z", site=None, hostname=MACHINE_1),
        "m2": edited(xian, created="2026-11-21T09:00:00Z", site=None, hostname=MACHINE_2)})
    fleet = load_fleet([folder])
    assert list(views.verdict_matrix(fleet).index) == ["(no site) · host 1111aaaa", "(no site) · host 4444bbbb"]
    assert views.counts(fleet) == "1 sites · 2 hosts · 1 targets · 2 runs"


def test_the_same_machine_twice_is_one_row_with_two_runs(recorded_reports, tmp_path):
    xian = recorded_reports["xian-4-avx2"]
    folder = write_reports(tmp_path / "fleet", {
        "day1": edited(xian, created="2026-11-21T08:00:00Z", site=None, hostname=MACHINE_1),
        "day2": edited(xian, created="2026-11-22T08:00:00Z", site=None, hostname=MACHINE_1, verdict="PASS")})
    fleet = load_fleet([folder])
    matrix = views.verdict_matrix(fleet)
    assert matrix.to_dict() == {"host": {"(no site) · host 1111aaaa": "PASS"}}  # the newer run
    assert len(fleet.runs) == 2 and views.counts(fleet) == "1 sites · 1 targets · 2 runs"
    assert list(views.trend(fleet).loc["(no site) · host 1111aaaa"]) == ["WARN", "PASS"]


def test_a_named_site_on_two_machines_shows_both(recorded_reports, tmp_path):
    xian = recorded_reports["xian-4-avx2"]
    folder = write_reports(tmp_path / "fleet", {
        "m1": edited(xian, created="2026-11-21T08:00:00Z", hostname=MACHINE_1),
        "m2": edited(xian, created="2026-11-21T09:00:00Z", hostname=MACHINE_2),
        "other": edited(recorded_reports["chengdu-5-bf16"], created="2026-11-21T08:00:00Z")})
    index = list(views.verdict_matrix(load_fleet([folder])).index)
    assert index == ["chengdu-5", "xian-4 · host 1111aaaa", "xian-4 · host 4444bbbb"]


def test_docker_targets_are_placed_on_the_machine_that_ran_them(recorded_reports, tmp_path):
    """A container's hostname is its container id, new every run: beijing-1's images sit on the row of
    its host target's machine. A report of images only names no machine: its host is unknown."""
    folder = write_reports(tmp_path / "fleet", {
        "beijing": edited(recorded_reports["beijing-1"], created="2026-11-21T08:00:00Z", site=None),
        "shenzhen": edited(recorded_reports["shenzhen-3"], created="2026-11-21T08:00:00Z", site=None)})
    matrix = views.verdict_matrix(load_fleet([folder]))
    assert matrix.notna().sum(axis=1).to_dict() == {"(no site) · host 31156843": 3, "(no site) · host unknown": 4}


def test_docker_targets_of_a_report_from_several_machines_have_no_host(recorded_reports, tmp_path):
    """A `compare` of captures from two machines: which of them ran the image is not known."""
    report = edited(recorded_reports["beijing-1"], created="2026-11-21T08:00:00Z", site=None)
    other = copy.deepcopy(report["targets"][0])
    other["spec"], other["fingerprint"]["host"]["hostname"] = "python:/opt/venv/bin/python", MACHINE_1
    report["targets"].append(other)
    runs = load_fleet([write_reports(tmp_path / "fleet", {"compare": report})]).runs.set_index("spec")["host"]
    assert runs.to_dict() == {"host": "sha256:31156843e3d77d17", "docker:envcheck-fixture/reference": "",
                              "docker:envcheck-fixture/nonroot": "", "python:/opt/venv/bin/python": MACHINE_1}


def test_docker_targets_are_placed_on_their_daemons_machine(recorded_reports, tmp_path):
    """Reports of images only, from two factories' daemons, no --site: the daemon's (hashed) machine name
    tells them apart."""
    reports = {}
    for name, machine in (("plant-1", MACHINE_1), ("plant-2", MACHINE_2)):
        report = edited(recorded_reports["shenzhen-3"], created="2026-11-21T08:00:00Z", site=None)
        for target in report["targets"]:
            target["target"].setdefault("daemon", {})["name"] = machine
        reports[name] = report
    runs = load_fleet([write_reports(tmp_path / "fleet", reports)]).runs
    assert set(runs["host"]) == {MACHINE_1, MACHINE_2}


def test_missing_or_raw_hostnames(recorded_reports, tmp_path):
    """A fingerprint without host is an unknown host; a raw hostname is hashed, never shown."""
    xian = recorded_reports["xian-4-avx2"]
    folder = write_reports(tmp_path / "fleet", {
        "none": edited(xian, created="2026-11-21T08:00:00Z", site=None, hostname=None),
        "raw": edited(xian, created="2026-11-21T09:00:00Z", site=None, hostname="press-line-7.plant.example")})
    fleet = load_fleet([folder])
    assert fleet.runs["host"].iloc[0] == "" and fleet.runs["host"].iloc[1].startswith("sha256:")
    assert "(no site) · host unknown" in views.verdict_matrix(fleet).index
    assert "press-line-7" not in render_review_html(review([folder]))


def test_csv_has_golden_and_host_columns(two_goldens, run_cli, tmp_path):
    code, _, _, _ = run_cli("review", str(two_goldens), "--csv", str(tmp_path / "f.csv"))
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert code == ExitCode.OK and {"golden_sha256", "golden_path", "host", "site"} <= set(rows[0])
    plant_b = next(row for row in rows if row["site"] == "plant-b")
    assert (plant_b["golden_sha256"], plant_b["golden_path"], plant_b["host"]) == ("b" * 64, "golden/onednn-off", MACHINE_1)
    assert {row["host"] for row in rows if row["site"] == "beijing-1"} == {"sha256:31156843e3d77d17"}
