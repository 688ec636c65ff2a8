"""One view of a run report, built once from the JSON report dict, that every renderer draws.

The JSON report (envcheck.report/1) is the single source: the terminal, the CI-log lines, HTML, JUnit and
Markdown all render this view of it, so a summary, a number's format or the word for a missing value is
decided here once. A stored or hand-edited report renders too: values of an unexpected type show as
text, never raise. Where data could act (the terminal), the renderer builds the view again from the report
with every string neutralised for that medium (cleaned_view), so no field can be missed.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envcheck.localization_words import error_ulp, summary_sentence
from envcheck.localization_words import first_origin as first_origin_of
from envcheck.model import MEASURED_STATUSES, milliseconds, percent
from envcheck.model import show_value as shown
from envcheck.report.vocabulary import DASH, EXIT_MEANING, SEVERITIES, VERDICTS


@dataclass(frozen=True)
class OutputView:
    """One output's comparison: its status, a short summary, and the evidence behind it."""

    name: str
    status: str
    summary: str
    """`noise (max 4 ULP)`: the status and how far, for tables."""
    evidence: str
    """Every number behind a noise or drift status on one line; empty for identical or mismatch."""
    reason: str | None
    stats: dict[str, Any]
    """The report's statistics for this output, for renderers that tabulate them."""


@dataclass(frozen=True)
class DifferenceView:
    """One fingerprint difference and its change in words."""

    path: str
    severity: str
    change: str
    """`golden → target`, or `missing a, b; extra c` for a set-valued field."""
    set_change: str | None
    """The `missing …; extra …` text of a set-valued field, else None."""
    golden: Any
    target: Any


@dataclass(frozen=True)
class LatencyView:
    """A target's latency: a short summary for tables, the full sentence, and the numbers."""

    status: str
    summary: str
    """`P50 0.71 ms ×1.02`, `P50 0.71 ms (not comparable)`, `not measured`."""
    message: str
    p50_s: float | None
    p99_s: float | None
    ratio_p50: float | None
    histogram: tuple[tuple[str, int], ...]
    raw: dict[str, Any]


@dataclass(frozen=True)
class TensorView:
    """One recorded tensor of a localization (its first divergence, an origin): where, and how far off."""

    key: str
    op: str
    index: int | None
    error_ulp: float | None
    error_abs: float | None


@dataclass(frozen=True)
class LayerPoint:
    """One matched layer of the per-layer series, in topological order."""

    key: str
    op: str
    error_ulp: float | None
    """0: bitwise identical; None: the error is unknown (or the report's value is not a number)."""
    origin: bool


@dataclass(frozen=True)
class LocalizationView:
    """Where a target's numbers first part from the golden's (or capture b's from capture a's)."""

    status: str
    """ok, identical, unsupported (or whatever a hand-edited report holds, as text)."""
    summary: str
    """The one-line sentence: the report's own, else one made here from its fields."""
    against: str
    reason: str | None
    first_origin: TensorView | None
    """The first origin (an op that computes differently), else the first divergent tensor."""
    origins: tuple[TensorView, ...]
    origin_ops: tuple[tuple[str, int], ...]
    """(op, number of origins) over all origins (the report lists the first few only)."""
    layers: tuple[LayerPoint, ...]
    between: tuple[str, str] | None
    """(a, b): the two captures of `envcheck compare A B`; None for a target's localization."""
    raw: Any

    @property
    def more_origins(self) -> int:
        """Origins the report counts (origin_ops) beyond those it lists."""
        return max(sum(count for _, count in self.origin_ops) - len(self.origins), 0)


@dataclass(frozen=True)
class TargetView:
    """Everything renderers show about one target."""

    anchor: str
    spec: str
    site: str | None
    verdict: str
    error: dict[str, Any] | None
    findings: tuple[dict[str, Any], ...]
    outputs: tuple[OutputView, ...]
    decisive: tuple[DifferenceView, ...]
    """Differences of fail or warn severity, in report order."""
    info: tuple[DifferenceView, ...]
    hints: tuple[str, ...]
    outputs_summary: str
    diff_summary: str
    timings: dict[str, Any]
    raw: dict[str, Any]
    """The target's entry in the JSON report, for what only one renderer shows."""
    latency: LatencyView | None = None
    localization: LocalizationView | None = None
    serving: tuple[str, ...] = ()
    """A serving endpoint's replica and load records (report `target.replicas`, `target.load`), a line each."""

    @property
    def where(self) -> str | None:
        """The localization sentence worth a line where evidence is shown for a target that is not IDENTICAL;
        None when there is none, or when every recorded layer is bitwise identical."""
        if self.localization is None or self.localization.status == "identical" or self.verdict == "IDENTICAL":
            return None
        return self.localization.summary

    @property
    def differences(self) -> tuple[DifferenceView, ...]:
        """Decisive first, then info-level."""
        return self.decisive + self.info

    @property
    def differing_outputs(self) -> tuple[OutputView, ...]:
        """Outputs that are not bitwise identical."""
        return tuple(o for o in self.outputs if o.status != "identical")


