"""`envcheck review` in the terminal: per golden the verdict matrix, equivalence classes, attribution, where
drifting runs first part, latency and the images each Docker tag resolved to; skipped files.

A renderer only: it lays out the views of an envcheck.review.Review; it reads no file and computes no table.
Everything from reports (sites, targets, tags, paths, values) goes in as data_text: neutralised for the
terminal, never read as rich markup.

The matrix is laid out for the width it is printed at (a terminal's, or COLUMNS, or 80 in a CI log): the
longer side (usually the targets) runs down as rows, verdicts are fixed-width badges (BADGES, with a legend),
names too long for a column header become codes (S1, T1…) with a key, and columns that do not fit are split
into several tables. No name or verdict is ever broken across lines; every name is printed whole at least once.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
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
MAX_MATRIX_ROWS = 100
"""Matrix rows shown in the terminal (50 targets fit); the page and the CSV have them all."""
MAX_SKIPPED_LINES = 20
MAX_LATENCY_DAYS = 7

BADGES = {"IDENTICAL": "ID", "PASS": "PASS", "WARN": "WARN", "FAIL": "FAIL", "ERROR": "ERR"}
"""A verdict as a badge of at most BADGE_WIDTH cells, so a column of them never wraps."""
BADGE_WIDTH = 4
UNKNOWN_BADGE, NOT_RUN = "?", "·"
INCONSISTENT = "*"
"""After a badge: some samples were inconsistent (the consistency is listed under the matrix)."""
LEGEND = f"ID = IDENTICAL · ERR = ERROR · {NOT_RUN} = not run"
MIN_LABEL = 20
"""The narrowest row label the matrix gives up columns for."""
MAX_HEADER = 12
"""A column header longer than this is a code: twelve wide columns leave too few per table."""
MIN_SHARED_PREFIX = 8
"""A prefix every name on a side shares (a registry path) is said once, above the matrix, when this long."""
MAX_INCONSISTENT_SHOWN = 10


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
        parts.append(GoldenPart(section))
    parts.extend(Text(line, "yellow") for line in skipped_lines(review.skipped))  # (lines neutralised there)
    return Group(*parts)


@dataclass(frozen=True)
class Axis:
    """One side of the matrix: its names in order, how each is shown, and the code each has in the key."""

    noun: str
    """ "site" or "target"."""
    letter: str
    names: list[str]
    prefix: str = ""
    """What every name on this side begins with (said once, cut from the labels)."""
    coded: bool = False
    """Whether the other parts of the review name these by code (S1, T1…) rather than by label."""

    def code(self, name: str) -> str:
        """`S3`: the name's code, by its place in the matrix."""
        return f"{self.letter}{self.names.index(name) + 1}"

    def label(self, name: str) -> str:
        """The name without the shared prefix."""
        return name[len(self.prefix):] or name

    def ref(self, name: str) -> str:
        """How the review's other parts name this site or target: its code in the key, else its label."""
        return self.code(name) if self.coded else self.label(name)

    def refs(self, names: Iterable[str], shown: int = 6) -> str:
        """Several names: codes as ranges (`S1–S4, S7`), labels as a short list."""
        names = [str(name) for name in names]
        if not self.coded:
            return _few([self.label(name) for name in names], shown)
        numbers = sorted(self.names.index(name) + 1 for name in names if name in self.names)
        return ", ".join(f"{self.letter}{a}" if a == b else f"{self.letter}{a}–{self.letter}{b}" for a, b in _runs(numbers))


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def shared_prefix(names: list[str]) -> str:
    """What all the names begin with, cut after its last `/` or `:` (a registry path, `docker:`), when
    at least MIN_SHARED_PREFIX long and shared by two or more names; else nothing."""
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)
    common = first[:next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))]
    cut = max(common.rfind("/"), common.rfind(":")) + 1
    return common[:cut] if cut >= MIN_SHARED_PREFIX else ""


