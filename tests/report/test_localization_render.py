"""Where the numbers first part (a target's `localization`, `compare A B`'s `localization_between`) in every
renderer: a line naming the first origin in the terminal, the CI log and Markdown, a per-layer chart with a
marker per origin and a table of origins on the page, a column in the fleet review; the report schema
describes both entries, and a hand-edited report with nonsense there still renders."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

from envcheck import schemas
from envcheck.report.fleet_csv import render_review_csv
from envcheck.report.fleet_html import render_review_html
from envcheck.report.fleet_terminal import render_review
from envcheck.report.html import render_html
from envcheck.report.junit import render_junit
from envcheck.report.markdown import render_markdown
from envcheck.report.terminal import render_plain, render_terminal
from envcheck.report.view import build_view
from envcheck.review import review
from envcheck.schemas import REPORT_SCHEMA
from helpers import set_at

QUERY = "functional_1/multi_head_attention_1/query_1/MatMul:0"
FIRST = f"{QUERY} (BatchMatMulV2), 1 ULP"
SUMMARY = (f"first divergence at `{QUERY}` (BatchMatMulV2), 1 ULP, grows ×2.5 to the output (3 more origin(s); "
           "origins by op: BatchMatMulV2 ×3, DepthwiseConv2dNative ×1)")
ORIGINS = [  # (key, op, index, error_abs, error_ulp): as a real check of the built-in model wrote them
    (QUERY, "BatchMatMulV2", 36, 2.384e-07, 1.0),
    ("functional_1/multi_head_attention_1/key_1/MatMul:0", "BatchMatMulV2", 37, 2.384e-07, 1.0),
    ("functional_1/multi_head_attention_1/value_1/MatMul:0", "BatchMatMulV2", 38, 1.192e-07, 1.0),
    ("functional_1/depthwise_conv2d_1/depthwise:0", "DepthwiseConv2dNative", 60, 2.98e-08, 0.5),
]
INHERITED = {40: ("functional_1/multi_head_attention_1/query_1/Reshape:0", "Reshape", 1.0),
             48: ("functional_1/multi_head_attention_1/einsum/Einsum:0", "Einsum", 3.0),
             75: ("functional_1/dense_2_1/BiasAdd:0", "BiasAdd", None),  # diverges by an unknown amount
             120: ("functional_1/class_probs_1/Softmax:0", "Softmax", 2.5)}
LAYERS = 121


def tensor(key: str, op: str, index: int, error_abs: float, error_ulp: float) -> dict:
    """A localization's entry for one tensor."""
    return {"key": key, "op": op, "index": index, "error_abs": error_abs, "error_ulp": error_ulp}


def layers(origins=ORIGINS, inherited=INHERITED) -> list[list]:
    """The per-layer series: identical layers, the origins, and errors they pass on."""
    series: list[list] = [[f"functional_1/layer_{i}:0", "AddV2", 0, False] for i in range(LAYERS)]
    for key, op, index, _, ulp in origins:
        series[index] = [key, op, ulp, True]
    for index, (key, op, ulp) in inherited.items():
        series[index] = [key, op, ulp, False]
    return series


def drifted(**changes) -> dict:
    """A target's localization as `envcheck check` writes it for a drifted target (oneDNN off)."""
    entry = {
        "status": "ok", "against": "golden", "mode": "unfused: every recorded tensor fetched, Grappler's remapper off",
        "samples": 4, "coverage": {"matched": LAYERS, "reference": LAYERS, "target": LAYERS, "complete": True},
        "divergent": 68, "first_divergence": tensor(*ORIGINS[0]), "origins": [tensor(*o) for o in ORIGINS],
        "origin_ops": {"BatchMatMulV2": 3, "DepthwiseConv2dNative": 1},
        "largest_jump": dict(tensor(INHERITED[48][0], "Einsum", 48, 3.576e-07, 3.0), factor=3.0,
                             **{"from": "functional_1/multi_head_attention_1/key_1/Add:0"}),
        "growth_to_output": {"output": "class_probs", "key": INHERITED[120][0], "error_ulp": 2.5, "factor": 2.5},
        "fused_only": False,
        "unfused_equals_fused": {"reference": {"class_probs": False, "embedding": False},
                                 "target": {"class_probs": True, "embedding": True}},
        "layers": layers(), "summary": SUMMARY}
    return {**entry, **changes}


