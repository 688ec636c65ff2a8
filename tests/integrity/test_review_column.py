"""The review's column for installed-file and start-up-code findings (review/index.py)."""
from __future__ import annotations

import json

import pandas as pd

from envcheck.review.index import RUN_COLUMNS, report_rows


def _report() -> dict:
    from helpers import RECORDED_REPORTS

    return json.loads(next(iter(sorted(RECORDED_REPORTS.rglob("*.json")))).read_text())


def test_the_review_names_the_integrity_findings_of_each_target():
    document = _report()
    target = document["targets"][0]
    document["targets"] = [
        {**target, "findings": [{"code": "startup-code", "severity": "warn", "message": "m", "hint": "h"},
                                {"code": "installed-file-modified", "severity": "fail", "message": "m", "hint": "h"}]},
        {**target, "findings": []}]
    runs, _ = report_rows("r.json", pd.Timestamp("2026-12-07T00:00:00Z"), document)
    column = RUN_COLUMNS.index("integrity_findings")
    assert [run[column] for run in runs] == ["installed-file-modified, startup-code", None]


def test_the_review_page_lists_the_latest_runs_with_integrity_findings(tmp_path):
    """A reviewer reads which site's latest run has modified or unowned files or start-up code, linked to
    the run's evidence; a site without any is not listed."""
    from envcheck.report.fleet_html import render_review_html
    from envcheck.review import review

    document = _report()
    target = document["targets"][0]
    hotfixed = {**target, "site": "shenzhen-9",
                "findings": [{"code": "installed-file-modified", "severity": "fail", "message": "m", "hint": "h"}]}
    clean = {**target, "site": "beijing-2", "findings": []}
    for name, entry in (("hotfixed", hotfixed), ("clean", clean)):
        (tmp_path / f"{name}.json").write_text(json.dumps({**document, "targets": [entry]}))
    html = render_review_html(review([tmp_path]))
    section = html.split("Installed files and start-up code", 1)[1].split("</table>", 1)[0]
    assert "shenzhen-9" in section and "installed-file-modified" in section and 'href="#drill-' in section
    assert "beijing-2" not in section


def test_the_review_page_says_where_a_drifting_run_first_parts(tmp_path):
    """The same table of latest runs, for the first origin of a drifting run (review_golden.html latest_runs)."""
    from envcheck.report.fleet_html import render_review_html
    from envcheck.review import review

    document = _report()
    origin = {"key": "model/attention/MatMul", "op": "BatchMatMulV2", "error_ulp": 3}
    drifted = {**document["targets"][0], "site": "wuhan-7",
               "localization": {"status": "ok", "origins": [origin], "first_divergence": origin}}
    (tmp_path / "drifted.json").write_text(json.dumps({**document, "targets": [drifted]}))
    html = render_review_html(review([tmp_path]))
    section = html.split("Where drifting runs first part from the golden", 1)[1].split("</table>", 1)[0]
    assert "wuhan-7" in section and "model/attention/MatMul" in section and 'href="#drill-' in section
