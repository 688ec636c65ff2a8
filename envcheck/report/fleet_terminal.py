"""`envcheck review` in the terminal: per golden the verdict matrix, equivalence classes, attribution, where
drifting runs first part, latency and the images each Docker tag resolved to; skipped files.

A renderer only: it lays out the views of an envcheck.review.Review; it reads no file and computes no table.
Everything from reports (sites, targets, tags, paths, values) goes in as data_text: neutralised for the
terminal, never read as rich markup.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from envcheck.localization_words import tensor_text
from envcheck.report.attribution import attribution_sentence
from envcheck.report.terminal import data_text
from envcheck.report.view import consistency_note
from envcheck.report.vocabulary import VERDICT_STYLE
from envcheck.textsafe import for_terminal

if TYPE_CHECKING:
    from envcheck.review import GoldenReview, Review

MAX_ROWS = 30
MAX_SKIPPED_LINES = 20


MAX_LATENCY_DAYS = 7


def render_review(review: Review) -> RenderableType:
    """The header, one part per golden (under a rule of its own when there are several), skipped files."""
    sections = review.sections
    parts: list[RenderableType] = [data_text(f"{review.files_read} reports read, {len(review.skipped)} skipped · "
                                             f"{review.summary}", "bold")]
    if len(sections) > 1:
        parts.append(Text(f"{len(sections)} goldens: reviewing each separately", "bold yellow"))
    for section in sections:
        if len(sections) > 1:
            parts.append(Rule(data_text(f"golden {section.golden.label} · {section.summary}", "bold"), align="left"))
        else:
            parts.append(data_text(f"golden {section.golden.label}", "dim"))
        parts.extend(_golden_part(section))
    parts.extend(Text(line, "yellow") for line in skipped_lines(review.skipped))  # (lines neutralised there)
    return Group(*parts)


def _cell(verdict: str, consistency: Any) -> Text:
    """A verdict, and the consistency beside it when some samples were inconsistent."""
    cell = data_text(verdict, VERDICT_STYLE.get(verdict, ""))
    note = consistency_note(consistency)
    return cell.append(f" {note}", "dim") if note else cell


def _golden_part(section: GoldenReview) -> list[RenderableType]:
    """The matrix, equivalence classes and attribution of one golden's runs."""
    parts: list[RenderableType] = []
    matrix = section.matrix
    if not matrix.empty:
        table = Table(title="latest verdict per site × target", title_justify="left")
        table.add_column("site", overflow="fold")
        for spec in matrix.columns:
            table.add_column(data_text(spec), overflow="fold")
        for site, cells in list(matrix.iterrows())[:MAX_ROWS]:
            table.add_row(data_text(site), *(_cell(v, section.consistency.at[site, spec]) if isinstance(v, str) else ""
                                              for spec, v in cells.items()))
        parts.append(table)
        if len(matrix) > MAX_ROWS:
            parts.append(Text(f"… {len(matrix) - MAX_ROWS} more sites (use --html or --csv)", "dim"))

    classes = section.classes
    if len(classes):
        table = Table(title="equivalence classes: bitwise-identical outputs", title_justify="left")
        for column in ("outputs", "members", "same as golden", "sites", "targets"):
            table.add_column(column, overflow="fold")
        for c in list(classes.itertuples())[:MAX_ROWS]:
            table.add_row(data_text(c.output_digest[:12]), str(c.members), "yes" if c.identical_to_golden else "no",
                          data_text(_few(c.sites)), data_text(_few(c.targets)))
        parts.append(table)

    for _, row in section.attribution.head(5).iterrows():
        parts.append(data_text(f"drift co-occurs with: {attribution_sentence(row)}", "cyan"))
    if not section.divergences.empty:
        parts.append(_divergence_table(section))
    if not section.latency.empty:
        parts.append(_latency_table(section))
    if not section.images.empty:
        parts.append(_images_table(section))
    return parts


def _divergence_table(section: GoldenReview) -> Table:
    """Where each drifting site's numbers first part from the golden's (the first origin of its latest run)."""
    table = Table(title="first divergence per site × target (latest run)", title_justify="left")
    for column in ("site", "target", "verdict", "first divergence"):
        table.add_column(column, overflow="fold")
    for row in list(section.divergences.itertuples())[:MAX_ROWS]:
        table.add_row(data_text(row.site), data_text(row.spec), data_text(row.verdict, VERDICT_STYLE.get(row.verdict, "")),
                      data_text(tensor_text(row.first_divergence_key, row.first_divergence_op, row.first_divergence_ulp)))
    if len(section.divergences) > MAX_ROWS:
        table.add_row("", Text(f"… {len(section.divergences) - MAX_ROWS} more (use --html or --csv)"), "", "")
    return table


def _latency_table(section: GoldenReview) -> Table:
    """P50 per site over the last days: a site drifting slower shows as a rising row."""
    history = section.latency.iloc[:, -MAX_LATENCY_DAYS:]
    table = Table(title="P50 latency (ms) per site per day", title_justify="left")
    table.add_column("site", overflow="fold")
    for date in history.columns:
        table.add_column(data_text(date), justify="right")
    for site, cells in list(history.iterrows())[:MAX_ROWS]:
        table.add_row(data_text(site), *("" if math.isnan(value) else f"{value:.3g}" for value in cells))
    return table


def _images_table(section: GoldenReview) -> Table:
    """Each Docker tag's image ids and where each ran: a tag rebuilt at some sites shows as several ids, marked."""
    table = Table(title="Images per tag", title_justify="left")
    for column in ("tag", "image", "sites", "note"):
        table.add_column(column, overflow="fold")
    previous = None
    for image in section.images.head(MAX_ROWS).itertuples():
        # A tag is named once, on its first image's row, with the warning when it has several.
        tag = Text()
        if image.image_ref != previous:
            tag.append_text(data_text(image.image_ref))
            if image.several_images:
                tag.append(f"  ⚠ {image.images_under_tag} images under this tag", "bold yellow")
        previous = image.image_ref
        table.add_row(tag, data_text(image.short_id), data_text(_few(image.sites)),
                      Text("not the golden's image", "yellow") if image.differs_from_golden else "")
    if len(section.images) > MAX_ROWS:
        table.add_row("", Text(f"… {len(section.images) - MAX_ROWS} more (use --html or --csv)"), "", "")
    return table


def skipped_lines(skipped: list[tuple[str, str]], shown: int = MAX_SKIPPED_LINES) -> list[str]:
    """One line per skipped file, then a count per reason: 10,000 junk files are not 10,000 lines. (A file's
    name and what was wrong with it are data: each line is neutralised for the terminal.)"""
    lines = [f"skipped {path}: {why}" for path, why in skipped[:shown]]
    rest = Counter(why.split(":")[0].split(" (")[0] for _, why in skipped[shown:])
    if rest:
        lines.append(f"… {sum(rest.values())} more skipped: "
                     + ", ".join(f"{count} {reason}" for reason, count in rest.most_common()))
    return [for_terminal(line) for line in lines]


def _few(values: list[str], shown: int = 6) -> str:
    return ", ".join(values[:shown]) + (f" … (+{len(values) - shown})" if len(values) > shown else "")
