"""The tolerance and severity policy: defaults, then the golden manifest's, then a TOML file's.

Policy file (TOML), every table optional; its format is envcheck/schemas/policy-1.schema.json, and
an unknown key, a wrong type or a bad value is a usage error (exit 2) naming the key:

    [tolerance]                 # every output: pass when |err| <= atol*max|golden| + rtol*|golden|
    atol = 1e-5
    rtol = 1e-5

    [tolerance.outputs.embedding]   # one output: e.g. accept bf16-level drift
    atol = 1e-2
    rtol = 1e-2
    classification = false          # top-1 agreement check on/off (default: auto-detect softmax)

    [tolerance.architecture.aarch64]    # only for an aarch64 target against a golden of another architecture:
    atol = 1e-4                         # every output's band widened to at least this (x86_64 likewise)
    rtol = 1e-4

    [acceptance]                # task level: drift beyond the band that still meets both rates is a WARN
    min_consistency = 0.999     # share of samples entirely within tolerance (top-1 kept); default 1.0
    min_top1_agreement = 0.999  # classification outputs: share of rows whose top-1 agrees; default 1.0

    [latency]                   # P50 target / P50 golden, same hardware class only (docs/drift.md)
    warn_ratio = 1.75           # P50 or mean: warn above this (and above the run's own block spread)
    fail_ratio = 3.0
    gate_p99 = false            # P99 is reported; gated only when true
    p99_ms = 250                # a serving endpoint's P99 under load (--concurrency): fail above it

    [severity]                  # fingerprint path glob -> fail | warn | info | ignore; first match wins
    "env.TF_ENABLE_ONEDNN_OPTS" = "fail"
    "packages.numpy" = "info"
    "finding.gpu-architecture-differs" = "warn"   # findings too, by code

    [integrity]                 # the golden's own policy only: the probe reads it in each target
    distributions = ["opencv-python-headless"]    # verified against their RECORD beside the numerics ones

Layers (the golden's policy, its calibration, a --policy file) are laid over one another by `overlay`, key by
key: a layer replaces exactly the keys it sets, and `replaced_keys` says which. Severity rules are first-match,
so their order is part of the policy: golden writers store them as a list of [pattern, severity] pairs, which
the schema accepts beside the table form (read in the order written).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from envcheck import fields, schemas
from envcheck.compare.latency import LatencyPolicy
from envcheck.errors import PolicyError, UsageError
from envcheck.files import read_toml
from envcheck.model import Severity, Tolerance, is_parity, model_output_name

# First match wins. Paths are dotted, list items as [i] (see compare/fingerprint.py); the rules and
# their order come from the field registry (envcheck/fields.py, docs/fields.md).
DEFAULT_SEVERITY: tuple[tuple[str, Severity], ...] = fields.severity_rules()
SEVERITIES = frozenset(get_args(Severity))


@dataclass(frozen=True)
class Policy:
    """Tolerances per output and severities per fingerprint path: the user's rules over the registry's defaults."""
    default_tolerance: Tolerance = Tolerance()
    output_tolerances: dict[str, Tolerance] = field(default_factory=dict)
    classification: dict[str, bool] = field(default_factory=dict)
    """Per output: force the top-1 check on or off; absent means auto-detect a probability output."""
    user_rules: tuple[tuple[str, Severity], ...] = ()
    """From the golden's manifest and --policy, consulted before the defaults."""
    latency: LatencyPolicy = LatencyPolicy()
    min_consistency: float = 1.0
    """`[acceptance]`: a drifted output whose share of consistent samples meets this is accepted (a WARN);
    1.0, the default, accepts none."""
    min_top1_agreement: float = 1.0
    """`[acceptance]`: and whose top-1 agreement over all rows meets this (outputs that are no classification
    meet it)."""
    architecture_tolerances: dict[str, Tolerance] = field(default_factory=dict)
    """`[tolerance.architecture.<machine>]`: per target architecture, the band for a golden of another one."""
    architecture_band: Tolerance | None = None
    """The band in effect for this comparison (`across`): the target's architecture's, where the golden's differs."""
    latency_p99_ms: float | None = None
    """`[latency] p99_ms`: a serving endpoint's P99 budget under load, in milliseconds (None: not judged);
    compared with what the load run measured, never with the golden's in-process latency."""

    def across(self, architectures: fields.Architectures) -> Policy:
        """The policy for one comparison: with its target architecture's band in effect where the golden was made on
        another architecture (its calibration measured noise there, which cannot model another ISA); as it is
        otherwise, or where the policy sets no band for that architecture (the default band applies)."""
        band = self.architecture_tolerances.get(architectures.target) if architectures.crossed else None
        return dataclasses.replace(self, architecture_band=band)

    def tolerance_for(self, output: str) -> Tolerance:
        """The tolerance band of one output (its own, else the default); a TFLite comparison of an output
        (`tflite:NAME`, `parity:NAME`) has that output's. Across architectures the band in effect widens it, key by
        key, to at least its own atol and rtol (never narrows a wider band of the output's); parity, the TFLite
        model against the SavedModel on the same box, never crosses an architecture and keeps its own."""
        own = self.output_tolerances.get(model_output_name(output), self.default_tolerance)
        band = self.architecture_band
        if band is None or is_parity(output):
            return own
        return Tolerance(atol=max(own.atol, band.atol), rtol=max(own.rtol, band.rtol))

    def classification_for(self, output: str) -> bool | None:
        """Whether the top-1 check is forced on or off for one output (None: auto-detect), as tolerance_for."""
        return self.classification.get(model_output_name(output))

    def user_severity(self, path: str) -> Severity | None:
        """The severity the user's policy gives `path`, or None when no rule of theirs matches."""
        return _first_match(self.user_rules, path)

    def severity_for(self, path: str) -> Severity:
        """The severity of a difference at `path`: the user's rule, else the registry's default, else info."""
        return self.user_severity(path) or _first_match(DEFAULT_SEVERITY, path) or "info"