@dataclass(frozen=True)
class ReportView:
    """The run: where the golden came from, what it decided, and every target."""

    golden_path: str
    golden_sha256: str
    exit_code: int
    exit_meaning: str
    fail_on: str
    created: str
    envcheck_version: str
    verdict_counts: tuple[tuple[str, int], ...]
    """(verdict, count), worst first, verdicts with no target left out."""
    targets: tuple[TargetView, ...]
    document: dict[str, Any]
    localization_between: LocalizationView | None = None
    """`envcheck compare A B`: where capture b's numbers first part from capture a's."""

    @property
    def has_latency(self) -> bool:
        """True when any target carries a latency (tables then get a latency column)."""
        return any(t.latency is not None for t in self.targets)

    def verdict_summary(self, separator: str = " · ") -> str:
        """`1 FAIL · 2 PASS`: the count of each verdict, worst first."""
        return separator.join(f"{count} {verdict}" for verdict, count in self.verdict_counts)


def build_view(document: dict[str, Any]) -> ReportView:
    """The view of a JSON report dict (as report_to_dict makes it, or as read from a file)."""
    targets = tuple(target_view(entry, f"target-{index}") for index, entry in enumerate(document["targets"]))
    counts = Counter(text(t.verdict) for t in targets)
    order = [v for v in VERDICTS[::-1] if v in counts] + sorted(v for v in counts if v not in VERDICTS)
    code = document["exit_code"]
    return ReportView(golden_path=text(document["golden"]["path"]), golden_sha256=text(document["golden"]["sha256"]),
                      exit_code=code, exit_meaning=EXIT_MEANING.get(code, ""), fail_on=text(document["fail_on"]),
                      created=text(document.get("created")), envcheck_version=text(document.get("envcheck_version")),
                      verdict_counts=tuple((verdict, counts[verdict]) for verdict in order), targets=targets,
                      document=document, localization_between=localization_view(document.get("localization_between"),
                                                                                between=True))


def cleaned_view(view: ReportView, clean: Callable[[str], str]) -> ReportView:
    """The view built again from its report with every string in it, dict keys too, passed through `clean`:
    a renderer makes all data safe for its medium at once (the terminal: textsafe.for_terminal)."""
    return build_view(_cleaned(view.document, clean))


def _cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {_cleaned(key, clean): _cleaned(item, clean) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cleaned(item, clean) for item in value]
    return value


def target_view(entry: dict[str, Any], anchor: str) -> TargetView:
    """The view of one target entry of a JSON report; `anchor` names its section on a page."""
    outputs = tuple(_output(name, stats) for name, stats in (entry.get("outputs") or {}).items())
    differences = [_difference(d) for d in entry.get("fingerprint_diff") or []]
    findings = tuple(entry.get("findings") or ())
    error = entry.get("error")
    return TargetView(
        anchor=anchor, spec=text(entry["spec"]), site=entry.get("site"), verdict=text(entry["verdict"]),
        error=error, findings=findings, outputs=outputs,
        decisive=tuple(d for d in differences if d.severity != "info"),
        info=tuple(d for d in differences if d.severity == "info"),
        hints=tuple(text(h) for h in entry.get("hints") or ()),
        outputs_summary=text(error["kind"]) if error else ", ".join(f"{o.name}: {o.summary}" for o in outputs),
        diff_summary=_diff_summary(differences, findings), timings=entry.get("timings") or {}, raw=entry,
        latency=_latency(entry.get("latency")), localization=localization_view(entry.get("localization")),
        serving=serving_lines(entry.get("target")))