IDENTICAL = dict(drifted(), status="identical", divergent=0, first_divergence=None, origins=[], origin_ops={},
                 largest_jump=None, growth_to_output=None, layers=layers((), {}),
                 summary="every recorded layer is bitwise identical")
UNSUPPORTED = {"status": "unsupported", "reason": "the target has no layer record"}


def localized(recorded: dict, entries: list, between: dict | None = None) -> dict:
    """A copy of a recorded report with `entries[i]` as target i's localization (None: none)."""
    report = copy.deepcopy(recorded)
    for target, entry in zip(report["targets"], entries, strict=False):
        if entry is not None:
            target["localization"] = entry
    if between is not None:
        report["localization_between"] = between
    return report


@pytest.fixture
def shenzhen(recorded_reports) -> dict:
    """shenzhen-3: the WARN target (oneDNN off) drifted, the FAIL target could not be localized; plus the
    localization of `compare A B`."""
    return localized(recorded_reports["shenzhen-3"], [drifted(), UNSUPPORTED],
                     between=dict(drifted(against="capture-a"), a="capture-a", b="capture-b"))


def console_text(renderable) -> str:
    """What the terminal shows, wide enough that no line wraps."""
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


# ------------------------------------------------------------------------------- terminal and CI log

def test_terminal_names_the_first_origin(shenzhen):
    """One `where:` line per target that is not IDENTICAL; the pair of captures after the targets."""
    shown = console_text(render_terminal(build_view(shenzhen)))
    assert f"where: {SUMMARY}" in shown
    assert "where: localization unsupported (the target has no layer record)" in shown
    lines = [line.strip() for line in shown.splitlines()]
    assert lines[-2] == f"where: between capture-a and capture-b: {SUMMARY}" and lines[-1].startswith("exit 3")


def test_ci_log_puts_the_line_under_its_target(shenzhen):
    """The plain lines: indented under the target they describe, the captures' line before the exit."""
    lines = render_plain(build_view(shenzhen)).splitlines()
    warn = next(i for i, line in enumerate(lines) if line.startswith("WARN"))
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert [line.strip() for line in lines[warn:fail]].count(f"where: {SUMMARY}") == 1
    assert any(line.strip() == "where: localization unsupported (the target has no layer record)"
               for line in lines[fail:])
    assert lines[-2] == f"where: between capture-a and capture-b: {SUMMARY}"


def test_identical_layers_keep_the_terminal_quiet(recorded_reports):
    """A target whose every layer is bitwise identical adds nothing to the terminal, the log or Markdown."""
    report = localized(recorded_reports["beijing-1"], [IDENTICAL, IDENTICAL])
    view = build_view(report)
    assert view.targets[0].localization.status == "identical" and view.targets[0].where is None
    assert "where" not in render_plain(view) and "where" not in console_text(render_terminal(view))
    assert "first part" not in render_markdown(view)


def test_a_report_without_a_summary_gets_the_checkers_sentence(shenzhen):
    """A hand-edited report without `summary`: the view words it from the fields, as the checker does."""
    for entry in shenzhen["targets"][0]["localization"], IDENTICAL:
        trimmed = {key: value for key, value in entry.items() if key != "summary"}
        report = localized(shenzhen, [trimmed])
        assert build_view(report).targets[0].localization.summary == entry["summary"]


# ------------------------------------------------------------------------------------------- HTML

class Svg(HTMLParser):
    """The SVG charts of a page section: per chart, its origin markers' tooltips."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.charts: list[list[str]] = []
        self._marker = False
        self._title: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        """A chart opens; a marker opens; its tooltip opens."""
        attributes = dict(attrs)
        if tag == "svg":
            self.charts.append([])
        elif tag == "rect":
            self._marker = attributes.get("class") == "origin"
        elif tag == "title" and self._marker:
            self._title = []

    def handle_data(self, data):
        """The tooltip's text."""
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag):
        """A tooltip or a marker ends."""
        if tag == "title" and self._title is not None:
            self.charts[-1].append("".join(self._title))
            self._title = None
        elif tag == "rect":
            self._marker = False


