"""Chart labels never overlap: in a real headless Chromium at a desktop width (1400 px) and a phone's (390 px),
a script measures the box of every text of every chart (`getBoundingClientRect`) and finds no two that
intersect, on a run report and on a fleet review whose histograms have many buckets.

The measuring script is injected by the harness (report.test_html_browser.with_check, allowed by its own hash
added to the page's policy), never by the page: the page keeps its one hashed script."""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from envcheck.compare.latency import LatencyPolicy, compare_latency, reference_latency
from envcheck.report.fleet_html import render_review_html
from envcheck.report.html import render_html
from envcheck.report.html_common import histogram
from envcheck.report.view import build_view
from envcheck.review import review
from helpers import write_reports
from report.test_html_browser import QUIET, Dom, chromium, recording_proxy, with_script  # noqa: F401 (a fixture)

# The boxes of every chart's texts, the pairs of one chart that intersect (by more than half a pixel, for
# anti-aliasing), written on <html> for --dump-dom to carry out.
MEASURE = ("var found = {charts: 0, texts: 0, overlaps: []}; "
           "document.querySelectorAll('svg').forEach(function (svg) { found.charts += 1; "
           "var boxes = Array.from(svg.querySelectorAll('text')).map(function (t) { "
           "var r = t.getBoundingClientRect(); return {text: t.textContent, l: r.left, r: r.right, t: r.top, b: r.bottom}; }); "
           "found.texts += boxes.length; "
           "boxes.forEach(function (a, i) { boxes.slice(i + 1).forEach(function (b) { "
           "if (Math.min(a.r, b.r) - Math.max(a.l, b.l) > 0.5 && Math.min(a.b, b.b) - Math.max(a.t, b.t) > 0.5) "
           "{ found.overlaps.push([a.text, b.text]); } }); }); }); "
           "document.documentElement.setAttribute('data-labels', JSON.stringify(found));")

# ULP buckets as the probe labels them, the widest it writes; latency buckets of 0.1 ms.
ULP_BUCKETS = [["0", 5], ["1", 40], ["2–3", 300], ["4–7", 2000], ["8–15", 9000], ["16–63", 12000], ["64–255", 30000],
               ["256–1023", 45000], ["1024–63k", 202000], ["≥64k", 120000]]
LATENCY_BUCKETS = [[f"{tenth / 10:.1f}–{(tenth + 1) / 10:.1f} ms", 50 + 37 * tenth] for tenth in range(4, 20)]
FINGERPRINT = {"cpu": {"model": "AMD EPYC 7B13", "tf_flags": ["avx", "avx2"]}, "tensorflow": {}}


def with_many_buckets(report: dict) -> dict:
    """The report with every output's histograms at their widest and a latency histogram of 16 buckets."""
    document = copy.deepcopy(report)
    for target in document["targets"]:
        for stats in (target.get("outputs") or {}).values():
            stats["ulp_histogram"] = ULP_BUCKETS
            stats["sample_error_histogram"] = ULP_BUCKETS
        measured = {"p50_s": 0.0009, "p90_s": 0.0012, "p99_s": 0.0018, "calls": 900, "batch": 1,
                    "block_p50_s": [0.0009] * 3, "histogram": LATENCY_BUCKETS,
                    "context": {"visible_cpus": 2, "cpu_quota_cpus": 2, "intra_op_threads": 2}}
        target["latency"], _ = compare_latency(measured, FINGERPRINT, reference_latency(measured, FINGERPRINT),
                                               LatencyPolicy())
    return document


def measure(page: Path, proxy: str, width: int) -> dict:
    """The MEASURE result of `page` opened in a window `width` px wide."""
    result = subprocess.run([chromium(), *QUIET, f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>",
                             f"--user-data-dir={page.parent / (page.stem + f'-{width}-profile')}",
                             f"--window-size={width},2000", "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                            check=True, capture_output=True, text=True, timeout=120)
    return json.loads(Dom(result.stdout).elements[0][1]["data-labels"])


def page_with_measure(html: str, tmp_path: Path, name: str) -> Path:
    """The page with MEASURE after its own script, under its own policy (plus MEASURE's hash)."""
    page = tmp_path / f"{name}.html"
    page.write_text(with_script(html, MEASURE))
    return page


@pytest.mark.parametrize("width", [1400, 390], ids=["desktop", "phone"])
def test_run_report_chart_labels_do_not_overlap(recorded_reports, recording_proxy, tmp_path, width):
    proxy, _ = recording_proxy
    html = render_html(build_view(with_many_buckets(recorded_reports["chengdu-5-bf16"])))
    found = measure(page_with_measure(html, tmp_path, "report"), proxy, width)
    assert found["charts"] >= 3 and found["texts"] > 20  # the histograms and the latency chart were measured
    assert found["overlaps"] == []


@pytest.mark.parametrize("width", [1400, 390], ids=["desktop", "phone"])
def test_fleet_review_chart_labels_do_not_overlap(recorded_reports, recording_proxy, tmp_path, width):
    proxy, _ = recording_proxy
    folder = write_reports(tmp_path / "reports", {name: with_many_buckets(report)
                                                  for name, report in recorded_reports.items()})
    html = render_review_html(review([folder]))
    found = measure(page_with_measure(html, tmp_path, "review"), proxy, width)
    assert found["charts"] >= 10 and found["texts"] > 100
    assert found["overlaps"] == []


@pytest.mark.control
def test_control_overlapping_labels_are_found(recording_proxy, tmp_path):
    """The measurement can fail: two labels drawn at one place are reported."""
    proxy, _ = recording_proxy
    html = ('<html><body><svg width="200" height="50" xmlns="http://www.w3.org/2000/svg">'
            '<text x="10" y="20" font-size="10">256–1023</text><text x="30" y="20" font-size="10">1024–63k</text>'
            '</svg></body></html>')
    page = tmp_path / "control.html"
    page.write_text(with_script(html, MEASURE, policy=False))
    assert measure(page, proxy, 390)["overlaps"] == [["256–1023", "1024–63k"]]


def test_every_bucket_keeps_its_label_in_the_tooltip():
    """Thinned labels are not lost: the bar's tooltip (template) names every bucket; the drawn ones are spaced."""
    chart = histogram(LATENCY_BUCKETS, "latency")
    assert [bar["label"] for bar in chart["bars"]] == [label for label, _ in LATENCY_BUCKETS]
    drawn = [bar["shown_label"] for bar in chart["bars"] if bar["shown_label"]]
    assert 1 < len(drawn) < len(LATENCY_BUCKETS)