def serving_lines(info: Any) -> tuple[str, ...]:
    """`replicas: …` and `load: …` lines from an endpoint target's records (none when it has neither). Any value
    of an unexpected type shows as text."""
    if not isinstance(info, dict):
        return ()
    lines = []
    replicas, load = info.get("replicas"), info.get("load")
    if isinstance(replicas, dict):
        sets = [found for found in _list(replicas.get("answer_sets")) if isinstance(found, dict)]
        counts = " + ".join(f"{text(found.get('count'))}×" + (f" from {', '.join(map(text, _list(found.get('replicas'))))}"
                                                              if found.get("replicas") else "") for found in sets)
        odd = ", ".join(map(text, _list(replicas.get("odd_replicas"))))
        lines.append(f"replicas: {text(replicas.get('repeat'))} repetitions, {len(sets)} answer "
                     f"set{'' if len(sets) == 1 else 's'} ({counts})" + (f"; odd: {odd}" if odd else ""))
    if isinstance(load, dict):
        percentiles = ", ".join(f"P{p} {milliseconds(load[f'p{p}_ms'] / 1e3) if _is_number(load.get(f'p{p}_ms')) else DASH}"
                                for p in (50, 95, 99))
        errors = load.get("errors")
        kinds = ", ".join(f"{text(kind)} {text(count)}" for kind, count in errors.items()) \
            if isinstance(errors, dict) and errors else ""
        rate = load.get("rate_per_s")
        lines.append(f"load: {text(load.get('concurrency'))} clients, {text(load.get('answered'))} answered"
                     f" ({f'{rate:.1f}' if _is_number(rate) else DASH}/s), {text(load.get('failed'))} failed"
                     + (f" ({kinds})" if kinds else "") + f"; {percentiles}")
    return tuple(lines)


def _latency(entry: Any) -> LatencyView | None:
    if not isinstance(entry, dict):
        return None
    measured: dict[str, Any] = entry["target"] if isinstance(entry.get("target"), dict) else {}
    status = text(entry.get("status"))
    p50, ratio = measured.get("p50_s"), entry.get("ratio_p50")
    if not _is_number(p50):
        summary = "not measured"
    elif _is_number(ratio):
        summary = f"P50 {milliseconds(p50)} ×{ratio:.2f}"
    elif status == "not-comparable":
        summary = f"P50 {milliseconds(p50)} (not comparable)"
    else:
        summary = f"P50 {milliseconds(p50)}"
    pairs = tuple((str(pair[0]), pair[1]) for pair in measured.get("histogram") or []
                  if isinstance(pair, (list, tuple)) and len(pair) == 2)
    return LatencyView(status=status, summary=summary, message=text(entry.get("message")), p50_s=p50,
                       p99_s=measured.get("p99_s"), ratio_p50=ratio if _is_number(ratio) else None, histogram=pairs,
                       raw=entry)


