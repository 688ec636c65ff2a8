"""Markdown and JUnit renderers: snapshots over recorded real reports, and JUnit against its schema.
Then data stays data: a hostile report renders as text in Markdown, JUnit stays well-formed and valid,
new fields render, and the HTML pages' policy allows their own inline script and style only by hash."""
from __future__ import annotations

import base64
import copy
import hashlib
import html
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import pytest
import xmlschema
from markdown_it import MarkdownIt

from helpers import RECORDED_REPORTS, REPO
from envcheck.review import review
from envcheck.report.fleet_html import render_review_html
from envcheck.report.html import render_html
from envcheck.report.view import build_view
from envcheck.report.junit import render_junit
from envcheck.report.markdown import render_markdown

NAMES = sorted(p.stem for p in RECORDED_REPORTS.glob("*.json"))
SCHEMA = xmlschema.XMLSchema(str(REPO / "fixtures" / "junit" / "junit.xsd"))


@pytest.mark.parametrize("name", NAMES)
def test_markdown_snapshot(recorded_reports, snapshot, name):
    snapshot(f"{name}.md", render_markdown(build_view(recorded_reports[name])))


@pytest.mark.parametrize("name", NAMES)
def test_junit_snapshot(recorded_reports, snapshot, name):
    snapshot(f"{name}.xml", render_junit(build_view(recorded_reports[name])))


@pytest.mark.parametrize("name", NAMES)
def test_junit_is_valid_and_counts_match_the_verdicts(recorded_reports, name):
    report = recorded_reports[name]
    text = render_junit(build_view(report))
    SCHEMA.validate(text)
    suite = ET.fromstring(text).find("testsuite")
    verdicts = [t["verdict"] for t in report["targets"]]
    assert int(suite.get("tests")) == 4 * len(verdicts)
    assert int(suite.get("errors")) == verdicts.count("ERROR") == len(suite.findall("testcase/error"))
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
    assert (int(suite.get("failures")) > 0) == ("FAIL" in verdicts)


def test_junit_schema_rejects_a_broken_document():
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        SCHEMA.validate('<testsuites><testsuite name="x" tests="many"/></testsuites>')


def test_markdown_names_the_cause_of_reduced_precision(recorded_reports):
    text = render_markdown(build_view(recorded_reports["chengdu-5-bf16"]))
    assert text.startswith("### ❌ envcheck found drift (exit 1)")
    assert "ONEDNN_DEFAULT_FPMATH_MODE" in text and "unset → BF16" in text


def test_warn_fails_the_junit_fingerprint_check_only_with_fail_on_warn(recorded_reports):
    report = dict(recorded_reports["wuhan-2-onednn-off"])
    assert "<failure" not in render_junit(build_view(report))
    report["fail_on"] = "warn"
    assert 'name="fingerprint"' in render_junit(build_view(report)) and "<failure" in render_junit(build_view(report))


# ------------------------------------------------------------------ data stays data (issue "Safe reports")

MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
OUR_HTML_BLOCK = re.compile(r"<details><summary><code>[^<>]*</code> — [^<>]*</summary>\n|</details>\n")


def flat(tokens):
    for token in tokens:
        yield token
        yield from flat(token.children or [])