def section(page: str, anchor: str) -> str:
    """The <section> of one target."""
    return re.search(rf'<section class="target" id="{anchor}">.*?</section>', page, re.DOTALL).group()


def test_html_draws_the_error_per_layer_with_a_marker_per_origin(shenzhen):
    """The section of the drifted target: the sentence, a chart with one marker per origin (its tooltip
    names key, op and ULP), and a table of the origins."""
    page = render_html(build_view(shenzhen))
    drifted_part = section(page, "target-0")
    assert f"<b>where</b>: first divergence at <code>{QUERY}</code> (BatchMatMulV2), 1 ULP" in drifted_part
    (markers,) = [chart for chart in Svg(drifted_part).charts if chart]
    assert markers == [f"origin: {key} ({op}), {'below 1 ULP' if ulp < 1 else '1 ULP'}"
                       for key, op, _, _, ulp in ORIGINS]
    assert 'aria-label="error per layer vs golden (ULP, log scale; ◆ origin)"' in drifted_part
    assert "dense_2_1/BiasAdd:0 (BiasAdd): error unknown" in drifted_part
    assert all(f"<tr><td><code>{key}</code></td><td>{op}</td>" in drifted_part for key, op, *_ in ORIGINS)
    assert "localization unsupported (the target has no layer record)" in section(page, "target-1")
    assert "<svg" not in section(page, "target-1").split("<b>where</b>")[1]  # nothing to draw
    assert "Where <code>capture-b</code> parts from <code>capture-a</code>" in page
    assert page.count('class="origin"') == 2 * len(ORIGINS)  # the target's chart and the captures' chart


def test_html_identical_layers_draw_no_chart(recorded_reports):
    """Every layer bitwise identical: the sentence says so, and there is no flat chart."""
    page = render_html(build_view(localized(recorded_reports["beijing-1"], [IDENTICAL])))
    host = section(page, "target-0")
    assert "<b>where</b>: every recorded layer is bitwise identical" in host and "<svg" not in host


HOSTILE_KEY = "\"><script>window.__pwned=1</script><i>`italic`</i>"
HOSTILE_OP = "' onmouseover='window.__pwned=1"


def test_html_escapes_a_hostile_key(shenzhen):
    """A key or op from a report is text wherever it is written: sentence, chart tooltip, table cell."""
    origins = [(HOSTILE_KEY, HOSTILE_OP, 36, 2.4e-07, 1.0), *ORIGINS[1:]]
    entry = drifted(origins=[tensor(*o) for o in origins], first_divergence=tensor(*origins[0]),
                    layers=layers(origins), summary=f"first divergence at `{HOSTILE_KEY}` ({HOSTILE_OP}), 1 ULP")
    page = render_html(build_view(localized(shenzhen, [entry])))
    assert "<script>window" not in page and "<i>" not in page and page.count("<script>") == 1
    assert not re.search(r"<[^>]*\s(style|on\w+)=", page)
    escaped = "&#34;&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;i&gt;"
    assert page.count(escaped) >= 3  # the sentence, the marker's tooltip, the origins table
    assert Svg(section(page, "target-0")).charts[-1][0].startswith(f"origin: {HOSTILE_KEY} ({HOSTILE_OP})")


# --------------------------------------------------------------------------------------- Markdown

def test_markdown_has_a_line_per_drifted_target(shenzhen):
    """The summary per target that is not IDENTICAL, its key a code span, and the pair of captures."""
    text = render_markdown(build_view(shenzhen))
    assert f"- `docker:envcheck-fixture/onednn-off` @ shenzhen-3: {SUMMARY}" in text
    assert ("- `docker:envcheck-fixture/tf-older` @ shenzhen-3: localization unsupported (the target has no layer "
            "record)") in text
    assert f"- between `capture-a` and `capture-b`: {SUMMARY}" in text
    codes = [t.content for t in inline_tokens(text) if t.type == "code_inline"]
    assert codes.count(QUERY) == 2 and codes.count("capture-a") == 1