def localization_view(entry: Any, between: bool = False) -> LocalizationView | None:
    """The view of a `localization` (or, with `between`, a `localization_between`) entry; None when there is
    none. Whatever a hand-edited report holds there renders: a value that is no object shows as text."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        return LocalizationView(status=DASH, summary=clip(entry), against=DASH, reason=None, first_origin=None,
                                origins=(), origin_ops=(), layers=(), between=(DASH, DASH) if between else None,
                                raw=entry)
    status = text(entry.get("status"))
    reason = text(entry["reason"]) if entry.get("reason") is not None else None
    origins = tuple(_tensor(o) for o in _list(entry.get("origins")) if isinstance(o, dict))
    first = first_origin_of(entry)
    first_origin = _tensor(first) if first is not None else None
    ops = entry.get("origin_ops")
    origin_ops = tuple((text(op), n) for op, n in ops.items() if _is_number(n)) if isinstance(ops, dict) else ()
    summary = entry.get("summary")
    if status == "unsupported" or not isinstance(summary, str) or not summary.strip():
        summary = summary_sentence(entry)
    return LocalizationView(
        status=status, summary=" ".join(summary.split()), against=text(entry.get("against")), reason=reason,
        first_origin=first_origin, origins=origins, origin_ops=origin_ops,
        layers=tuple(_layer(item) for item in _list(entry.get("layers")) if isinstance(item, (list, tuple))),
        between=(text(entry.get("a")), text(entry.get("b"))) if between else None, raw=entry)


def code_spans(sentence: str) -> list[tuple[str, bool]]:
    """A sentence as (part, is code) pairs, its `…` spans the code (tensor keys): Markdown and HTML set them
    as code, each part escaped there. A sentence with an odd number of backticks is all text."""
    parts = sentence.split("`")
    if len(parts) % 2 == 0:
        return [(sentence, False)]
    return [(part, index % 2 == 1) for index, part in enumerate(parts) if part]


def _tensor(entry: dict[str, Any]) -> TensorView:
    index = entry.get("index")
    return TensorView(key=text(entry.get("key")), op=text(entry.get("op")),
                      index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                      error_ulp=error_ulp(entry.get("error_ulp")), error_abs=error_ulp(entry.get("error_abs")))


def _layer(item: list[Any] | tuple[Any, ...]) -> LayerPoint:
    key, op, ulp, origin = (list(item) + [None] * 4)[:4]
    return LayerPoint(key=text(key), op=text(op), error_ulp=error_ulp(ulp), origin=origin is True)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _output(name: str, stats: dict[str, Any]) -> OutputView:
    status = text(stats.get("status"))
    return OutputView(name=text(name), status=status, summary=_output_summary(status, stats),
                      evidence=_evidence(status, stats), reason=stats.get("reason"), stats=stats)


def _output_summary(status: str, stats: dict[str, Any]) -> str:
    if status in ("identical", "mismatch"):
        return status
    if _is_number(stats.get("max_ulp")):
        return f"{status} (max {num(stats['max_ulp'])} ULP)"
    if _is_number(stats.get("max_rel")):
        return f"{status} (max rel {stats['max_rel']:.2g})"
    if _is_number(stats.get("changed_fraction")):  # integer, boolean or string outputs: no ULP, no relative error
        return f"{status} ({pct(stats['changed_fraction'])} changed)"
    return status


def _evidence(status: str, stats: dict[str, Any]) -> str:
    if status not in MEASURED_STATUSES:
        return ""
    get = stats.get
    numbers = [f"max {num(get('max_ulp'))} ULP (p99 {num(get('p99_ulp'))})",
               f"max abs {num(get('max_abs'))} (p99 {num(get('p99_abs'))})",
               f"max rel {num(get('max_rel'))} (p99 {num(get('p99_rel'))})", f"{pct(get('changed_fraction'))} changed"]
    if get("top1_agreement") is not None:
        numbers.append(f"top-1 agrees {pct(get('top1_agreement'))}")
    numbers += _sample_evidence(stats)
    tolerance = get("tolerance") or {}
    numbers.append(f"would pass at tol {num(get('min_passing_tolerance'))} (policy atol {_g(tolerance.get('atol'))}, "
                   f"rtol {_g(tolerance.get('rtol'))})")
    return " · ".join(numbers)


def _sample_evidence(stats: dict[str, Any]) -> list[str]:
    """Per-sample numbers: samples beyond tolerance and consistency, top-1 over all rows, the worst samples,
    the worst error in calibrated noise units (each only when the report has it)."""
    get, words = stats.get, []
    if _is_number(get("samples")) and _is_number(get("samples_beyond")):
        words.append(f"{get('samples_beyond')} of {get('samples')} samples beyond"
                     + (f" (consistency {percent(get('consistency'))})" if _is_number(get("consistency")) else ""))
    if _is_number(get("top1_agreement_all")):
        words.append(f"top-1 agrees on {percent(get('top1_agreement_all'))} of all rows")
    worst = [pair for pair in get("worst_samples") or [] if isinstance(pair, (list, tuple)) and len(pair) == 2]
    if worst:
        words.append("worst samples " + ", ".join(f"#{index} ({num(error)})" for index, error in worst))
    if _is_number(get("noise_units")):
        words.append(f"{num(get('noise_units'))}× calibrated noise")
    return words


def consistency_note(consistency: Any) -> str:
    """A review cell's consistency beside its verdict, `96.43 %`, only when some samples were inconsistent."""
    return percent(consistency) if _is_number(consistency) and consistency < 1 else ""


def _difference(entry: dict[str, Any]) -> DifferenceView:
    set_text = set_change(entry)
    golden, target = entry.get("golden"), entry.get("target")
    return DifferenceView(path=text(entry.get("path")), severity=text(entry.get("severity")),
                          change=set_text if set_text is not None else f"{shown(golden)} → {shown(target)}",
                          set_change=set_text, golden=golden, target=target)


def set_change(difference: dict[str, Any]) -> str | None:
    """`missing a, b; extra c` for a set-valued field (an entry with missing/extra), else None."""
    if difference.get("missing") is None and difference.get("extra") is None:
        return None
    parts = [f"{word} {', '.join(map(str, difference.get(word) or []))}" for word in ("missing", "extra")
             if difference.get(word)]
    return "; ".join(parts) or None


def _diff_summary(differences: list[DifferenceView], findings: tuple[dict[str, Any], ...]) -> str:
    counts = Counter(d.severity for d in differences)
    shown_counts = [f"{counts[s]} {s}" for s in SEVERITIES if counts[s]]
    if findings:
        shown_counts.append(f"{len(findings)} finding{'s' if len(findings) > 1 else ''}")
    return ", ".join(shown_counts) or "same"


# ------------------------------------------------------------------------- how values are written

def num(value: Any) -> str:
    """A statistic: integers as they are, floats to 3 significant digits, a dash for none."""
    if value is None:
        return DASH
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal, a dash for none."""
    if value is None:
        return DASH
    return f"{value:.1%}" if _is_number(value) else str(value)


def clip(value: Any, width: int = 120) -> str:
    """A value shortened to `width` characters with an ellipsis; None is the word for absent."""
    text = shown(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def text(value: Any) -> str:
    """Any value as text, a dash for none."""
    return DASH if value is None else str(value)


def _g(value: Any) -> str:
    return f"{value:g}" if _is_number(value) else text(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
