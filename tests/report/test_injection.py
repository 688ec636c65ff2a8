"""Data from targets never reaches a terminal, a CI log, a spreadsheet, Markdown or metrics as a command.

Recorded real reports are poisoned where a target (or whoever wrote the report) controls the text: site and
target names, env values, error messages, findings, hints, output names, image tags and labels. Each renderer's
pure function must then show that text, never obey it."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from envcheck.report.fleet_csv import render_review_csv
from envcheck.report.fleet_metrics import render_review_metrics
from envcheck.report.fleet_terminal import render_review, skipped_lines
from envcheck.report.html import render_html
from envcheck.report.html_common import TEMPLATES, environment
from envcheck.report.markdown import render_markdown
from envcheck.report.metrics import render_metrics
from envcheck.report.terminal import render_plain, render_terminal
from envcheck.report.view import build_view
from envcheck.review import review
from envcheck.textsafe import prometheus_label

# A terminal hyperlink, a line rewrite, GitHub workflow commands on their own line and at the start of one,
# Azure's and GitHub's legacy commands mid-line, an 8-bit CSI, a bidi override, rich markup, a lone surrogate.
POISON = ("\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\\rrewritten\n::add-mask::secret\n"
          "::error::boom ##vso[task.setvariable variable=x]1 ##[error]y \x9b2J \u202eevil [link=http://e]m[/link] \ud800")
WORKFLOW_LEAD = "::error::boom"
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""Every control character but the newline that ends a line."""
FLEET_POISON = POISON.replace("\ud800", "")
"""(The review's index cannot store a lone surrogate yet: reported, not this file's renderers' concern.)"""
CSV_INJECTION = '=HYPERLINK("http://x","y")'
MENTIONS = "@all #1 !1"


def poisoned(value: Any) -> Any:
    """Every string of a report (and every output name) begins a workflow command and carries POISON."""
    if isinstance(value, str):
        return f"{WORKFLOW_LEAD}{value}{POISON}"
    if isinstance(value, list):
        return [poisoned(item) for item in value]
    if isinstance(value, dict):
        return {key: poisoned(item) for key, item in value.items()}
    return value


def poisoned_report(recorded: dict) -> dict:
    report = poisoned(copy.deepcopy(recorded))
    for target in report["targets"]:
        target["outputs"] = {poisoned(name): stats for name, stats in (target["outputs"] or {}).items()}
    return report


def assert_inert(text: str) -> None:
    """No control character reaches the output raw, no line begins a workflow command, no `##…[` anywhere."""
    assert not CONTROLS.search(text), repr(CONTROLS.search(text))
    lines = text.split("\n")
    assert not [line for line in lines if line.lstrip().startswith("::")]
    assert not re.search(r"##\w*\[", text)


def rich_text(renderable) -> str:
    """What a terminal receives (no colour, so any escape sequence in it came from data)."""
    console = Console(file=io.StringIO(), width=400, color_system=None, force_terminal=True, soft_wrap=False)
    console.print(renderable)
    return console.file.getvalue()


@pytest.mark.parametrize("name", ["shenzhen-3", "wuhan-2-onednn-off", "chengdu-5-bf16"])
def test_a_poisoned_report_is_inert_in_the_ci_log_and_the_terminal(recorded_reports, name):
    view = build_view(poisoned_report(recorded_reports[name]))
    for text in (render_plain(view), rich_text(render_terminal(view))):
        assert_inert(text)
        assert "\\n::add-mask::secret" in text and "\\x1b]8;;http://evil.example/" in text  # shown, not obeyed
        assert "[link=http://e]m[/link]" in text  # rich markup in data stays text


def test_a_site_that_is_a_workflow_command_cannot_start_a_ci_log_line(recorded_reports):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    for target in report["targets"]:
        target["site"], target["verdict"] = "\n::add-mask::secret", "::error::boom"
    text = render_plain(build_view(report))
    assert_inert(text)
    assert "\\::error::boom" in text


def _fleet(tmp_path: Path, recorded: dict, **fields: str) -> Path:
    """A folder with one schema-valid report whose targets' site, spec, env values, findings and hints hold
    the given text (by field), and a skipped file whose name is poison."""
    report = copy.deepcopy(recorded)
    for target in report["targets"]:
        target["site"] = fields.get("site", target["site"])
        target["spec"] = fields.get("spec", "") + target["spec"]
        target["hints"] = [fields.get("hint", "") + hint for hint in target["hints"]]
        for difference in target["fingerprint_diff"]:
            if difference["path"].startswith("env."):
                difference["golden"], difference["target"] = fields.get("env", "1"), fields.get("env", "0")
        for finding in target.get("findings") or []:
            finding["message"] = fields.get("hint", "") + finding["message"]
    root = tmp_path / "fleet"
    root.mkdir()
    (root / "report.json").write_text(json.dumps(report))
    (root / "\x1b[2J\n::error::skipped.json").write_text("{")
    return root


