"""textsafe: text from data made harmless for a terminal or CI log, a spreadsheet, Markdown, Prometheus."""
from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from envcheck.textsafe import csv_cell, for_terminal, markdown_text, prometheus_label

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HOSTILE = ["\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "a\rb", "\n::add-mask::secret", "::error::boom",
           "  ::warning file=x::y", "\u200b::error::zero-width", "x ##[error]y", "###vso[task.setvariable variable=a]1",
           "##teamcity[message text='x']", "\x9b2J\x85\x7f\x00", "\u202egnp.exe\u2066\u2069\u2028", "lone \ud800",
           "\tTab", "plain text stays", "back\\slash"]


@pytest.mark.parametrize("text", HOSTILE)
def test_for_terminal_leaves_no_control_and_starts_no_workflow_command(text):
    shown = for_terminal(text)
    assert not CONTROLS.search(shown)
    assert not shown.lstrip(" \t\u200b\ufeff").startswith("::")
    assert not re.search(r"##\w*\[", shown)
    assert for_terminal(shown) == shown  # the console may neutralise a renderer's line again: harmless
    shown.encode("utf-8")  # a lone surrogate would make writing the line raise


@pytest.mark.parametrize(("text", "shown"), [
    pytest.param("a\x1b[31mb", "a\\x1b[31mb", id="esc"),
    pytest.param("a\nb\rc\td", "a\\nb\\rc\\td", id="named"),
    pytest.param("\x9b\x7f", "\\x9b\\x7f", id="c1-del"),
    pytest.param("\u202eevil", "\\u202eevil", id="bidi"),
    pytest.param("::error::boom", "\\::error::boom", id="workflow-command"),
    pytest.param(" ::error::boom", "\\ ::error::boom", id="workflow-command-indented"),
    pytest.param("a ::error:: b", "a ::error:: b", id="mid-line-colons-are-text"),
    pytest.param("x ##vso[y]", "x #\\#vso[y]", id="azure"),
    pytest.param("site-3 · ünïcode 中文", "site-3 · ünïcode 中文", id="ordinary-text-unchanged"),
])
def test_for_terminal_shows_what_it_neutralised(text, shown):
    assert for_terminal(text) == shown


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cell_defuses_formulas(value):
    cell = csv_cell(value)
    assert cell.startswith("'") and not CONTROLS.search(cell)


@pytest.mark.parametrize("value", [-1.5, 3, None, True, "beijing-1", "a=b"])
def test_csv_cell_keeps_numbers_and_plain_text(value):
    assert csv_cell(value) == value


def test_markdown_text_breaks_mentions_and_references():
    shown = markdown_text("@all see #1 and !1, ~2 %3 &4 $5, [x](http://e) <b>|</b> $x$")
    assert not re.search(r"[@#!~%&$][\w\"]", shown)  # a sigil is never followed by what it would reference
    assert "\\[x\\](http://e)" in shown and "\\<b>\\|\\</b>" in shown and "\\$" in shown
    assert markdown_text("ENV_NAME 96 %") == "ENV_NAME 96 %"  # ordinary words stay readable


@pytest.mark.parametrize("value", ["a\rb", "a\r\nb", "a\nb", "\x1b[31m", "lone \ud800", 'q"uote\\'])
def test_prometheus_label_survives_a_reader(value, tmp_path):
    registry = CollectorRegistry()
    Gauge("envcheck_test", "test", ["site"], registry=registry).labels(prometheus_label(value)).set(1)
    path = tmp_path / "metrics.prom"
    path.write_bytes(generate_latest(registry))
    with open(path, encoding="utf-8") as stream:  # text mode, as a reader opens it: "\r" would end a line
        samples = [s for family in text_string_to_metric_families(stream.read()) for s in family.samples]
    (label,) = [s.labels["site"] for s in samples]
    assert label == prometheus_label(value) and not CONTROLS.search(label.replace("\n", ""))  # round-trips, shown


def test_prometheus_label_keeps_what_the_format_escapes_itself():
    assert prometheus_label('a\nb "c" \\') == 'a\nb "c" \\' and prometheus_label("a\rb") == "a\\rb"
