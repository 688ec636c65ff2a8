"""Text that came from data (a capture, a report, a golden, image labels, env values, a target's error
message), made harmless where it is shown: a terminal or CI log, a spreadsheet cell, Markdown, a Prometheus
label value.

Pure functions of a string (nothing heavy imported), called at each renderer's edge and by the console.

A neutralised character stays visible: a control character becomes its escape (`\\x1b`, `\\n`, `\\u202e`)
and a defused CI command gets a backslash, so a backslash is the mark of what envcheck neutralised. (A
backslash that was in the data stays as it is, so `\\x1b` in the output may also be those four characters.)
"""
from __future__ import annotations

import re
from typing import Any

# C0 controls (newline and tab included), DEL and the C1 controls; the Unicode line and paragraph separators
# (log viewers may break lines there); the bidi embeddings, overrides and isolates, which reorder what a
# reader sees (Trojan Source); lone surrogates, which no UTF-8 stream can hold (writing one raises).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# GitHub Actions runs a line as a workflow command when it begins with `::` after leading white space (its
# runner trims with .NET's TrimStart; invisible format characters are counted too, to be safe). Its legacy
# commands (`##[`), Azure Pipelines (`##vso[`) and TeamCity (`##teamcity[`) look ANYWHERE in a line.
_LINE_COMMAND = re.compile("[\\s\u180e\u200b-\u200d\u2060\ufeff]*::")
_HASH_COMMAND = re.compile(r"#(?=#\w*\[)")

# OWASP's CSV injection advice: a spreadsheet reads a cell that begins with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Markdown: backslash-escaped in text are the escape itself, code spans, emphasis and strikethrough, link and
# image brackets (no `[`, no link: `(`, `)` and `!` are then inert), table cells, tags, autolinks, entities and
# math (`$…$` on GitHub and GitLab). A lone `>` is left alone: mid-line it is no blockquote, without `<` no tag.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*~\[\]|<&$]")
# `_` between two letters or digits cannot emphasise (CommonMark's intraword rule), so ENV_NAMES stay readable.
_UNDERSCORES = re.compile(r"_+")
_LINE_BREAK = re.compile(r"\r\n?|\n")
# GitHub and GitLab turn `@all`, `#1`, `!1`, `~1`, `%1`, `&1`, `$1` into mentions and references after
# rendering (Markdown escapes do not stop them): a zero-width joiner between the sigil and the name, number
# or quoted name it would take does.
_REFERENCE = re.compile(r'[@#!~%&$](?=[\w"])')
_ZERO_WIDTH_JOINER = "\u200d"


def visible_controls(text: str, keep: str = "") -> str:
    """`text` with every control character (see _CONTROL) but those in `keep` replaced by its escape: `\\x1b`,
    `\\n`, `\\u202e`."""
    return _CONTROL.sub(lambda match: match.group() if match.group() in keep else _escape(match.group()), text)


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _inert_in_a_line(text: str) -> str:
    """Control characters shown as escapes, and no `##…[` command anywhere: fit to sit inside a line of a log."""
    return _HASH_COMMAND.sub("#\\\\", visible_controls(text))


def for_terminal(text: str) -> str:
    """`text` fit for one line of a terminal or CI log: control characters shown as escapes, and no CI workflow
    command (`::error::`, `##[…]`, `##vso[…]`) can start from it. Applying it twice changes nothing more."""
    shown = _inert_in_a_line(text)
    return "\\" + shown if _LINE_COMMAND.match(shown) else shown


def csv_cell(value: Any) -> Any:
    """A spreadsheet cell: text with its control characters shown as escapes, no `##…[` command (a CSV file
    is shown in a CI log too), and a `'` before a formula's first character; numbers (and anything else that
    is not text) as they are."""
    if not isinstance(value, str):
        return value
    shown = _inert_in_a_line(value)
    return "'" + shown if value.startswith(_FORMULA_START) else shown


def single_line(text: str) -> str:
    """`text` for inside a line of Markdown: a line break as a space, every other control character as its
    escape, and no `##…[` command (a Markdown summary is often echoed into the CI log too)."""
    return _inert_in_a_line(_LINE_BREAK.sub(" ", text))


def markdown_text(text: str) -> str:
    """`text` as inert Markdown for a line or a table cell: it cannot open a tag, a link, an image, emphasis,
    math or a table cell, end its line, or mention or reference anything (`@all`, `#1`, `!1`)."""
    shown = inert_references(single_line(text))
    shown = _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(), shown)
    return _UNDERSCORES.sub(lambda m: m.group() if _intraword(m) else m.group().replace("_", "\\_"), shown)


def inert_references(text: str) -> str:
    """`text` in which no `@`, `#`, `!`… can mention or reference (for text set in raw HTML, not Markdown)."""
    return _REFERENCE.sub(lambda m: m.group() + _ZERO_WIDTH_JOINER, text)


def _intraword(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    return start > 0 and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()


def prometheus_label(text: str) -> str:
    """A Prometheus label value: control characters shown as escapes but the newline, which the text format
    escapes itself. (It escapes only `\\`, `"` and a newline: a carriage return written as it is splits the
    line for any reader that opens the file in text mode, and a lone surrogate cannot be written at all.)"""
    return visible_controls(text, keep="\n")


def html_text(text: str) -> str:
    """Text for an HTML page (which escapes markup itself): control characters shown as escapes but line
    breaks and tabs, which a <pre> shows as they are; no bidi override can reorder what a reader sees, and
    no lone surrogate can stop the page from being written."""
    return visible_controls(text, keep="\n\t")
