"""Prometheus metrics of a run and of a fleet: parsed back with prometheus_client's own parser, label values
from reports escaped, unknown values absent rather than zero."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from envcheck.errors import ExitCode
from envcheck.report.metrics import render_metrics
from envcheck.report.view import build_view
from hostile.cases import good_capture


def _samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_a_run_becomes_gauges_per_target(recorded_reports):
    samples = _samples(render_metrics(build_view(recorded_reports["shenzhen-3"])))
    verdicts = {(s.labels["target"], s.labels["verdict"]) for s in samples["envcheck_verdict"]}
    assert ("docker:envcheck-fixture/tf-older", "FAIL") in verdicts and len(verdicts) == 4
    assert all(s.labels["site"] == "shenzhen-3" and s.value == 1 for s in samples["envcheck_verdict"])
    ulp = {(s.labels["target"], s.labels["output"]): s.value for s in samples["envcheck_output_max_ulp"]}
    assert ulp[("docker:envcheck-fixture/onednn-off", "embedding")] == 530
    assert not any(target.endswith("no-tf") for target, _ in ulp)  # an ERROR target has no ULP: absent, not 0
    assert [s.value for s in samples["envcheck_exit_code"]] == [3]
    created = recorded_reports["shenzhen-3"]["created"]
    assert samples["envcheck_last_run_timestamp_seconds"][0].value == _seconds(created)
    assert "envcheck_latency_p50_seconds" not in samples or not samples["envcheck_latency_p50_seconds"]


def test_label_values_from_reports_are_escaped(recorded_reports):
    report = copy.deepcopy(recorded_reports["beijing-1"])
    hostile = 'docker:evil"} envcheck_exit_code 0\n# x\\'
    report["targets"][0]["spec"] = hostile
    report["targets"][0]["site"] = "line\nbreak"
    report["targets"][0]["latency"] = {"status": "ok", "target": {"p50_s": 0.0007}}
    report["targets"][0]["findings"] = [{"code": "cpu-quota-below-threads", "severity": "warn", "message": "m",
                                        "hint": "h"}]
    text = render_metrics(build_view(report))
    samples = _samples(text)
    assert [s.value for s in samples["envcheck_exit_code"]] == [report["exit_code"]]  # no injected sample
    (latency,) = samples["envcheck_latency_p50_seconds"]
    assert latency.labels == {"site": "line\nbreak", "target": hostile} and latency.value == 0.0007
    (finding,) = samples["envcheck_findings"]
    assert finding.labels["code"] == "cpu-quota-below-threads" and finding.value == 1


def test_check_and_review_write_metrics_files(run_cli, tmp_path, recorded_reports):
    metrics = tmp_path / "run.prom"
    code, out, _, report = run_cli("compare", str(good_capture(tmp_path)), "--metrics", str(metrics))
    assert str(metrics) in out and report["exit_code"] == code
    samples = _samples(metrics.read_text())
    assert [s.value for s in samples["envcheck_exit_code"]] == [code]
    reports = tmp_path / "reports"
    reports.mkdir()
    for name, document in recorded_reports.items():
        (reports / f"{name}.json").write_text(json.dumps(document))
    fleet = tmp_path / "fleet.prom"
    code, _, _, _ = run_cli("review", str(reports), "--metrics", str(fleet))
    assert code == ExitCode.OK
    samples = _samples(fleet.read_text())
    sites = {s.labels["site"] for s in samples["envcheck_verdict"]}
    assert sites == {"beijing-1", "chengdu-5", "shenzhen-3", "wuhan-2", "xian-4"}
    assert "envcheck_exit_code" not in samples  # a review decides no exit code of a run
    assert samples["envcheck_last_run_timestamp_seconds"][0].value == max(
        _seconds(d["created"]) for d in recorded_reports.values())


def _seconds(created: str) -> float:
    return datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
