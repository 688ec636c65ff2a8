"""Judging a serving endpoint's stored records: replica consistency and latency under load.

targets/replicas.py and targets/load.py measure (they talk to the server) and keep their records in the
capture's target info, `replicas` and `load`; this module judges those records and imports nothing but the
model, so a capture read back from disk (a site's, months old) is judged exactly as a fresh one. A record is
data: a value that is not what a writer of ours would write reads as missing, never as a crash.

Both findings are proposed at their default severity; the policy's `finding.<code>` rule decides
(compare/severity.py).
"""
from __future__ import annotations

from typing import Any

from envcheck.model import Finding, Severity

REPLICAS_DISAGREE = "replicas-disagree"
REPLICAS_SEVERITY: Severity = "warn"
LOAD_OVER_BUDGET = "load-p99-over-budget"
LOAD_SEVERITY: Severity = "fail"


def replica_findings(record: dict[str, Any] | None) -> tuple[Finding, ...]:
    """`replicas-disagree` when the record holds more than one answer set; nothing otherwise (or no record)."""
    sets = record.get("answer_sets") if isinstance(record, dict) else None
    # A stored capture is data (a site's may hold anything): only a list of set records is judged.
    if not isinstance(sets, list) or len(sets) < 2 or not all(isinstance(found, dict) for found in sets):
        return ()
    assert isinstance(record, dict)
    counts = " + ".join(f"{found.get('count')}× {_short(found.get('digest'))}{_by(found.get('replicas'))}"
                        for found in sets)
    odd = record.get("odd_replicas") or []
    named = (f"; odd replica{'s' if len(odd) > 1 else ''}: {', '.join(map(str, odd))}" if odd else
             "; no set has a majority, so no replica is named odd" if record.get("header") else "")
    return (Finding(
        code=REPLICAS_DISAGREE, severity=REPLICAS_SEVERITY,
        message=(f"{len(sets)} distinct answer sets in {record.get('repeat')} repetitions of the golden set: "
                 f"{counts}; largest difference between them: {_spread_words(record.get('spread') or [])}{named}"),
        hint=("The replicas behind this endpoint do not compute alike (another CPU or instruction set, other "
              "TF_ENABLE_ONEDNN_OPTS / thread settings, an image left behind by a rollout). Compare their "
              "start-up flags and images" + ("" if record.get("header") else
                                             "; --replica-header NAME names which replica gave which set") + ".")),)


def judge_load(record: dict[str, Any] | None, p99_ms: float | None) -> tuple[Finding, ...]:
    """`load-p99-over-budget` when the measured P99 is above the policy's `[latency] p99_ms`, or when the
    load run had no answered request to measure it on; nothing without a budget or a record."""
    if not isinstance(record, dict) or p99_ms is None:
        return ()
    measured = _number(record.get("p99_ms"))
    context = (f"{record.get('concurrency')} concurrent clients, {record.get('answered')} answered, "
               f"{record.get('failed', 0)} failed, {_shown(record.get('rate_per_s'))}/s")
    if measured is None:
        return (Finding(code=LOAD_OVER_BUDGET, severity=LOAD_SEVERITY,
                        message=f"no request was answered under load ({context}): the P99 budget of "
                                f"{p99_ms:g} ms cannot be met",
                        hint="Read the errors by kind in the load record; check the endpoint and its timeout."),)
    if measured <= p99_ms:
        return ()
    return (Finding(code=LOAD_OVER_BUDGET, severity=LOAD_SEVERITY,
                    message=f"P99 latency {measured:.1f} ms is over the budget of {p99_ms:g} ms "
                            f"(P50 {_shown(record.get('p50_ms'))} ms, P95 {_shown(record.get('p95_ms'))} ms; {context})",
                    hint="The service is slower under this load than the policy allows: more replicas, fewer "
                         "threads per replica fighting for cores, or a budget that matches the hardware."),)


# ------------------------------------------------------------------------------------------- helpers

def _short(digest: Any) -> str:
    return str(digest)[:12]


def _by(replicas: Any) -> str:
    return f" (from {', '.join(map(str, replicas))})" if replicas else ""


def _spread_words(spread: list[dict[str, Any]]) -> str:
    if not isinstance(spread, list) or not spread:
        return "none recorded"
    return ", ".join(f"{item.get('output')} max |Δ| {_significant(item.get('max_abs'))}"
                     + (f" ({item.get('max_ulp')} ULP)" if item.get("max_ulp") is not None else "")
                     for item in spread if isinstance(item, dict))


def _significant(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _shown(value: Any) -> str:
    number = _number(value)
    return "?" if number is None else f"{number:.1f}"