def inline_tokens(text: str) -> list:
    """The inline tokens of a Markdown text (code spans, links, emphasis, inline HTML …)."""
    return [t for block in MarkdownIt("commonmark").parse(text) for t in (block.children or [])]


@pytest.mark.parametrize("key", ["[x](https://evil.example) <img src=x> **b**", "a`b <img src=x>", "`", "_x_ *y*"])
def test_markdown_keeps_a_hostile_key_as_text(shenzhen, key):
    """A key with a link, a tag, emphasis or backticks (an odd number breaks the sentence's code spans: it is
    then all text): no link, no HTML and no emphasis comes out of the line."""
    entry = drifted(summary=f"first divergence at `{key}` ({key}), 1 ULP", growth_to_output=None)
    text = render_markdown(build_view(localized(shenzhen, [entry])))
    (line,) = [line for line in text.splitlines() if line.startswith("- `docker:envcheck-fixture/onednn-off`")]
    types = {t.type for t in inline_tokens(line)}
    assert not {"link_open", "image", "html_inline", "em_open", "strong_open"} & types, types
    assert "code_inline" in types  # the spec


# ------------------------------------------------------------------------------------- fleet review

@pytest.fixture
def fleet(tmp_path, recorded_reports, shenzhen):
    """Two sites: shenzhen-3 (drifted, unsupported) and beijing-1 (its host's layers identical)."""
    root = tmp_path / "fleet"
    root.mkdir()
    (root / "shenzhen.json").write_text(json.dumps(shenzhen))
    (root / "beijing.json").write_text(json.dumps(localized(recorded_reports["beijing-1"], [IDENTICAL])))
    return review([root])


def test_review_csv_carries_the_first_origin(fleet):
    """`first_divergence` words each run's first origin; its key, op and ULP stand beside it."""
    rows = {(r["site"], r["spec"]): r for r in csv.DictReader(io.StringIO(render_review_csv(fleet)))}
    onednn = rows[("shenzhen-3", "docker:envcheck-fixture/onednn-off")]
    assert onednn["localization_status"] == "ok" and onednn["first_divergence"] == FIRST
    assert (onednn["first_divergence_key"], onednn["first_divergence_op"], onednn["first_divergence_ulp"]) == (
        QUERY, "BatchMatMulV2", "1.0")
    older = rows[("shenzhen-3", "docker:envcheck-fixture/tf-older")]
    assert (older["localization_status"], older["first_divergence"]) == ("unsupported", "")
    assert (rows[("beijing-1", "host")]["localization_status"], rows[("beijing-1", "host")]["first_divergence"]) == (
        "identical", "")
    assert rows[("shenzhen-3", "docker:envcheck-fixture/no-tf")]["localization_status"] == ""  # no entry at all


def test_review_terminal_and_page_show_where_drifting_runs_part(fleet):
    """A table of the latest runs with a first origin, in the terminal and on the page (linked to the evidence,
    where the run's chart is)."""
    shown = console_text(render_review(fleet))
    assert "first divergence per site × target (latest run)" in shown and FIRST in shown
    page = render_review_html(fleet)
    table = re.search(r'<table class="sortable" id="divergences">.*?</table>', page, re.DOTALL).group()
    assert table.count("<tr>") == 2 and f"<td>{FIRST}</td>" in table  # header + the one drifted run
    anchor = re.search(r'<a href="#(drill-\d+)">', table).group(1)
    assert 'class="origin"' in section(page, anchor)


def test_review_without_localizations_shows_no_table(recorded_reports, tmp_path):
    """Reports from before localization: no table, empty columns."""
    (tmp_path / "b.json").write_text(json.dumps(recorded_reports["beijing-1"]))
    reviewed = review([tmp_path])
    assert "first divergence" not in console_text(render_review(reviewed))
    assert 'id="divergences"' not in render_review_html(reviewed)
    assert {row["first_divergence"] for row in csv.DictReader(io.StringIO(render_review_csv(reviewed)))} == {""}


