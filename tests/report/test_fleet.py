"""Fleet review over real recorded reports (several sites, shifted to several dates) plus broken files,
and one review of reports made live by the real checker."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from envcheck.errors import ExitCode, UsageError
from envcheck.report.fleet_html import render_review_html
from envcheck.review import read, review, views
from envcheck.review.load import load_fleet
from envcheck.review.read import parse_since


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
    fleet = load_fleet([fleet_dir])
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
    fleet = load_fleet([fleet_dir])
    history = views.trend(fleet)
    assert list(history.columns) == ["2026-11-20", "2026-11-21"]
    assert history.loc["beijing-1", "2026-11-21"] == "WARN"
    recent = load_fleet([fleet_dir], since=parse_since("2026-11-21"))
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


def test_review_reads_every_file_once(fleet_dir, monkeypatch):
    """Loading, every view and the page with its evidence: no report file is opened a second time."""
    reads: list[str] = []
    original = read.read_bytes

    def counted(path) -> bytes | str:
        reads.append(Path(path).name)
        return original(path)

    monkeypatch.setattr("envcheck.review.load.read_bytes", counted)
    result = review([fleet_dir])
    page = render_review_html(result)
    assert sorted(reads) == sorted(p.name for p in fleet_dir.glob("*.json")) and 'id="matrix"' in page


def test_evidence_is_each_latest_runs_own_entry(fleet_dir):
    """The entries kept while reading are those of the runs `views.latest` picks (a later file wins a tie)."""
    (fleet_dir / "beijing-1-day2x.json").write_text(
        json.dumps(dict(json.loads((fleet_dir / "beijing-1-day2.json").read_text()), envcheck_version="tie")))
    (section,) = review([fleet_dir]).sections
    assert len(section.evidence) == len(section.latest) == 10
    for row, target in zip(section.latest.itertuples(), section.evidence, strict=True):
        assert target == json.loads(Path(row.file).read_text())["targets"][row.target_index]
    assert {Path(f).name for f in section.latest["file"] if "beijing" in f} == {"beijing-1-day2x.json"}


def test_review_service_decides_what_the_command_reports(fleet_dir, tmp_path):
    result = review([fleet_dir, tmp_path / "nowhere"], since="2026-11-21")
    assert result.missing == [str(tmp_path / "nowhere")] and result.files_read == 1 and not result.nothing_read
    assert review([fleet_dir], since="2030-01-01").sections == []  # all older than --since: empty, not unreadable
    assert not review([fleet_dir], since="2030-01-01").nothing_read
    assert review([fleet_dir / "notes.json"]).nothing_read
    for bad in ("", "  ", "yesterday"):
        with pytest.raises(UsageError, match="is not a date"):
            review([fleet_dir], since=bad)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_tensorflow")
def test_review_of_reports_made_live_by_the_checker(run_cli, tmp_path, monkeypatch, golden_onednn_on):
    """oneDNN forced on, then off: another kernel choice on every x86 CPU (whatever its default)."""
    reports = tmp_path / "kept"  # where run_cli keeps every check's report
    for site, knob in (("plant-a", "1"), ("plant-b", "0")):
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", knob)
        run_cli("check", "--golden", str(golden_onednn_on), "--site", site)
    code, _, _, _ = run_cli("review", str(reports))
    fleet = load_fleet([reports])
    assert code == ExitCode.OK and fleet.files_read == 2
    assert views.verdict_matrix(fleet).loc["plant-b", "host"] == "WARN"
    assert len(views.equivalence_classes(fleet)) == 2


def test_latency_per_site_per_day(recorded_reports, tmp_path, run_cli):
    """P50 per site and its trend: beijing-1 twice as slow on its second day; reports without latency
    (the recorded ones) add nothing to the table."""
    root = tmp_path / "timed"
    root.mkdir()
    for day, p50_ms in (("2026-11-20", 0.7), ("2026-11-21", 1.4)):
        report = json.loads(json.dumps(recorded_reports["beijing-1"]))
        report["created"] = f"{day}T08:00:00Z"
        report["targets"][0]["latency"] = {"status": "ok", "target": {"p50_s": p50_ms / 1000}, "ratio_p50": p50_ms / 0.7}
        (root / f"beijing-{day}.json").write_text(json.dumps(report))
    (root / "xian.json").write_text(json.dumps(recorded_reports["xian-4-avx2"]))
    (section,) = review([root]).sections
    assert section.latency.loc["beijing-1"].tolist() == [0.7, 1.4]
    assert "xian-4" not in section.latency.index
    code, out, _, _ = run_cli("review", str(root), "--csv", str(tmp_path / "t.csv"), "--html", str(tmp_path / "t.html"))
    assert code == ExitCode.OK and "P50 latency (ms) per site per day" in out
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert sorted(r["latency_p50_ms"] for r in rows if r["latency_p50_ms"]) == ["0.7", "1.4"]
    assert "Latency: P50 (ms) per site per day" in (tmp_path / "t.html").read_text()


def test_consistency_and_top1_agreement_per_site(recorded_reports, tmp_path, run_cli):
    """The lowest output consistency and top-1 agreement of each run reach the CSV, and a cell of the matrix
    whose samples were not all consistent shows the rate beside its verdict (terminal and HTML)."""
    root = tmp_path / "rates"
    root.mkdir()
    report = json.loads(json.dumps(recorded_reports["beijing-1"]))
    outputs = report["targets"][0]["outputs"]
    for name, (consistency, top1) in zip(sorted(outputs), [(0.9643, 0.9643), (1.0, None)]):
        outputs[name].update(consistency=consistency, top1_agreement_all=top1)
    (root / "beijing.json").write_text(json.dumps(report))
    (root / "xian.json").write_text(json.dumps(recorded_reports["xian-4-avx2"]))  # recorded before the rates
    (section,) = review([root]).sections
    assert section.consistency.loc["beijing-1"].dropna().tolist() == [0.9643]
    code, out, _, _ = run_cli("review", str(root), "--csv", str(tmp_path / "r.csv"), "--html", str(tmp_path / "r.html"))
    assert code == ExitCode.OK and "96.43 %" in out
    rows = {r["site"]: r for r in csv.DictReader((tmp_path / "r.csv").open())}
    assert (rows["beijing-1"]["consistency"], rows["beijing-1"]["top1_agreement"]) == ("0.9643", "0.9643")
    assert (rows["xian-4"]["consistency"], rows["xian-4"]["top1_agreement"]) == ("", "")
    assert "96.43 %</small>" in (tmp_path / "r.html").read_text()
