"""The words for where two environments' numbers part, in one place: the checker writes a localization's
summary with them (compare/localization.py), the renderers word a stored report's (report/view.py) and the
review picks each run's first origin (review/index.py). Safe on hand-edited values: anything of an unexpected
type is left out or shown as text, never raised on."""
from __future__ import annotations

import math
from typing import Any

FUSED_ONLY = ("every layer matches in unfused mode but the outputs drift: the difference is inside a fused "
              "kernel (an op fusion that runs only when intermediates are not fetched)")
IDENTICAL = "every recorded layer is bitwise identical"


def first_origin(localization: Any) -> dict[str, Any] | None:
    """The tensor to name first: the first origin (an op that computes differently), else the first divergent
    tensor; None when there is neither."""
    if not isinstance(localization, dict):
        return None
    origins = localization.get("origins")
    first = origins[0] if isinstance(origins, list) and origins else localization.get("first_divergence")
    return first if isinstance(first, dict) else None


def error_ulp(value: Any) -> float | None:
    """A non-negative finite error as a float, else None (unknown: null, NaN, text, a negative number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def ulp_words(ulp: float) -> str:
    """`2.5 ULP`, `40 ULP`, `below 1 ULP`; 0 (bytes differ, no kept element does) says so."""
    if ulp == 0:
        return "its bytes differ outside the elements kept"
    return "below 1 ULP" if ulp < 1 else f"{compact(ulp)} ULP"


def tensor_text(key: Any, op: Any, ulp: Any, quote: str = "") -> str:
    """`key (op), 3 ULP`; without a usable error `key (op)` (`quote` around the key: "`" in a sentence)."""
    words = f"{quote}{key}{quote} ({op})"
    known = error_ulp(ulp)
    return words if known is None else f"{words}, {ulp_words(known)}"


def summary_sentence(localization: Any) -> str:
    """One line for a person: where the numbers first part and what it grows to, or why nothing is said."""
    if not isinstance(localization, dict):
        return f"localization: {localization}"
    status = localization.get("status")
    if status == "unsupported":
        return f"localization unsupported ({localization.get('reason') or 'no reason given'})"
    if status == "identical":
        return IDENTICAL
    if localization.get("fused_only") is True:
        return FUSED_ONLY
    first = first_origin(localization)
    if first is None:
        return f"localization {status}: no divergent layer named"
    words = "first divergence at " + tensor_text(first.get("key"), first.get("op"), first.get("error_ulp"), quote="`")
    if first.get("nonfinite") is True:
        words += ", where NaN/Inf elements appear or vanish"
    growth = localization.get("growth_to_output")
    factor = error_ulp(growth.get("factor")) if isinstance(growth, dict) else None
    if factor:
        words += f", grows ×{compact(factor)} to the output"
    ops = localization.get("origin_ops")
    counts = [(op, n) for op, n in ops.items() if error_ulp(n) is not None] if isinstance(ops, dict) else []
    total = sum(int(n) for _, n in counts)
    if total > 1:
        kinds = ", ".join(f"{op} ×{int(n)}" for op, n in counts)
        words += f" ({total - 1} more origin(s); origins by op: {kinds})"
    return words


def compact(value: float) -> str:
    """A factor or an error: whole numbers from 10 up, two significant digits below."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"
