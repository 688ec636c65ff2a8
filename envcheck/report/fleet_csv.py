"""`envcheck review --csv`: the review's flat table (one row per golden × site × host × target × run) as CSV.

A renderer only: it formats the table an envcheck.review.Review already holds. The one column it words is
`first_divergence` ("key (op), 3 ULP", as every renderer writes it: report/view.py), beside the key, op and
ULP it is made of. Every text cell goes through textsafe.csv_cell, so a site named `=HYPERLINK(…)` is text
in a spreadsheet, not a formula; numbers stay numbers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from envcheck.localization_words import tensor_text
from envcheck.textsafe import csv_cell

if TYPE_CHECKING:
    from envcheck.review import Review


def render_review_csv(review: Review) -> str:
    """The flat table as CSV text, a header row first, without the DataFrame's index."""
    table = review.table.copy()
    words = [tensor_text(key, op, ulp) if isinstance(key, str) else None
             for key, op, ulp in zip(table["first_divergence_key"], table["first_divergence_op"],
                                     table["first_divergence_ulp"], strict=True)]
    table.insert(table.columns.get_loc("first_divergence_key"), "first_divergence", words)
    for column in table.columns:
        if table[column].dtype.kind == "O":  # text, or mixed: typed number and time columns are no formula
            table[column] = table[column].map(csv_cell)
    return table.to_csv(index=False)
