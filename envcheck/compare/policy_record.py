"""Which policy applied, from which layers, and what a golden's own policy loosens.

A golden bundle carries its own policy, so a bundle could quietly switch the gate off
(`"*" = "ignore"`, `atol = 1e6`) and still verify. The policy therefore never acts unseen: every
report records the effective policy, each layer's source and hash, and warnings in words for each
way a golden's layer is looser than the defaults, and what a --policy file replaced of the golden's layers
(its calibration above all: a user's band replaces a calibrated one only for the keys it sets).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from typing import Any

from envcheck.compare.latency import LatencyPolicy
from envcheck.compare.policy import DEFAULT_SEVERITY, Policy, ordered_table, replaced_keys, severity_rules
from envcheck.model import Tolerance

LOOSE_TOLERANCE = 1e-3
"""Float32 noise is ~1e-6 relative; a band above this accepts reduced-precision (bf16, TF32) drift."""

# One concrete path per fail-level default rule (globs instantiated), and the findings that fail by
# default: what a loosening rule would silence.
_FAIL_SAMPLES = tuple(pattern.replace("[[]*[]]", "[0]").replace("*", "x")
                      for pattern, severity in DEFAULT_SEVERITY if severity == "fail") + (
    "finding.gpu-cpu-fallback", "finding.driver-cuda-too-old", "finding.cpu-lacks-tensorflow-instructions",
    "finding.cudnn-mismatch", "finding.nvml-lib-rm-version-mismatch")


def digest(table: Any) -> str:
    """sha256 of a policy table's canonical JSON: equal hashes, equal policies (its severity rules hashed in
    their order, which decides)."""
    canonical = ordered_table(table) if isinstance(table, dict) else table
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def loosenings(table: dict[str, Any]) -> list[str]:
    """Each way `table` (a golden's own policy) relaxes the defaults, as one sentence."""
    found = []
    tolerance = table.get("tolerance") or {}
    scopes = [("[tolerance]", tolerance)] + [(f"[tolerance.outputs.{name}]", values)
                                              for name, values in (tolerance.get("outputs") or {}).items()]
    scopes += [(f"[tolerance.architecture.{machine}]", band)
               for machine, band in (tolerance.get("architecture") or {}).items()]
    for where, values in scopes:
        for key in ("atol", "rtol"):
            value = values.get(key)
            if isinstance(value, (int, float)) and value > LOOSE_TOLERANCE:
                found.append(f"{where} {key} = {value:g} is above {LOOSE_TOLERANCE:g}: it accepts drift far beyond "
                             "float32 noise (~1e-6)")
    latency = table.get("latency") or {}
    for key in ("warn_ratio", "fail_ratio"):
        default = getattr(LatencyPolicy(), key)
        value = latency.get(key)
        if isinstance(value, (int, float)) and value > default:
            found.append(f"[latency] {key} = {value:g} is above the default {default:g}: a slower target passes")
    acceptance = table.get("acceptance") or {}
    for key in ("min_consistency", "min_top1_agreement"):
        value = acceptance.get(key)
        if isinstance(value, (int, float)) and value < 1:
            found.append(f"[acceptance] {key} = {value:g} is below 1: an output that drifts beyond its tolerance "
                         f"on up to {1 - value:.2%} of samples is a WARN, not a FAIL")
    for pattern, severity in severity_rules(table):
        if severity == "fail":
            continue
        silenced = [sample for sample in _FAIL_SAMPLES if fnmatch.fnmatchcase(sample, pattern)]
        if silenced:
            shown = ", ".join(silenced[:4]) + (f" and {len(silenced) - 4} more" if len(silenced) > 4 else "")
            found.append(f'[severity] "{pattern}" = "{severity}" lowers fail-level checks ({shown}) to {severity}')
    return found


def effective_table(policy: Policy) -> dict[str, Any]:
    """The merged policy as data (the built-in severity defaults are named by envcheck's version)."""
    return {
        "tolerance": {"atol": policy.default_tolerance.atol, "rtol": policy.default_tolerance.rtol,
                      "outputs": {name: {"atol": t.atol, "rtol": t.rtol}
                                  for name, t in sorted(policy.output_tolerances.items())},
                      # only when set, so that the hashes of policies without it do not change
                      **({"architecture": {machine: {"atol": t.atol, "rtol": t.rtol}
                                           for machine, t in sorted(policy.architecture_tolerances.items())}}
                         if policy.architecture_tolerances else {})},
        "classification": dict(sorted(policy.classification.items())),
        "severity": [[pattern, severity] for pattern, severity in policy.user_rules],
        "latency": {"warn_ratio": policy.latency.warn_ratio, "fail_ratio": policy.latency.fail_ratio,
                    "gate_p99": policy.latency.gate_p99},
        "acceptance": {"min_consistency": policy.min_consistency, "min_top1_agreement": policy.min_top1_agreement},
    }


def policy_record(layers: list[tuple[str, dict[str, Any]]], policy: Policy,
                  golden_sources: str | tuple[str, ...]) -> dict[str, Any]:
    """For the report: the effective policy and its hash, each layer's source and hash, and in words the
    loosenings of the golden's own layers (its policy, its calibration; a --policy file is the user's own
    decision) and what each of the user's layers replaced of the golden's."""
    effective = effective_table(policy)
    sources = (golden_sources,) if isinstance(golden_sources, str) else golden_sources
    # The first golden source is its policy; any other (its calibration) is named as it is.
    names = {source: "own policy" if index == 0 else source.removeprefix("golden ")
             for index, source in enumerate(sources)}
    warnings = [f"the golden's {names[source]} loosens the defaults: {w}"
                for source, table in layers if source in names for w in loosenings(table)]
    replaced = [{"layer": source, "replaces": below, "key": key, "was": was, "now": now}
                for index, (source, table) in enumerate(layers) if source not in names
                for below, under in layers[:index] if below in names
                for key, was, now in replaced_keys(under, table)]
    warnings += [f"{entry['layer']} replaces the golden's {names[entry['replaces']]}: {entry['key']} = "
                 f"{_shown(entry['was'])} → {_shown(entry['now'])}" for entry in replaced]
    warnings += [kept for source, table in layers if source not in names
                 for kept in _calibrated_bands_kept(source, table, layers, names)]
    return {"sha256": digest(effective), "effective": effective,
            "layers": [{"source": "defaults", "sha256": digest(_defaults())}]
            + [{"source": source, "sha256": digest(table)} for source, table in layers],
            "replaced": replaced, "warnings": warnings}


def _calibrated_bands_kept(source: str, table: dict[str, Any], layers: list[tuple[str, dict[str, Any]]],
                           names: dict[str, str]) -> list[str]:
    """A user layer's `[tolerance] atol`/`rtol` applies to the outputs that have no band of their own: say which
    bands of the golden's (its calibration's) it therefore leaves as they are."""
    general = [key for key in ("atol", "rtol") if key in (table.get("tolerance") or {})]
    own = set((table.get("tolerance") or {}).get("outputs") or {})
    found = []
    for below, under in layers:
        if below not in names:
            continue
        for key in general:
            kept = sorted(name for name, values in ((under.get("tolerance") or {}).get("outputs") or {}).items()
                          if key in values and name not in own)
            if kept:
                found.append(f"{source} sets `[tolerance] {key}` for outputs without a band of their own; the "
                             f"golden's {names[below]} keeps its {key} for {', '.join(kept)} (set "
                             f"`[tolerance.outputs.NAME] {key}` to replace one)")
    return found


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value)


def _defaults() -> dict[str, Any]:
    return {"tolerance": {"atol": Tolerance().atol, "rtol": Tolerance().rtol},
            "severity": [list(rule) for rule in DEFAULT_SEVERITY]}
