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