def shorten(name: str, width: int) -> str:
    """The name in `width` cells: whole if it fits, else its head and tail around `…` (tags differ at the end)."""
    if cell_len(name) <= width:
        return name
    tail = max((width - 1) * 2 // 3, 1)
    head = max(width - 1 - tail, 0)
    while cell_len(name[:head]) + 1 + cell_len(name[len(name) - tail:]) > width and tail > 1:
        tail -= 1
    return name[:head] + "…" + name[len(name) - tail:]


def _cell_width(names: Iterable[str]) -> int:
    return max((cell_len(for_terminal(name)) for name in names), default=0)


@dataclass(frozen=True)
class MatrixLayout:
    """How one golden's matrix fits a width: which side runs down, what the headers say, how wide the row
    labels are, how many columns each table holds."""

    rows: Axis
    columns: Axis
    label_width: int
    """Cells given to a row label (its code too, when rows are coded)."""
    column_width: int
    per_table: int
    marked: bool
    """Whether some cell carries the INCONSISTENT mark (then every cell is one wider)."""

    @classmethod
    def fit(cls, section: GoldenReview, width: int) -> MatrixLayout:
        """The layout of the section's matrix at `width` cells."""
        matrix = section.matrix
        sites, targets = [str(s) for s in matrix.index], [str(t) for t in matrix.columns]
        # The longer side runs down: 50 targets × 20 sites is 50 rows of 20 badges, not 20 rows of 50.
        down, across = (Axis("target", "T", targets), Axis("site", "S", sites)) if len(targets) >= len(sites) \
            else (Axis("site", "S", sites), Axis("target", "T", targets))
        down = Axis(down.noun, down.letter, down.names, shared_prefix(down.names))
        across = Axis(across.noun, across.letter, across.names, shared_prefix(across.names))
        marked = any(consistency_note(v) for v in section.consistency.to_numpy().ravel())
        cell = BADGE_WIDTH + marked
        label = _cell_width(down.label(name) for name in down.names[:MAX_MATRIX_ROWS])
        named = max(cell, _cell_width(across.label(name) for name in across.names))
        if named <= MAX_HEADER and min(label, width - MIN_LABEL) + len(across.names) * (named + 1) <= width:
            column_width = named  # the whole matrix fits one table with names as headers: no key needed
        else:
            across = Axis(across.noun, across.letter, across.names, across.prefix, coded=True)
            column_width = max(cell, cell_len(across.code(across.names[-1])))
        columns = len(across.names)
        label_width = max(min(label, width - columns * (column_width + 1)), min(MIN_LABEL, label))
        fitting = max((width - label_width) // (column_width + 1), 1)
        tables = math.ceil(columns / fitting)
        if label > label_width:
            # Labels shortened to fit are coded, so the key can name each in full.
            down = Axis(down.noun, down.letter, down.names, down.prefix, coded=True)
        return cls(down, across, label_width, column_width, math.ceil(columns / tables), marked)

    def row_label(self, name: str) -> str:
        """A row's label in label_width cells: `T7 runtime-07…cpu` when coded, else the label."""
        if not self.rows.coded:
            return for_terminal(self.rows.label(name))
        code = self.rows.code(name).ljust(len(self.rows.code(self.rows.names[-1])))
        return f"{code} {shorten(for_terminal(self.rows.label(name)), max(self.label_width - len(code) - 1, 1))}"

    def column_header(self, name: str) -> str:
        """A column's header: its code, or its label when the columns are named."""
        return self.columns.code(name) if self.columns.coded else for_terminal(self.columns.label(name))


def _oriented(frame: Any, layout: MatrixLayout) -> Any:
    """The view's sites × targets frame (a pandas DataFrame, computed in envcheck/review/; renderers never import
    pandas) with the layout's rows down."""
    return frame if layout.rows.noun == "site" else frame.T


class GoldenPart:
    """One golden's part of the review, laid out when printed, at the width it is printed at."""

    def __init__(self, section: GoldenReview) -> None:
        self.section = section

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The matrix (and its key), then the other views, naming sites and targets as the matrix does."""
        section = self.section
        if section.matrix.empty:
            yield from _other_parts(section, None)
            return
        layout = MatrixLayout.fit(section, options.max_width)
        yield from _matrix_parts(section, layout, options.max_width)
        yield from _other_parts(section, layout)


def _badge(verdict: Any, consistency: Any, marked: bool) -> Text:
    """A verdict as its badge, INCONSISTENT after it when some samples were inconsistent."""
    if not isinstance(verdict, str):
        return Text(NOT_RUN, "dim")
    badge = Text(BADGES.get(verdict, UNKNOWN_BADGE).ljust(BADGE_WIDTH), VERDICT_STYLE.get(verdict, ""))
    if marked:
        badge.append(INCONSISTENT if consistency_note(consistency) else " ", "bold")
    return badge


def _matrix_parts(section: GoldenReview, layout: MatrixLayout, width: int) -> Iterator[RenderableType]:
    """Title and legend, the shared prefixes, the column key, one table per group of columns, the row key,
    the inconsistent cells."""
    rows, columns = layout.rows, layout.columns
    yield Text(f"latest verdict per {rows.noun} × {columns.noun}: {len(rows.names)} {rows.noun}s down, "
               f"{len(columns.names)} {columns.noun}s across", "bold")
    yield Text(LEGEND + (f" · {INCONSISTENT} = some samples inconsistent" if layout.marked else ""), "dim")
    for axis in (rows, columns):
        if axis.prefix:
            yield Text.assemble(f"every {axis.noun} name begins ", data_text(axis.prefix, "bold"),
                                " (cut from the names below)")
    if columns.coded:
        yield from _key(columns, width)
    verdicts, consistency = _oriented(section.matrix, layout), _oriented(section.consistency, layout)
    shown = rows.names[:MAX_MATRIX_ROWS]
    for start in range(0, len(columns.names), layout.per_table):
        group = columns.names[start:start + layout.per_table]
        table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, header_style="bold")
        table.add_column(rows.noun, width=layout.label_width, no_wrap=True, overflow="ellipsis")
        for name in group:
            # Headers and labels hold names from data: Text, so rich never reads them as markup.
            table.add_column(Text(layout.column_header(name)), width=layout.column_width, no_wrap=True)
        for name in shown:
            table.add_row(Text(layout.row_label(name)), *(_badge(verdicts.at[name, column], consistency.at[name, column],
                                                           layout.marked) for column in group))
        if len(columns.names) > layout.per_table:
            yield Text(f"{columns.noun}s {columns.ref(group[0])}–{columns.ref(group[-1])} of {len(columns.names)}",
                       "dim")
        yield table
    if len(rows.names) > MAX_MATRIX_ROWS:
        yield Text(f"… {len(rows.names) - MAX_MATRIX_ROWS} more {rows.noun}s (use --html or --csv)", "dim")
    if rows.coded:
        yield from _key(Axis(rows.noun, rows.letter, shown, rows.prefix, True), width)
    yield from _inconsistent_cells(section, layout)


def _key(axis: Axis, width: int) -> Iterator[RenderableType]:
    """Each code and the name it stands for, packed into as many columns as the width takes (like `ls`);
    every name whole."""
    entries = [f"{axis.code(name)} {for_terminal(axis.label(name))}" for name in axis.names]
    entry_width = _cell_width(entries)
    per_line = max((width + 2) // (entry_width + 2), 1)
    lines = math.ceil(len(entries) / per_line)
    yield Text(f"{axis.noun}s:", "bold")
    for line in range(lines):
        # Column-major, as `ls` reads: down the first column, then the next.
        row = [entries[i] for i in range(line, len(entries), lines)]
        yield Text("  ".join(entry + " " * (entry_width - cell_len(entry)) for entry in row).rstrip())


def _inconsistent_cells(section: GoldenReview, layout: MatrixLayout) -> Iterator[RenderableType]:
    """The cells marked INCONSISTENT, with their lowest output consistency."""
    if not layout.marked:
        return
    notes = [f"{layout.rows.ref(str(row))} × {layout.columns.ref(str(column))} {consistency_note(value)}"
             for row, cells in _oriented(section.consistency, layout).iterrows() for column, value in cells.items()
             if consistency_note(value)]
    more = f" … (+{len(notes) - MAX_INCONSISTENT_SHOWN})" if len(notes) > MAX_INCONSISTENT_SHOWN else ""
    yield Text(f"{INCONSISTENT} lowest output consistency: " + ", ".join(notes[:MAX_INCONSISTENT_SHOWN]) + more,
               "dim")


def _other_parts(section: GoldenReview, layout: MatrixLayout | None) -> Iterator[RenderableType]:
    """Equivalence classes, attribution, divergences, latency and images; sites and targets named as the
    matrix names them (codes where it uses codes)."""
    names = _Names(layout)
    classes = section.classes
    if len(classes):
        yield Text("equivalence classes: bitwise-identical outputs", "bold")
        for c in list(classes.itertuples())[:MAX_ROWS]:
            golden = "same as golden" if c.identical_to_golden else "not the golden's"
            yield Padding(Text.assemble(data_text(str(c.output_digest)[:12], "bold"), f" · {_runs_count(c.members)} · {golden}"
                                        " · sites ", data_text(names.sites(c.sites)),
                                        " · targets ", data_text(names.targets(c.targets))), (0, 0, 0, 2))
    for _, row in section.attribution.head(5).iterrows():
        yield data_text(f"drift co-occurs with: {attribution_sentence(row)}", "cyan")
    if not section.divergences.empty:
        yield _divergence_table(section, names)
    if not section.latency.empty:
        yield _latency_table(section, names)
    if not section.images.empty:
        yield _images_table(section, names)


class _Names:
    """Sites and targets as the matrix above names them; whole names where there is no matrix."""

    def __init__(self, layout: MatrixLayout | None) -> None:
        axes = {axis.noun: axis for axis in (layout.rows, layout.columns)} if layout else {}
        self._site, self._target = axes.get("site"), axes.get("target")

    def site(self, name: Any) -> str:
        return self._site.ref(str(name)) if self._site and str(name) in self._site.names else str(name)

    def target(self, name: Any) -> str:
        return self._target.ref(str(name)) if self._target and str(name) in self._target.names else str(name)

    def sites(self, names: list[str]) -> str:
        return self._site.refs(names) if self._site else _few(names)

    def targets(self, names: list[str]) -> str:
        return self._target.refs(names) if self._target else _few(names)


def _runs_count(members: int) -> str:
    return f"{members} run" if members == 1 else f"{members} runs"


def _compact_table() -> Table:
    """A table that spends few cells on borders: the review is read at 80 columns too."""
    from rich import box

    return Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False)


def _titled(title: str, table: Table) -> Group:
    """The title on a line of its own, not wrapped to a narrow table's width."""
    return Group(Text(title, "bold"), table)


def _divergence_table(section: GoldenReview, names: _Names) -> Group:
    """Where each drifting site's numbers first part from the golden's (the first origin of its latest run)."""
    title, table = "first divergence per site × target (latest run)", _compact_table()
    for column in ("site", "target", "verdict"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    table.add_column("first divergence")
    for row in list(section.divergences.itertuples())[:MAX_ROWS]:
        table.add_row(data_text(names.site(row.site)), data_text(names.target(row.spec)),
                      data_text(row.verdict, VERDICT_STYLE.get(row.verdict, "")),
                      data_text(tensor_text(row.first_divergence_key, row.first_divergence_op, row.first_divergence_ulp)))
    if len(section.divergences) > MAX_ROWS:
        table.add_row("", Text(f"… {len(section.divergences) - MAX_ROWS} more (use --html or --csv)"), "", "")
    return _titled(title, table)


def _latency_table(section: GoldenReview, names: _Names) -> Group:
    """P50 per site over the last days: a site drifting slower shows as a rising row."""
    history = section.latency.iloc[:, -MAX_LATENCY_DAYS:]
    title, table = "P50 latency (ms) per site per day", _compact_table()
    table.add_column("site", no_wrap=True, overflow="ellipsis")
    for date in history.columns:
        # A date is never folded: on a narrow screen rich drops the ones that do not fit to `…`.
        table.add_column(data_text(date), justify="right", no_wrap=True, overflow="ellipsis")
    for site, cells in list(history.iterrows())[:MAX_ROWS]:
        table.add_row(data_text(names.site(site)), *("" if math.isnan(value) else f"{value:.3g}" for value in cells))
    return _titled(title, table)


def _images_table(section: GoldenReview, names: _Names) -> Group:
    """Each Docker tag's image ids and where each ran: a tag rebuilt at some sites shows as several ids, marked."""
    title, table = "Images per tag", _compact_table()
    # The note goes beside the id, not in a column of its own: the tag keeps the width to stay whole.
    for column in ("tag", "image", "sites"):
        table.add_column(column)
    previous = None
    for image in section.images.head(MAX_ROWS).itertuples():
        # A tag is named once, on its first image's row, with the warning when it has several.
        tag = Text()
        if image.image_ref != previous:
            tag.append_text(data_text(image.image_ref))
            if image.several_images:
                tag.append(f"  ⚠ {image.images_under_tag} images under this tag", "bold yellow")
        previous = image.image_ref
        shown = data_text(image.short_id)
        if image.differs_from_golden:
            shown.append(" not the golden's image", "yellow")
        table.add_row(tag, shown, data_text(names.sites(image.sites)))
    if len(section.images) > MAX_ROWS:
        table.add_row(Text(f"… {len(section.images) - MAX_ROWS} more (use --html or --csv)"), "", "")
    return _titled(title, table)


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
