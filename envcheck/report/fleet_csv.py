"""`envcheck review --csv`: the review's flat table (one row per golden × site × host × target × run) as CSV.

A renderer only: it formats the table an envcheck.review.Review already holds.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envcheck.review import Review


def render_review_csv(review: Review) -> str:
    """The flat table as CSV text, a header row first, without the DataFrame's index."""
    return review.table.to_csv(index=False)
