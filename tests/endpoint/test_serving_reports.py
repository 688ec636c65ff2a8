"""An endpoint target's replica and load records in every report format, from a stored report (no server): the
lines say the counts, the odd replica and the percentiles, and a replica name from the server is data there."""
from __future__ import annotations

import copy
import json

import pytest
from helpers import RECORDED_REPORTS

from envcheck.report.html import render_html
from envcheck.report.markdown import render_markdown
from envcheck.report.terminal import render_plain
from envcheck.report.view import build_view, cleaned_view, serving_lines
from envcheck.textsafe import for_terminal

HOSTILE = "10.0.0.2:80\x1b[31m"
RECORDS = {
    "replicas": {"repeat": 6, "header": "X-Replica", "distinct": 2,
                 "answer_sets": [{"digest": "a" * 64, "count": 4, "repetitions": [0, 2, 3, 5],
                                  "replicas": ["10.0.0.1:80"]},
                                 {"digest": "b" * 64, "count": 2, "repetitions": [1, 4], "replicas": [HOSTILE]}],
                 "spread": [{"output": "probabilities", "max_abs": 1e-7, "max_ulp": 3}], "odd_replicas": [HOSTILE]},
    "load": {"concurrency": 2, "wall_s": 0.5, "answered": 20, "rate_per_s": 40.0, "p50_ms": 3.5, "p95_ms": 7.25,
             "p99_ms": 9.0, "errors": {"endpoint-timeout": 1}, "failed": 1},
}


@pytest.fixture
def document() -> dict:
    """A recorded report whose first target carries an endpoint's records."""
    stored = json.loads(sorted(RECORDED_REPORTS.glob("*.json"))[0].read_text())
    stored = copy.deepcopy(stored)
    stored["targets"][0]["verdict"] = "WARN"
    stored["targets"][0].setdefault("target", {}).update(copy.deepcopy(RECORDS))
    return stored


def test_the_records_read_as_two_lines():
    replicas, load = serving_lines(RECORDS)
    assert replicas.startswith("replicas: 6 repetitions, 2 answer sets (4× from 10.0.0.1:80 + 2× from ")
    assert "odd: 10.0.0.2:80" in replicas
    assert load == ("load: 2 clients, 20 answered (40.0/s), 1 failed (endpoint-timeout 1); "
                    "P50 3.5 ms, P95 7.25 ms, P99 9 ms")
    assert serving_lines({"load": {"p99_ms": "x", "errors": "y"}}) == (
        "load: — clients, — answered (—/s), — failed; P50 —, P95 —, P99 —",)
    assert serving_lines(None) == () and serving_lines({"kind": "docker"}) == ()


def test_every_format_shows_them_with_the_replica_name_as_data(document):
    view = build_view(document)
    plain = render_plain(cleaned_view(view, for_terminal))
    assert "replicas: 6 repetitions, 2 answer sets" in plain and "P99 9 ms" in plain
    assert "\x1b" not in plain
    assert "replicas: 6 repetitions" in render_markdown(view) and "P95 7.25 ms" in render_markdown(view)
    page = render_html(view)
    assert "replicas: 6 repetitions, 2 answer sets" in page and "P99 9 ms" in page and "\x1b[31m" not in page
