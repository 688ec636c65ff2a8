"""The CI-log rendering: one plain line per target, nothing cut, evidence indented below."""
from __future__ import annotations

from envcheck.model import FingerprintDifference, RunReport, TargetResult
from envcheck.report.json import report_to_dict
from envcheck.report.terminal import render_plain
from envcheck.report.view import build_view

LONG_SPEC = "docker:registry.factory.example:5000/vision/edge-inference-" + "x" * 120 + ":1.5"


def _result(spec: str, verdict: str, diffs=()) -> TargetResult:
    return TargetResult(spec=spec, site="shenzhen-3-production-line-seven", verdict=verdict, error=None, outputs=(),
                        fingerprint_diff=tuple(diffs), hints=("a hint",) if diffs else (), fingerprint={},
                        target_info={}, timings={}, output_digest=None)


def test_one_line_per_target_and_no_name_is_cut():
    flags = FingerprintDifference(path="cpu.tf_flags", golden=["amx_tile", "avx"], target=["avx"], severity="warn",
                                  missing=("amx_tile",), extra=())
    info = FingerprintDifference(path="packages.requests", golden="1", target="2", severity="info")
    report = RunReport(golden_path="golden/vision", golden_sha256="ab" * 32,
                       targets=(_result(LONG_SPEC, "WARN", [flags, info]), _result("host", "IDENTICAL")),
                       exit_code=0, fail_on="fail", created="2026-11-29T00:00:00Z", envcheck_version="0")
    lines = render_plain(build_view(report_to_dict(report))).splitlines()
    assert lines[0] == "envcheck · golden golden/vision (abababababab) · 1 WARN, 1 IDENTICAL"
    assert lines[1].startswith(f"WARN       {LONG_SPEC} @ shenzhen-3-production-line-seven — ")
    assert " " * 11 + "warn cpu.tf_flags: missing amx_tile" in lines  # indented under its target
    assert any(line.strip() == "1 info-level difference (see the JSON report)" for line in lines)
    assert "packages.requests" not in "\n".join(lines)  # info differences are counted, not listed
    assert lines[-2].startswith("IDENTICAL  host @ shenzhen-3") and lines[-1].startswith("exit 0")
