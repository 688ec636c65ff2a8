"""Fleet review over real recorded reports (several sites, shifted to several dates) plus broken files,
and one review of reports made live by the real checker."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from envcheck.errors import ExitCode
from envcheck.report import fleet as views


@pytest.fixture
def fleet_dir(recorded_reports, tmp_path) -> Path:
    """The recorded reports on two days (the older day: every site as recorded, then beijing-1 again),
    plus a truncated file, a foreign JSON file and a non-JSON file."""
    root = tmp_path / "fleet"
    root.mkdir()
    for name, report in recorded_reports.items():
        older = dict(report, created="2026-11-20T08:00:00Z")
        (root / f"{name}-day1.json").write_text(json.dumps(older))
    newer = dict(recorded_reports["beijing-1"], created="2026-11-21T08:00:00Z")
    (root / "beijing-1-day2.json").write_text(json.dumps(newer))
    (root / "truncated.json").write_text(json.dumps(recorded_reports["xian-4-avx2"])[:500])
    (root / "foreign.json").write_text('{"schema": "cyclonedx/1.5", "components": []}')
    (root / "notes.json").write_text("hello")
    return root


def test_matrix_classes_attribution_and_skips(fleet_dir):
    fleet = views.load_fleet([fleet_dir])
    assert fleet.files_read == 6 and len(fleet.skipped) == 3
    assert {Path(f).name for f, _ in fleet.skipped} == {"truncated.json", "foreign.json", "notes.json"}

    matrix = views.verdict_matrix(fleet)
    assert matrix.loc["shenzhen-3", "docker:envcheck-fixture/tf-older"] == "FAIL"
    assert matrix.loc["beijing-1", "host"] == "IDENTICAL"
    assert matrix.loc["chengdu-5", "host"] == "FAIL"

    classes = views.equivalence_classes(fleet)
    golden_class = classes[classes["identical_to_golden"]].iloc[0]
    assert golden_class["members"] == 3  # beijing-1: host, reference, nonroot compute the golden's exact bits
    assert classes["members"].sum() == 8  # every latest run with outputs (ERROR rows have none)

    ranked = views.attribution(fleet)
    onednn = ranked[(ranked["path"] == "env.TF_ENABLE_ONEDNN_OPTS") & (ranked["value"] == "0")].iloc[0]
    assert onednn["drifting_with"] == 2 and onednn["others_with"] == 0  # wuhan host + onednn-off image
    assert ranked.iloc[0]["drifting_with"] >= onednn["drifting_with"]


def test_trend_and_since(fleet_dir):
    fleet = views.load_fleet([fleet_dir])
    history = views.trend(fleet)
    assert list(history.columns) == ["2026-11-20", "2026-11-21"]
    assert history.loc["beijing-1", "2026-11-21"] == "WARN"
    recent = views.load_fleet([fleet_dir], since=views.pd.Timestamp("2026-11-21", tz="UTC"))
    assert recent.files_read == 1 and set(recent.runs["site"]) == {"beijing-1"}


def test_review_cli_writes_csv_and_html(fleet_dir, run_cli, tmp_path):
    code, out, _, _ = run_cli("review", str(fleet_dir), "--csv", str(tmp_path / "f.csv"), "--html", str(tmp_path / "f.html"))
    assert code == ExitCode.OK
    flat = "".join(out.split())  # rich wraps long lines
    assert "truncated.json" in flat and "TF_ENABLE_ONEDNN_OPTS" in flat
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    assert len(rows) == sum(len(json.loads(p.read_text())["targets"]) for p in fleet_dir.glob("*-day*.json"))
    assert {"site", "host", "spec", "verdict", "created", "output_digest", "golden_sha256", "golden_path"} <= set(rows[0])
    html = (tmp_path / "f.html").read_text()
    assert 'id="matrix"' in html and "Equivalence classes" in html and "Trend" in html


def test_review_exits_3_only_when_nothing_is_readable(tmp_path, run_cli):
    (tmp_path / "a.json").write_text("{")
    code, _, err, _ = run_cli("review", str(tmp_path))
    assert code == ExitCode.UNDECIDED and "no report could be read" in err and "a.json" in err


@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
def test_review_of_reports_made_live_by_the_checker(run_cli, tmp_path, monkeypatch, golden_onednn_on):
    """oneDNN forced on, then off: another kernel choice on every x86 CPU (whatever its default)."""
    reports = tmp_path / "kept"  # where run_cli keeps every check's report
    for site, knob in (("plant-a", "1"), ("plant-b", "0")):
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", knob)
        run_cli("check", "--golden", str(golden_onednn_on), "--site", site)
    code, _, _, _ = run_cli("review", str(reports))
    fleet = views.load_fleet([reports])
    assert code == ExitCode.OK and fleet.files_read == 2
    assert views.verdict_matrix(fleet).loc["plant-b", "host"] == "WARN"
    assert len(views.equivalence_classes(fleet)) == 2