class TextOf(HTMLParser):
    """The text of an HTML fragment, entities decoded."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.feed(html)
        self.text = "\n".join(self.parts)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_markdown_shows_hostile_data_as_text_only(hostile):
    text = render_markdown(build_view(hostile.report))
    tokens = list(flat(MARKDOWN.parse(text)))
    types = Counter(t.type for t in tokens)
    # No link, image, inline HTML, emphasis or strikethrough: none of those is ours, so none can come from data.
    assert not {"link_open", "image", "html_inline", "em_open", "s_open"} & set(types), types
    assert all(OUR_HTML_BLOCK.fullmatch(t.content) for t in tokens if t.type == "html_block")
    assert types["heading_open"] == 1 and types["table_open"] == 1
    targets = hostile.report["targets"]
    assert types["tr_open"] == 1 + len(targets) and types["td_open"] == 5 * len(targets)  # no cell split by a `|`
    # Bold is ours only: each verdict in the table, each error kind, each finding code.
    assert types["strong_open"] == 2 * len(targets) + sum(bool(t["error"]) for t in targets)

    shown = TextOf(MARKDOWN.render(text)).text.replace("\u200d", "")  # (the invisible joiner that stops `~name`)
    hidden = ("envcheck_version", "created", "golden.path", "error.stderr_tail", "bucket", "image.tag", "image.label")
    for field, value in hostile.values.items():
        if field.split("#")[0] in hidden or field.endswith(".info") or field.startswith("reason#") and not field.endswith(".0"):
            continue  # not part of the Markdown summary
        assert value in shown, field


def test_markdown_code_spans_cannot_be_closed_by_data(recorded_reports):
    report = copy.deepcopy(recorded_reports["chengdu-5-bf16"])
    target = report["targets"][0]
    target["spec"] = "host`</code>`|x"
    target["outputs"] = {"a``b`": next(iter(target["outputs"].values()))}
    target["fingerprint_diff"][0]["path"] = "env.`X`\n\n# heading"
    tokens = list(flat(MARKDOWN.parse(render_markdown(build_view(report)))))
    codes = [t.content for t in tokens if t.type == "code_inline"]
    assert "host'</code>'|x" in codes and "a''b'" in codes and "env.'X'  # heading" in codes
    assert sum(t.type == "heading_open" for t in tokens) == 1


def test_junit_replaces_characters_xml_cannot_hold(recorded_reports):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    dirty = "nul\x00 bell\x07 esc\x1b[31m vt\x0b ff\x0c us\x1f lone\ud800 nonchar\ufffe tab\tok"
    for i, target in enumerate(report["targets"]):
        target["site"], target["spec"], target["hints"] = dirty, f"{dirty} {i}", [dirty]
        target["findings"] = [{"code": dirty, "severity": "fail", "message": dirty, "hint": dirty}]
        if target["error"]:
            target["error"].update(message=dirty, stderr_tail=dirty)
        elif target["fingerprint_diff"]:
            target["fingerprint_diff"][0].update(severity="fail", golden=dirty, target=dirty)
    text = render_junit(build_view(report))
    text.encode("utf-8")  # no lone surrogate left to break the file
    SCHEMA.validate(text)
    root = ET.fromstring(text)
    clean = "nul\ufffd bell\ufffd esc\ufffd[31m vt\ufffd ff\ufffd us\ufffd lone\ufffd nonchar\ufffd tab\tok"
    error = root.find(".//testcase/error")
    assert error.get("message") == f"tensorflow-not-importable: {clean}" and error.text == clean
    assert root.find(".//testcase").get("classname") == f"envcheck.{clean}.{clean} 0"
    assert all(clean in f.text for f in root.iter("failure"))


def test_junit_of_a_hostile_report_is_valid(hostile):
    text = render_junit(build_view(hostile.report))
    SCHEMA.validate(text)  # an unusable `created` leaves out the optional timestamp rather than break the file
    suite = ET.fromstring(text).find("testsuite")
    assert suite.get("timestamp") is None
    assert hostile.values["spec#0"] in suite.find("testcase").get("classname")


SET_DIFF = {"path": "cpu.tf_flags", "golden": ["amx_tile", "avx2", "avx512_fp16"], "target": ["avx2", "clzero"],
            "severity": "fail", "missing": ["avx512_fp16", "amx_tile"], "extra": ["clzero"]}
SET_LINE = "missing avx512_fp16, amx_tile; extra clzero"


def test_a_set_valued_difference_reads_as_missing_and_extra(recorded_reports):
    report = copy.deepcopy(recorded_reports["chengdu-5-bf16"])
    report["targets"][0]["fingerprint_diff"].insert(0, SET_DIFF)
    assert f"- fail: `cpu.tf_flags` {SET_LINE}" in render_markdown(build_view(report))
    assert f"[fail] cpu.tf_flags: {SET_LINE}" in render_junit(build_view(report))
    page = render_html(build_view(report))
    assert f'<td colspan="2">{SET_LINE}</td>' in page and "avx512_fp16&#39;" not in page


def test_statistics_that_are_none_show_as_a_dash(recorded_reports):
    """Integer and boolean outputs have no ULP or relative error: every renderer shows "—" there."""
    report = copy.deepcopy(recorded_reports["chengdu-5-bf16"])
    output = next(iter(report["targets"][0]["outputs"].values()))
    for key in ("max_abs", "mean_abs", "p99_abs", "max_rel", "p99_rel", "max_ulp", "p99_ulp", "changed_fraction",
                "top1_agreement", "min_passing_tolerance", "reason"):
        output[key] = None
    output["ulp_histogram"] = None
    assert "drift max — ULP, max rel —, would pass at tol —" in render_markdown(build_view(report))
    assert "class_probs: —" in render_junit(build_view(report))
    page = render_html(build_view(report))
    assert page.count('<td class="num">—</td>') >= 10 and "None" not in page


def test_page_policy_allows_only_its_own_inline_script_and_style(recorded_reports):
    for page in (render_html(build_view(recorded_reports["shenzhen-3"])), render_review_html(review([RECORDED_REPORTS]))):
        policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
        directives = {d.split()[0]: d.split()[1:] for d in html.unescape(policy.group(1)).split(";") if d.strip()}
        (script,) = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
        (style,) = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
        assert directives["default-src"] == ["'none'"]
        assert directives["script-src"] == [sha256_source(script)]  # no 'unsafe-inline', no other source
        assert directives["style-src"] == [sha256_source(style)]
        assert not re.search(r"<[^>]*\s(style|on\w+)=", page)  # the policy would block inline attributes


def sha256_source(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"