def _first_match(rules: tuple[tuple[str, Severity], ...], path: str) -> Severity | None:
    for pattern, severity in rules:
        # A rule written for an older section name (cuda_libraries.*) still applies to what it meant.
        if fnmatch.fnmatchcase(path, fields.current_path(pattern)):
            return severity
    return None


class PolicyFileError(PolicyError, UsageError):
    """A policy that breaks its format (unknown key, wrong type, bad value): a usage error, exit 2,
    like any other bad input on the command line. A golden's own policy is checked by golden.py,
    which turns this into a GoldenError (exit 3: the bundle is broken)."""


GOLDEN_ONLY = ("integrity",)
"""Tables the probe reads from the golden's own policy, in each target, before anything is compared
(`[integrity] distributions`: the probe's stages.py): a --policy file, read on the host, cannot set them."""


def load_policy_file(path: Path) -> dict[str, Any]:
    """The TOML file as a table, checked against the policy schema (PolicyFileError names the key)."""
    table = read_toml(path, "policy file", PolicyFileError)
    _refuse_golden_only(table, str(path))
    validate_policy(table, str(path))
    return table


def _refuse_golden_only(table: dict[str, Any], source: str) -> None:
    """A --policy file that sets what only the golden's policy can would change nothing: refused, never ignored."""
    for key in GOLDEN_ONLY:
        if key in table:
            raise PolicyFileError(f"{source}: {_toml_location((key,), table=True)} is read by the probe from the "
                                  "golden's own policy (its manifest's `policy`); a --policy file cannot set it")


def validate_policy(table: Any, source: str) -> None:
    """PolicyFileError for the first way `table` breaks envcheck/schemas/policy-1.schema.json,
    worded for a TOML file: "`[tolerence]`: did you mean `[tolerance]`?"."""
    found = _one_per_key(schemas.problems("policy", table)) or _not_a_number(table)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise PolicyFileError(f"{source}: {_worded(found[0], table)}{more}")


def _one_per_key(found: list[schemas.Problem]) -> list[schemas.Problem]:
    """A severity of 1 breaks both `type` and `enum`: say it once."""
    seen: dict[tuple, schemas.Problem] = {}
    for problem in found:
        seen.setdefault(problem.path, problem)
    return list(seen.values())