def test_the_fleet_review_in_the_terminal_is_inert(recorded_reports, tmp_path):
    root = _fleet(tmp_path, recorded_reports["wuhan-2-onednn-off"], site=FLEET_POISON, spec=FLEET_POISON,
                  env=FLEET_POISON, hint=FLEET_POISON)
    result = review([root])
    assert_inert(rich_text(render_review(result)))
    for line in skipped_lines(result.skipped):
        assert_inert(line)


def test_a_formula_in_a_site_name_is_inert_in_the_csv(recorded_reports, tmp_path):
    root = _fleet(tmp_path, recorded_reports["shenzhen-3"], site=CSV_INJECTION, spec="+cmd|' /C calc'!A0 ",
                  env="-2+3")
    rows = list(csv.DictReader(io.StringIO(render_review_csv(review([root])))))
    assert rows
    for row in rows:
        assert row["site"] == "'" + CSV_INJECTION
        assert row["spec"].startswith("'+cmd")
        assert not [cell for cell in row.values() if cell[:1] in ("=", "+", "@", "\t", "\r")]
        assert row["exit_code"].isdigit() and float(row["max_ulp"] or 0) >= 0  # numbers stay numbers


def test_mentions_and_references_in_markdown_are_inert(recorded_reports):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    for target in report["targets"]:
        target["site"] = MENTIONS
        target["hints"] = [f"{MENTIONS} {hint}" for hint in target["hints"]]
        if target["error"]:
            target["error"]["message"] = MENTIONS
        target["verdict"] = f"{target['verdict']} {MENTIONS}"  # shown in the raw-HTML <summary> line too
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(render_markdown(build_view(report)))
    # GitHub and GitLab link a sigil followed by a name or number in the rendered text (not inside <code>).
    text = re.sub(r"<code>.*?</code>", "", html)
    assert "@" in text and not re.search(r"(?<![\w])[@#!][\w]", text)


@pytest.mark.parametrize("name", ["shenzhen-3", "chengdu-5-bf16"])
def test_a_poisoned_markdown_summary_can_be_echoed_into_a_ci_log(recorded_reports, name):
    # Data sits in text, code spans (spec, paths) and the raw-HTML <summary> line: inert in each.
    assert_inert(render_markdown(build_view(poisoned_report(recorded_reports[name]))))


def test_a_poisoned_csv_can_be_echoed_into_a_ci_log(recorded_reports, tmp_path):
    root = _fleet(tmp_path, recorded_reports["shenzhen-3"], site=FLEET_POISON, spec=FLEET_POISON)
    assert_inert(render_review_csv(review([root])))


def test_control_characters_in_labels_leave_the_metrics_readable(recorded_reports, tmp_path):
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    site = "shen\rzhen\n3 \ud800"
    for target in report["targets"]:
        target["site"] = site
        target["outputs"] = {f"out\r{name}": stats for name, stats in (target["outputs"] or {}).items()}
    path = tmp_path / "metrics.prom"
    path.write_bytes(render_metrics(build_view(report)).encode("utf-8"))
    with open(path, encoding="utf-8") as stream:  # text mode, as a collector or a person reads it
        families = list(text_string_to_metric_families(stream.read()))
    labels = [sample.labels for family in families for sample in family.samples]
    assert {label["site"] for label in labels if "site" in label} == {prometheus_label(site)}
    assert any(label.get("output", "").startswith("out\\r") for label in labels)


def test_the_fleet_metrics_of_a_poisoned_site_are_readable(recorded_reports, tmp_path):
    root = _fleet(tmp_path, recorded_reports["shenzhen-3"], site="shen\rzhen", spec="\r")
    families = list(text_string_to_metric_families(render_review_metrics(review([root])).replace("\r\n", "\n")
                                                   .replace("\r", "\n")))  # what a text-mode reader sees
    assert any(family.samples for family in families)


def test_every_html_template_escapes_and_marks_no_data_safe():
    # The HTML pages need no neutralising function of their own: Jinja2 escapes every value, by construction.
    assert environment().autoescape is True
    for template in TEMPLATES.glob("*.html"):
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|Markup", template.read_text()), template.name


def test_control_characters_and_lone_surrogates_in_html_show_as_escapes(recorded_reports):
    # A target's env value with bytes that are not UTF-8 reaches the report as a lone surrogate (surrogateescape).
    report = copy.deepcopy(recorded_reports["shenzhen-3"])
    report["targets"][0]["site"] = "line-7 \udcff \u202eevil \x1b[2J"
    failed = next(target for target in report["targets"] if target["error"])
    failed["error"]["stderr_tail"] = "first line\nsecond line"
    page = render_html(build_view(report))
    page.encode("utf-8")  # the page can be written
    assert "line-7 \\udcff \\u202eevil \\x1b[2J" in page and not CONTROLS.search(page)
    assert "first line\nsecond line" in page  # a <pre> keeps its line breaks
