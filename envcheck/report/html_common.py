"""Pieces shared by the per-run HTML report and the fleet review page.

Both pages are Jinja2 templates (templates/) rendered with autoescape on, so every value taken from a
report is escaped by construction, in text, attributes and inline SVG alike; no template marks data safe.
Every value a template writes passes through textsafe.html_text first (the environment's `finalize`): a
control character, a bidi override or a lone surrogate in data shows as its escape.
A page is self-contained (inline CSS and SVG, one inline script; nothing fetched) and its
Content-Security-Policy allows that script and that style by their sha256, never 'unsafe-inline'.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import math
import unicodedata
from pathlib import Path
from typing import Any

import jinja2

from envcheck.localization_words import tensor_text
from envcheck.report.view import LocalizationView, clip, code_spans, num, pct, text
from envcheck.report.vocabulary import VERDICT_COLOURS
from envcheck.textsafe import html_text

TEMPLATES = Path(__file__).parent / "templates"

BAR_COLOUR = "#d1495b"
ORIGIN_COLOUR = "#0969da"
"""The marker of an origin (an op whose kernel computes differently) on the per-layer chart."""
UNKNOWN_COLOUR = "#afb8c1"
"""A layer that diverges by an unknown amount."""
MAX_TICKS = 7
MAX_DECADES = 300
"""The chart's top is 10^decades ULP: beyond this a float overflows (a hand-edited report's error is drawn at the top)."""

# Data never becomes a class name: known values map to a fixed class, anything else to a neutral one.
VERDICT_CLASSES = {"IDENTICAL": "v-identical", "PASS": "v-pass", "WARN": "v-warn", "FAIL": "v-fail", "ERROR": "v-error"}
SEVERITY_CLASSES = {"fail": "sev-fail", "warn": "sev-warn", "info": "sev-info"}
NEUTRAL_VERDICT, NEUTRAL_SEVERITY = "v-other", "sev-other"

STYLE_TEMPLATE, SCRIPT_TEMPLATE = "style.css", "sort_filter.js"


__all__ = ["VERDICT_COLOURS", "clip", "content_security_policy", "hash_source", "render_page"]


def verdict_class(verdict: Any) -> str:
    return VERDICT_CLASSES.get(verdict, NEUTRAL_VERDICT) if isinstance(verdict, str) else NEUTRAL_VERDICT


def severity_class(severity: Any) -> str:
    return SEVERITY_CLASSES.get(severity, NEUTRAL_SEVERITY) if isinstance(severity, str) else NEUTRAL_SEVERITY


LABEL_EM = 0.62
"""A generous width of a character in ems (of the charts' 10 px labels and 9 px counts) in a sans-serif font:
digits, dashes and `ms` are narrower. The page cannot measure its text before it is drawn, so the geometry
below reserves this much; wide letters and East Asian characters reserve a whole em."""
WIDE_LETTERS = frozenset("MWmw@%")
LABEL_GAP = 4
"""Pixels kept free between two labels."""
MAX_LABEL_CHARS = 16
"""A bucket label is drawn clipped to this (the bar's tooltip has it whole): a label from a hand-edited
report must not push every other label off the axis."""


def histogram(buckets: Any, title: str, width: int = 420, height: int = 150) -> dict[str, Any] | None:
    """The geometry of a bar chart of (label, count) buckets; the template draws it as inline SVG.

    Labels that would run into each other are thinned: every `step`-th bucket is labelled, where `step`
    is the fewest slots the widest label needs; the others keep theirs in the bar's tooltip. A count is
    written above its bar only when it fits the bar's slot."""
    pairs = [(label, count if isinstance(count, (int, float)) and not isinstance(count, bool) else 0)
             for label, count in _pairs(buckets)]
    if not pairs:
        return None
    top = max(count for _, count in pairs) or 1
    slot = (width - 40) / len(pairs)
    step = label_step([clip(str(label), MAX_LABEL_CHARS) for label, _ in pairs], slot)
    bars = []
    for i, (label, count) in enumerate(pairs):
        bar = (height - 60) * count / top  # 35 px above the tallest bar: title and count label
        x = 30 + i * slot
        shown_count = str(count) if count and _text_width(str(count), 9) + LABEL_GAP <= slot else ""
        bars.append({"label": label, "count": count, "x": f"{x + 2:.1f}", "y": f"{height - 25 - bar:.1f}",
                     "width": f"{slot - 4:.1f}", "height": f"{bar:.1f}", "middle": f"{x + slot / 2:.1f}",
                     "count_y": f"{height - 28 - bar:.1f}", "shown_count": shown_count,
                     "shown_label": clip(str(label), MAX_LABEL_CHARS) if i % step == 0 else ""})
    return {"title": title, "width": width, "height": height, "axis_y": height - 25, "axis_end": width - 8,
            "label_y": height - 10, "bars": bars}


def label_step(labels: list[str], slot: float) -> int:
    """Label every step-th bucket: the fewest slots the widest label (and a gap) spans."""
    widest = max((_text_width(label, 10) for label in labels), default=0)
    return max(math.ceil((widest + LABEL_GAP) / slot), 1)


def _text_width(text: str, font_px: int) -> float:
    """At most how many px `text` takes at `font_px`."""
    def ems(char: str) -> float:
        wide = char in WIDE_LETTERS or unicodedata.east_asian_width(char) in ("W", "F")
        return 1.0 if wide else 0.75 if char.isupper() else LABEL_EM
    return sum(ems(char) for char in text) * font_px


def layer_chart(localization: LocalizationView, width: int = 640, height: int = 150) -> dict[str, Any] | None:
    """The geometry of the error per layer along the topological order (x: layer, y: ULP at log10(1 + ULP),
    so 0 lies on the baseline); a marker above each origin. None when no layer differs."""
    layers = localization.layers
    if all(layer.error_ulp == 0 for layer in layers):  # (no layers at all, too)
        return None
    known = [layer.error_ulp for layer in layers if layer.error_ulp]
    decades = min(max(math.ceil(math.log10(max(known))), 0), MAX_DECADES) if known else 0
    step = math.ceil((decades + 1) / (MAX_TICKS - 1))
    scale = math.log10(1 + 10.0 ** decades)
    left, right, top, bottom = 40, 8, 26, 22
    plot, base = height - top - bottom, height - bottom
    slot = (width - left - right) / len(layers)

    def y(ulp: float) -> float:
        return base - plot * math.log10(1 + ulp) / scale

    bars, markers = [], []
    for index, layer in enumerate(layers):
        x = left + index * slot
        if layer.error_ulp is None:
            bar_top, colour, error = float(top), UNKNOWN_COLOUR, "error unknown"
        else:
            bar_top = min(max(y(layer.error_ulp), top), base - 1)
            colour, error = BAR_COLOUR, f"{num(layer.error_ulp)} ULP"
        if layer.error_ulp != 0:
            bars.append({"x": f"{x + 0.5:.1f}", "y": f"{bar_top:.1f}", "width": f"{max(slot - 1, 1):.1f}",
                         "height": f"{base - bar_top:.1f}", "colour": colour,
                         "title": f"{layer.key} ({layer.op}): {error}"})
        if layer.origin:
            middle, at = x + slot / 2, max(bar_top - 6, top - 4)
            markers.append({"x": f"{middle - 3.5:.1f}", "y": f"{at - 3.5:.1f}", "centre": f"{middle:.1f} {at:.1f}",
                            "title": f"origin: {tensor_text(layer.key, layer.op, layer.error_ulp)}"})
    ticks: list[tuple[float, str]] = []
    for tick, label in _decades(decades, step):
        if not ticks or y(ticks[-1][0]) - y(tick) >= 10:  # labels 9 px high never overlap
            ticks.append((tick, label))
    return {"title": f"error per layer vs {localization.against} (ULP, log scale; ◆ origin)", "width": width,
            "height": height, "left": left, "right": width - right, "base": base, "label_y": height - 6,
            "layers": len(layers), "bars": bars, "markers": markers, "colour": ORIGIN_COLOUR,
            "ticks": [{"label": label, "y": f"{y(t):.1f}", "label_y": f"{y(t) + 3:.1f}"} for t, label in ticks]}


def _decades(decades: int, step: int) -> list[tuple[float, str]]:
    """The chart's ticks: 0, then every `step`-th power of ten up to 10^decades, with their labels."""
    return [(0.0, "0"), *((10.0 ** d, str(10 ** d) if d < 5 else f"1e{d}") for d in range(0, decades + 1, step))]


def _pairs(buckets: Any) -> list[tuple[Any, Any]]:
    # A hand-edited or foreign report may hold anything here: draw what has the (label, count) shape.
    return [(item[0], item[1]) for item in buckets or [] if isinstance(item, (list, tuple)) and len(item) == 2]


def _written(value: Any) -> Any:
    """What a template writes for a value: data's text through html_text; markup the templates made
    themselves (a macro's output) as it is."""
    return html_text(value) if isinstance(value, str) and not hasattr(value, "__html__") else value


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined, finalize=_written)
    env.filters.update(text=text, num=num, pct=pct, clip=clip)
    env.globals.update(verdict_class=verdict_class, severity_class=severity_class,
                       histogram=histogram, layer_chart=layer_chart, code_spans=code_spans, bar_colour=BAR_COLOUR,
                       verdict_styles=[(verdict_class(v), c) for v, c in VERDICT_COLOURS.items()])
    return env


def hash_source(code: str) -> str:
    """A CSP source that allows exactly this inline script or style text."""
    assert "</" not in code, "an inline script or style must not contain '</'"
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"


def content_security_policy() -> str:
    """default-src 'none': the page fetches nothing, so it works offline and as a CI artifact and cannot
    leak; the one inline style and the one inline script run because of their hashes, nothing else does."""
    env = environment()
    style = env.get_template(STYLE_TEMPLATE).render()
    script = env.get_template(SCRIPT_TEMPLATE).render()
    return (f"default-src 'none'; style-src {hash_source(style)}; script-src {hash_source(script)}; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def render_page(template: str, **context: Any) -> str:
    """A page template (it extends page.html, which includes the style and the script) as text."""
    return environment().get_template(template).render(csp=content_security_policy(), **context) + "\n"
