"""Pieces shared by the per-run HTML report and the fleet review page: one self-contained page
(inline CSS, inline SVG, a few lines of inline script; nothing fetched), verdict badges, histograms."""
from __future__ import annotations

from html import escape
from typing import Any, Iterable

VERDICT_COLOURS = {"IDENTICAL": "#1a7f37", "PASS": "#4c9a2a", "WARN": "#b7791f", "FAIL": "#cf222e",
                   "ERROR": "#8250df", None: "#6e7781"}
BAR_COLOUR = "#d1495b"

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0 16px; } th, td { border: 1px solid #d0d7de; padding: 4px 8px;
  text-align: left; vertical-align: top; } th { background: #f6f8fa; cursor: pointer; user-select: none; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.muted { color: #6e7781; } .hint { background: #ddf4ff; padding: 6px 10px; border-radius: 6px; margin: 4px 0; }
.error { background: #fbefff; padding: 6px 10px; border-radius: 6px; }
.sev-fail { color: #cf222e; font-weight: 600; } .sev-warn { color: #b7791f; font-weight: 600; } .sev-info { color: #6e7781; }
section.target { border: 1px solid #d0d7de; border-radius: 8px; padding: 8px 16px; margin: 12px 0; }
input.filter { margin: 4px 0; padding: 4px 8px; width: 320px; }
code { background: #f6f8fa; padding: 0 4px; border-radius: 4px; }
"""

# Click a header to sort; type in the box above a table to filter its rows. No external script.
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows), up = th.dataset.dir !== 'up';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort || a.cells[column].textContent,
            y = b.cells[column].dataset.sort || b.cells[column].textContent,
            nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? order : -order;
      });
      th.dataset.dir = up ? 'up' : 'down';
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  input.addEventListener('input', function () {
    var table = document.getElementById(input.dataset.table), text = input.value.toLowerCase();
    Array.from(table.tBodies[0].rows).forEach(function (row) {
      row.style.display = row.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
    });
  });
});
"""


def page(title: str, body: str) -> str:
    # The CSP forbids every fetch: the page works offline and as a CI artifact, and cannot leak.
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"<script>{SCRIPT}</script></body></html>\n")


def badge(verdict: str | None) -> str:
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS[None])
    return f'<span class="badge" style="background:{colour}">{escape(verdict or "—")}</span>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], table_id: str | None = None,
          filterable: bool = False) -> str:
    """Cells are HTML already (escape plain text with `text`)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    box = (f'<input class="filter" data-table="{table_id}" placeholder="filter rows…">'
           if filterable and table_id else "")
    return f'{box}<table class="sortable"{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def text(value: Any) -> str:
    return escape("—" if value is None else str(value))


def num(value: Any) -> str:
    if value is None:
        return '<td class="num">—</td>'
    shown = str(value) if isinstance(value, int) else f"{value:.3g}"
    return f'<td class="num" data-sort="{value}">{shown}</td>'


def pct(value: Any) -> str:
    if value is None:
        return '<td class="num">—</td>'
    return f'<td class="num" data-sort="{value}">{value:.1%}</td>'


def histogram_svg(buckets: list[list], title: str, width: int = 420, height: int = 150) -> str:
    """A bar chart of (label, count) buckets as inline SVG."""
    if not buckets:
        return ""
    top = max(count for _, count in buckets) or 1
    slot = (width - 40) / len(buckets)
    bars = []
    for i, (label, count) in enumerate(buckets):
        bar = (height - 60) * count / top  # 35 px above the tallest bar: title and count label
        x = 30 + i * slot
        bars.append(f'<rect x="{x + 2:.1f}" y="{height - 25 - bar:.1f}" width="{slot - 4:.1f}" height="{bar:.1f}" '
                    f'fill="{BAR_COLOUR}"><title>{escape(str(label))}: {count}</title></rect>'
                    f'<text x="{x + slot / 2:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">'
                    f'{escape(str(label))}</text>')
        if count:
            bars.append(f'<text x="{x + slot / 2:.1f}" y="{height - 28 - bar:.1f}" font-size="9" '
                        f'text-anchor="middle">{count}</text>')
    return (f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="4" y="12" font-size="11">{escape(title)}</text>'
            f'<line x1="28" y1="{height - 25}" x2="{width - 8}" y2="{height - 25}" stroke="#888"/>'
            + "".join(bars) + "</svg>")