def _not_a_number(table: dict[str, Any]) -> list[schemas.Problem]:
    """NaN passes `minimum: 0` (every comparison with NaN is false) but would fail every output."""
    tolerance = table.get("tolerance", {})
    tables = [(("tolerance",), tolerance)] + [(("tolerance", "outputs", name), overrides)
                                              for name, overrides in tolerance.get("outputs", {}).items()]
    tables += [(("tolerance", "architecture", machine), band)
               for machine, band in tolerance.get("architecture", {}).items()]
    found = [schemas.Problem(where + (key,), "", "minimum", values[key], 0)
             for where, values in tables for key in ("atol", "rtol") if key in values and math.isnan(values[key])]
    latency, acceptance = table.get("latency", {}), table.get("acceptance", {})
    found += [schemas.Problem(("acceptance", key), "", "maximum", acceptance[key], 1)
              for key in ("min_consistency", "min_top1_agreement") if key in acceptance and math.isnan(acceptance[key])]
    return found + [schemas.Problem(("latency", key), "", "exclusiveMinimum", latency[key], 1)
                    for key in ("warn_ratio", "fail_ratio", "p99_ms") if key in latency and math.isnan(latency[key])]


def _worded(problem: schemas.Problem, table: Any) -> str:
    where = _toml_location(problem.path, _is_table(table, problem.path))
    if problem.keyword == "additionalProperties":
        if problem.suggestion is not None:
            # (the suggestion is a table where the mistyped key is one: `[tolerence]` -> `[tolerance]`)
            alike = _toml_location(problem.path[:-1] + (problem.suggestion,), _is_table(table, problem.path))
            return f"{where}: did you mean {alike}?"
        known = ", ".join(f"`{key}`" for key in problem.expected)
        return f"{where}: unknown key (known here: {known})" if known else f"{where}: unknown key"
    if problem.keyword == "maximum" or (problem.keyword == "minimum" and problem.path[:1] == ("acceptance",)):
        return f"{where} must be a share between 0 and 1, got {_toml_value(problem.instance)}"
    if problem.keyword == "minimum":
        return f"{where} must be a non-negative number, got {_toml_value(problem.instance)}"
    if problem.keyword == "exclusiveMinimum" and problem.path == ("latency", "p99_ms"):
        return f"{where} must be a number of milliseconds above 0 ms, got {_toml_value(problem.instance)}"
    if problem.keyword == "exclusiveMinimum":
        return f"{where} must be a ratio above 1, got {_toml_value(problem.instance)}"
    if problem.keyword == "enum":
        return f"{where} = {_toml_value(problem.instance)}; expected one of {', '.join(sorted(SEVERITIES))}"
    return f"{where} {problem.message.replace('an object', 'a table')}"


def _is_table(table: Any, path: tuple[str | int, ...]) -> bool:
    value = table
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return isinstance(value, dict)


def _toml_location(path: tuple[str | int, ...], table: bool) -> str:
    """`[tolerance.outputs.embedding]` for a table, `[tolerance] atol` for a key in one, `atol` at the top."""
    if not path:
        return "the policy"
    names = [_toml_key(str(part)) for part in path]
    if table:
        return f"`[{'.'.join(names)}]`"
    return f"`[{'.'.join(names[:-1])}] {names[-1]}`" if len(names) > 1 else f"`{names[0]}`"


def _toml_value(value: Any) -> str:
    try:
        return json.dumps(value)  # strings quoted, booleans lowercase: as TOML writes them
    except (TypeError, ValueError):
        return repr(value)


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) else json.dumps(key)


def build_policy(*layers: dict[str, Any], source: str = "policy") -> Policy:
    """The policy of `layers` (each checked first) laid over the defaults, later layers over earlier ones."""
    merged: dict[str, Any] = {}
    for layer in layers:
        validate_policy(layer or {}, source)
        merged = overlay(merged, layer or {})
    return _policy_from(merged)


