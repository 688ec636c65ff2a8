"""Prometheus metrics of a run (`--metrics PATH`) and of a fleet's latest state (`envcheck review --metrics`),
in the text format node_exporter's textfile collector reads.

prometheus_client writes the format: metric names, HELP and TYPE lines, and label values escaped as the
exposition format asks; before that every label value (sites, targets, outputs, finding codes: data) has its
control characters shown as escapes (textsafe.prometheus_label), which that format does not escape. Each
run's metrics are gauges set from the report's view, so a dashboard sees the last state of every site and
target; a value envcheck does not know is absent, never zero.
"""
from __future__ import annotations

import calendar
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from envcheck.report.view import ReportView, TargetView
from envcheck.textsafe import prometheus_label

TARGET_LABELS = ("site", "target")
NO_SITE = ""


@dataclass(frozen=True)
class TargetState:
    """What the metrics say about one target: from a run's view or from a review's latest runs."""

    site: str
    target: str
    verdict: str
    max_ulp: dict[str, float]
    """Per output, where known."""
    consistency: dict[str, float]
    """Per output: share of samples within tolerance, where the report has it."""
    latency_p50_s: float | None
    findings: dict[tuple[str, str], int]
    """(code, severity) -> count."""

    def with_site(self, site: str) -> TargetState:
        """The same state under another site label."""
        return dataclasses.replace(self, site=site)


def render_metrics(view: ReportView) -> str:
    """The run's metrics: every target's state, the exit code and the time of the run."""
    return render_states((target_state(target) for target in view.targets), exit_code=view.exit_code,
                         timestamp=utc_seconds(view.created))


def render_states(states: Iterable[TargetState], exit_code: int | None, timestamp: float | None) -> str:
    """The text exposition of target states (shared by a run and a fleet review)."""
    registry = CollectorRegistry()
    verdict = Gauge("envcheck_verdict", "1 for the verdict of each target (labels: site, target, verdict)",
                    (*TARGET_LABELS, "verdict"), registry=registry)
    max_ulp = Gauge("envcheck_output_max_ulp", "Largest ULP distance of an output from the golden",
                    (*TARGET_LABELS, "output"), registry=registry)
    consistency = Gauge("envcheck_output_consistency", "Share of samples of an output within tolerance",
                        (*TARGET_LABELS, "output"), registry=registry)
    latency = Gauge("envcheck_latency_p50_seconds", "P50 latency of batch-1 calls of the golden model",
                    TARGET_LABELS, registry=registry)
    findings = Gauge("envcheck_findings", "Findings of a target by code and severity",
                     (*TARGET_LABELS, "code", "severity"), registry=registry)
    for state in states:
        where = (state.site, state.target)
        _labelled(verdict, *where, state.verdict).set(1)
        for output, value in state.max_ulp.items():
            _labelled(max_ulp, *where, output).set(value)
        for output, value in state.consistency.items():
            _labelled(consistency, *where, output).set(value)
        if state.latency_p50_s is not None:
            _labelled(latency, *where).set(state.latency_p50_s)
        for (code, severity), count in state.findings.items():
            _labelled(findings, *where, code, severity).set(count)
    if exit_code is not None:
        Gauge("envcheck_exit_code", "Exit code of the run: 0 ok, 1 drift, 3 could not decide",
              registry=registry).set(exit_code)
    if timestamp is not None:
        Gauge("envcheck_last_run_timestamp_seconds", "When the run (or the newest reviewed run) was made, Unix time",
              registry=registry).set(timestamp)
    return generate_latest(registry).decode("utf-8")


def _labelled(gauge: Gauge, *values: str) -> Gauge:
    """The gauge's child for these label values, each made safe for the text format."""
    return gauge.labels(*(prometheus_label(value) for value in values))


def utc_seconds(created: str) -> float | None:
    """`2026-11-29T19:40:00Z` as Unix seconds; None for anything else."""
    try:
        return float(calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def target_state(target: TargetView) -> TargetState:
    """What the metrics say about one target of a report's view."""
    counts: dict[tuple[str, str], int] = {}
    for finding in target.findings:
        key = (str(finding.get("code")), str(finding.get("severity")))
        counts[key] = counts.get(key, 0) + 1
    return TargetState(site=target.site or NO_SITE, target=target.spec, verdict=target.verdict,
                       max_ulp=_known(target, "max_ulp"), consistency=_known(target, "consistency"),
                       latency_p50_s=target.latency.p50_s if target.latency else None, findings=counts)


def _known(target: TargetView, statistic: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for output in target.outputs:
        value: Any = output.stats.get(statistic)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[output.name] = float(value)
    return found
