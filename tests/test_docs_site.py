"""The README is a newcomer's page and docs/ the reference site (mkdocs.yml): the README keeps its two set-up
commands verbatim (CI runs the second), a newcomer's sections only, and a link to every page of the site's
navigation; its first part, which the site's home page includes as it is, holds no link, since a link relative to
the README would break there. The site's own links, anchors and navigation are `mkdocs build --strict`'s to check
(scripts/test.sh)."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
NEWCOMER_PART = re.compile(r"<!-- --8<-- \[start:newcomer\] -->\n(.*?)<!-- --8<-- \[end:newcomer\] -->", re.DOTALL)


def _outside_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _nav_pages(entries) -> set[str]:
    """The Markdown pages the navigation of mkdocs.yml names, relative to docs/."""
    pages = set()
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages |= _nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_the_readme_keeps_the_two_set_up_commands():
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert "pip install -e '.[tf]' && envcheck check\n" in blocks
    assert "bash scripts/test.sh\n" in blocks
    assert "exec bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_readme_has_a_newcomer_s_sections_only():
    headings = re.findall(r"^## (.+)$", _outside_code_blocks(README.read_text()), flags=re.MULTILINE)
    assert headings == ["Set up", "Three ways it is used", "Exit codes", "Read on"]


def test_the_readme_links_every_page_of_the_site_and_nothing_else():
    navigation = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    linked = re.findall(r"\]\(docs/([^)#]+\.md)\)", README.read_text())
    assert sorted(linked) == sorted(_nav_pages(navigation) - {"index.md"})  # the home page is the README's own text
    assert all((DOCS / page).is_file() for page in linked)


def test_the_site_s_home_page_is_the_readme_s_first_part_which_holds_no_link():
    assert '--8<-- "README.md:newcomer"' in (DOCS / "index.md").read_text()
    part = NEWCOMER_PART.search(README.read_text())
    assert part, "the README lost its newcomer markers"
    assert "](" not in part.group(1), "a link in the README's first part breaks on the site's home page"


def test_no_table_escapes_a_pipe_inside_code():
    # GitHub shows `a \| b` in a table cell as `a | b`; MkDocs keeps the backslash. Outside code `\|` works in both.
    pages: list[Path] = [README, *sorted(DOCS.rglob("*.md"))]
    for page in pages:
        for row in _outside_code_blocks(page.read_text()).splitlines():
            code_spans = row.split("`")[1::2] if row.startswith("|") else []
            assert not any("\\|" in span for span in code_spans), (page.name, row)