def overlay(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer` laid over `base`, key by key: the one place policies are layered. A layer replaces exactly the keys
    it sets (a per-output `rtol` leaves that output's `atol` where the layers below put it); its severity rules
    are consulted before those below (first match wins)."""
    merged = _overlay_keys(base, {key: value for key, value in layer.items() if key != "severity"})
    if "severity" in layer:
        merged["severity"] = [list(rule) for rule in severity_rules(layer) + severity_rules(base)]
    return merged


def _overlay_keys(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in layer.items():
        below = base.get(key)
        merged[key] = _overlay_keys(below, value) if isinstance(value, dict) and isinstance(below, dict) else value
    return merged


def replaced_keys(base: dict[str, Any], layer: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """What `layer` replaces of `base`: (where, as a policy file names it; the value below; the layer's) for each
    key both set to different values, and each severity pattern both rule on differently."""
    found = [(_toml_location(path, table=False), was, now) for path, was, now in _replaced_leaves(base, layer, ())]
    theirs = dict(reversed(severity_rules(base)))  # (the first rule of a pattern is the one that matches)
    for pattern, severity in dict(reversed(severity_rules(layer))).items():
        if pattern in theirs and theirs[pattern] != severity:
            found.append((f"`[severity] {_toml_key(pattern)}`", theirs[pattern], severity))
    return found


def _replaced_leaves(base: dict[str, Any], layer: dict[str, Any], path: tuple[str, ...]
                     ) -> list[tuple[tuple[str, ...], Any, Any]]:
    found = []
    for key, value in layer.items():
        if (key == "severity" and not path) or key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            found += _replaced_leaves(base[key], value, path + (key,))
        elif base[key] != value:
            found.append((path + (key,), base[key], value))
    return found


def severity_rules(table: dict[str, Any]) -> tuple[tuple[str, Severity], ...]:
    """A policy table's severity rules in first-match order. Two forms say it: a table (a TOML file's
    `[severity]`, or a manifest written before rules were stored as a list), read in the order written, and the
    list of [pattern, severity] pairs every golden writer stores (golden.py), which no JSON writer reorders."""
    rules = table.get("severity") or {}
    pairs = rules.items() if isinstance(rules, dict) else rules
    return tuple((str(pattern), severity) for pattern, severity in pairs)


def ordered_table(table: dict[str, Any]) -> dict[str, Any]:
    """The table with its severity rules as the ordered list of pairs: as stored, and as hashed."""
    if "severity" not in table:
        return table
    return {**table, "severity": [list(rule) for rule in severity_rules(table)]}


def unknown_outputs(table: dict[str, Any], known: Iterable[str], source: str) -> None:
    """PolicyFileError (exit 2) when `table` sets a tolerance for an output the golden does not have: a misspelt
    name would otherwise be accepted and change nothing."""
    known = sorted(known)
    for name in (table.get("tolerance") or {}).get("outputs") or {}:
        if name not in known:
            where = _toml_location(("tolerance", "outputs", name), table=True)
            raise PolicyFileError(f"{source}: {where}: the golden has no output {name!r} (its outputs: "
                                  f"{', '.join(known)})")


def _policy_from(table: dict[str, Any]) -> Policy:
    """The Policy that a merged table says, every key it does not set at its default."""
    tolerance = table.get("tolerance", {})
    default = _tolerance(tolerance, Tolerance())
    outputs = tolerance.get("outputs", {})
    latency, acceptance = table.get("latency", {}), table.get("acceptance", {})
    defaults = Policy()
    return Policy(default_tolerance=default,
                  output_tolerances={name: _tolerance(values, default) for name, values in outputs.items()},
                  # (a band sets both keys or leaves one at the default band's: never at another output's)
                  architecture_tolerances={machine: _tolerance(band, default)
                                           for machine, band in tolerance.get("architecture", {}).items()},
                  classification={name: values["classification"] for name, values in outputs.items()
                                  if "classification" in values},  # a bool: the schema refuses "false"
                  user_rules=severity_rules(table),
                  latency=LatencyPolicy(warn_ratio=float(latency.get("warn_ratio", defaults.latency.warn_ratio)),
                                        fail_ratio=float(latency.get("fail_ratio", defaults.latency.fail_ratio)),
                                        gate_p99=bool(latency.get("gate_p99", defaults.latency.gate_p99))),
                  min_consistency=float(acceptance.get("min_consistency", defaults.min_consistency)),
                  min_top1_agreement=float(acceptance.get("min_top1_agreement", defaults.min_top1_agreement)),
                  latency_p99_ms=float(latency["p99_ms"]) if "p99_ms" in latency else defaults.latency_p99_ms)


def _tolerance(table: dict[str, Any], base: Tolerance) -> Tolerance:
    return Tolerance(atol=float(table.get("atol", base.atol)), rtol=float(table.get("rtol", base.rtol)))