# ------------------------------------------------------------------------------------------ schema

def test_reports_with_localizations_validate(shenzhen, recorded_reports):
    """Drifted, identical, unsupported and between-captures entries all match the published schema."""
    assert schemas.problems(REPORT_SCHEMA, shenzhen) == []
    assert schemas.problems(REPORT_SCHEMA, localized(recorded_reports["beijing-1"], [IDENTICAL])) == []
    assert schemas._shortcut(REPORT_SCHEMA)(shenzhen)  # the fast path agrees


@pytest.mark.parametrize("path, value, says", [
    (("targets", 0, "localization", "status"), "maybe", "$.targets[0].localization.status: must be one of"),
    (("targets", 1, "localization", "reason"), KeyError, "$.targets[1].localization.reason: required but missing"),
    (("targets", 0, "localization", "layers", 3, 2), "3", "$.targets[0].localization.layers[3][2]: must be a number"),
    (("targets", 0, "localization", "origins", 0, "key"), KeyError, "origins[0].key: required but missing"),
    (("localization_between", "b"), KeyError, "$.localization_between.b: required but missing"),
])
def test_broken_localizations_are_named(shenzhen, path, value, says):
    """What the schema knows of a localization is checked, and the problem located."""
    document = copy.deepcopy(shenzhen)
    set_at(document, path, value)
    found = [str(p) for p in schemas.problems(REPORT_SCHEMA, document)]
    assert any(says in problem for problem in found), found


def test_new_keys_in_a_localization_are_allowed(shenzhen):
    """The schema stays open: a later envcheck may add keys, and a fifth value to a layer."""
    document = copy.deepcopy(shenzhen)
    entry = document["targets"][0]["localization"]
    entry["new_field"] = {"x": 1}
    entry["layers"][0].append(1e-7)
    entry["origins"][0]["new"] = True
    assert schemas.problems(REPORT_SCHEMA, document) == []


# ------------------------------------------------------------------------------ hand-edited reports

GARBAGE = [
    "junk", 42, [], True,
    {"status": 7, "summary": None, "origins": "x", "first_divergence": {"key": ["a"], "op": None, "error_ulp": "big"},
     "origin_ops": {"A": "b", "B": None, "C": 2}, "growth_to_output": "x",
     "layers": [[1], "a", [None, None, "x", "yes"], [1, 2, float("nan"), True], [1, 2, -3, True],
                ["k", "op", float("inf"), 1], {"a": 1}, ["k", "op", 1.7e308, True]]},
    {"status": "ok", "layers": {"a": 1}, "origins": [1, None, {"key": 5, "index": "x"}], "summary": ["a"]},
    {"status": "ok", "summary": "   ", "first_divergence": "x", "layers": [["k", "op", 1e-300, False]]},
    {"status": "unsupported", "reason": {"why": ["<b>"]}},
    {"status": "ok", "origins": [{"key": "k", "op": "o", "error_ulp": 2}], "origin_ops": {"o": True},
     "growth_to_output": {"factor": "2"}, "layers": []},
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=lambda value: type(value).__name__)
def test_garbage_localizations_render_without_raising(shenzhen, garbage):
    """Every renderer draws a report whose localization holds values of unexpected types, as text."""
    report = localized(shenzhen, [garbage, garbage], between=garbage)
    view = build_view(report)
    assert isinstance(view.targets[0].localization.summary, str)
    console_text(render_terminal(view))
    render_plain(view)
    page = render_html(view)
    assert "['<b>']" not in page
    for chart in re.findall(r"<svg[^>]*aria-label=\"error per layer.*?</svg>", page, re.DOTALL):
        numbers = re.findall(r' (?:x|y|width|height)="([^"]*)"', chart)
        assert numbers and all(re.fullmatch(r"-?[0-9.]+", n) for n in numbers), numbers  # no nan, no inf
    render_markdown(view)
    render_junit(view)
