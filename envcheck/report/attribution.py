"""One attribution row of the fleet review in words, as both the terminal and the page say it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def attribution_sentence(row: Mapping[str, Any]) -> str:
    """`3 of 4 drifting have env.X = 1 (0 of 6 others)` for a row of the review's attribution table."""
    return (f"{row['drifting_with']} of {row['drifting_total']} drifting have {row['path']} = {row['value']} "
            f"({row['others_with']} of {row['others_total']} others)")
