"""Where two environments' numbers first part: compare two layer records (the probe's layers.py) tensor by
tensor, in the reference's topological order.

Tensors are matched by (key, op, dtype, shape); a tensor *diverges* when its bytes differ (sha256). The first
divergent tensor is where the numbers first part; the *origins* are divergent tensors whose recorded inputs all
match, i.e. the ops whose kernels compute differently (everything after them inherits the difference); the
largest jump is where an error grows most over the largest error of its inputs. `fused_only`: every layer
matches unfused but the final outputs drift, so the difference is inside a fused kernel. Errors come from the
elements both records keep plus the summary statistics (each a lower bound of the largest element error),
in ULP of the reference tensor's largest magnitude. A record the probe skipped (every output bitwise the
golden's: nothing to localise) makes the localisation `unsupported`, saying so. Localisation describes; it
never changes a verdict.
"""
from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from envcheck import schemas
from envcheck.compare.outputs import ulp_at
from envcheck.localization_words import summary_sentence

LAYERS_SCHEMA = "envcheck.layers/1"
"""Mirrors the probe's layers.py (tests/test_layering.py checks that they agree)."""
TOP_ORIGINS = 10
"""Origins listed in a report (the count of each op type covers them all)."""


@dataclass(frozen=True, slots=True)
class _Layer:
    index: int
    key: str
    op: str
    diverges: bool
    error: float | None
    """A lower bound of the largest element error (absolute); None when the values cannot be compared."""
    error_ulp: float | None
    origin: bool
    nonfinite: bool = False
    """Its count of NaN/Inf elements changed: the error is unbounded, not a number of ULP."""


def unsupported(reason: str) -> dict[str, Any]:
    """A localisation that could not be made, and why (never an error: the verdict stands without it)."""
    return {"status": "unsupported", "reason": reason}


def localize(reference: Any, target: Any, *, outputs_drift: bool, against: str = "golden",
             target_name: str = "the target") -> dict[str, Any]:
    """The `localization` entry of a report: `reference` and `target` are layer records (None: not recorded);
    `outputs_drift`: whether the final outputs were found to differ (for fused_only); `against` and
    `target_name` name the two sides in reasons."""
    problem = (_unusable(reference, "the golden" if against == "golden" else against)
               or _unusable(target, target_name))
    if problem:
        return unsupported(problem)
    if reference.get("samples") != target.get("samples"):
        return unsupported(f"the records ran different samples ({reference.get('samples')} vs {target.get('samples')})")
    theirs = {_identity(t): t for t in target["tensors"]}
    layers: list[_Layer] = []
    status = {t["key"]: None for t in reference["tensors"]}  # key -> diverges (None: unmatched)
    for index, mine in enumerate(reference["tensors"]):
        other = theirs.get(_identity(mine))
        if other is None:
            continue
        diverges = mine["sha256"] != other["sha256"]
        status[mine["key"]] = diverges
        nonfinite = mine.get("nonfinite", 0) != other.get("nonfinite", 0)
        error = None if nonfinite else _error(mine, other) if diverges else 0.0
        origin = diverges and not mine.get("opaque_inputs") and not other.get("opaque_inputs") and all(
            status.get(key) is False for key in mine.get("inputs", []))
        layers.append(_Layer(index, mine["key"], mine["op"], diverges, error, _in_ulp(error, mine), origin, nonfinite))
    if not layers:
        return unsupported("no tensor of one record matches the other's (another model or another TensorFlow graph)")
    return _summarise(layers, reference, target, outputs_drift, against)


def _unusable(record: Any, whose: str) -> str | None:
    """Why `record` cannot be compared (None: it can): absent, of another format, invalid, or unsupported."""
    if not isinstance(record, dict):
        return f"{whose} has no layer record"
    problem = schemas.check(record, LAYERS_SCHEMA, f"{whose}'s layer record")
    if problem:
        return problem
    if record["status"] == "skipped":  # the probe's --layers auto: nothing differed, so nothing was recorded
        return (f"{whose} recorded no layers: {record.get('reason') or 'skipped'} "
                "(--layers always records them)")
    if record["status"] != "ok":
        return f"{whose}: {record.get('reason') or 'no layer record'}"
    return None


def _identity(tensor: dict[str, Any]) -> tuple[str, str, str, tuple[int, ...]]:
    return tensor["key"], tensor["op"], tensor["dtype"], tuple(tensor["shape"])


def _summarise(layers: list[_Layer], reference: dict[str, Any], target: dict[str, Any], outputs_drift: bool,
               against: str) -> dict[str, Any]:
    divergent = [layer for layer in layers if layer.diverges]
    origins = [layer for layer in divergent if layer.origin]
    fused_only = not divergent and outputs_drift
    result: dict[str, Any] = {
        "status": "ok" if divergent or fused_only else "identical",
        "against": against,
        "mode": reference.get("mode"),
        "samples": reference.get("samples"),
        "coverage": {"matched": len(layers), "reference": len(reference["tensors"]),
                     "target": len(target["tensors"]), "complete": bool(reference.get("complete", True)
                                                                        and target.get("complete", True))},
        "divergent": len(divergent),
        "first_divergence": _entry(divergent[0]) if divergent else None,
        "origins": [_entry(layer) for layer in origins[:TOP_ORIGINS]],
        "origin_ops": dict(Counter(layer.op for layer in origins).most_common()),
        "largest_jump": _largest_jump(layers, reference),
        "growth_to_output": _growth(layers, origins or divergent, reference),
        "fused_only": fused_only,
        "unfused_equals_fused": {"reference": reference.get("unfused_equals_fused"),
                                 "target": target.get("unfused_equals_fused")},
        # The chart's series: per matched layer in topological order, its error in ULP (0: identical).
        "layers": [[layer.key, layer.op, _rounded(layer.error_ulp) if layer.diverges else 0, layer.origin]
                   for layer in layers],
    }
    result["summary"] = summary_sentence(result)
    return result


def _entry(layer: _Layer) -> dict[str, Any]:
    return {"key": layer.key, "op": layer.op, "index": layer.index, "error_abs": _rounded(layer.error),
            "error_ulp": _rounded(layer.error_ulp), **({"nonfinite": True} if layer.nonfinite else {})}


def _largest_jump(layers: list[_Layer], reference: dict[str, Any]) -> dict[str, Any] | None:
    """The divergent tensor whose error grows most over the largest error among its (divergent) inputs."""
    by_key = {layer.key: layer for layer in layers}
    inputs = {t["key"]: t.get("inputs", []) for t in reference["tensors"]}
    best: tuple[float, _Layer, _Layer] | None = None
    for layer in layers:
        if not layer.diverges or layer.error_ulp is None:
            continue
        before = [by_key[key] for key in inputs.get(layer.key, []) if key in by_key and by_key[key].diverges
                  and by_key[key].error_ulp]
        if not before:
            continue
        source = max(before, key=lambda b: b.error_ulp or 0.0)
        factor = layer.error_ulp / (source.error_ulp or 1.0)
        if best is None or factor > best[0]:
            best = (factor, layer, source)
    if best is None:
        return None
    factor, layer, source = best
    return {**_entry(layer), "factor": _rounded(factor), "from": source.key}


def _growth(layers: list[_Layer], starts: list[_Layer], reference: dict[str, Any]) -> dict[str, Any] | None:
    """How much the first origin's error (in ULP) has grown by the worst final output."""
    if not starts or not starts[0].error_ulp:
        return None
    by_key = {layer.key: layer for layer in layers}
    finals = [(name, by_key[key]) for name, key in sorted((reference.get("outputs") or {}).items()) if key in by_key]
    finals = [(name, layer) for name, layer in finals if layer.error_ulp is not None]
    if not finals:
        return None
    name, worst = max(finals, key=lambda pair: pair[1].error_ulp or 0.0)
    return {"output": name, "key": worst.key, "error_ulp": _rounded(worst.error_ulp),
            "factor": _rounded((worst.error_ulp or 0.0) / starts[0].error_ulp)}


def _error(mine: dict[str, Any], other: dict[str, Any]) -> float | None:
    """A lower bound of the largest element error: the kept elements' and the statistics' differences."""
    bounds = []
    a, b = _sample(mine), _sample(other)
    if a is not None and b is not None and a.shape == b.shape and a.size:
        with np.errstate(invalid="ignore"):
            difference = np.abs(a - b)
        finite = difference[np.isfinite(difference)]
        if finite.size:
            bounds.append(float(finite.max()))
    for stat in ("min", "max", "mean"):
        if isinstance(mine.get(stat), (int, float)) and isinstance(other.get(stat), (int, float)):
            bounds.append(abs(float(mine[stat]) - float(other[stat])))
    return max(bounds) if bounds else None


def _sample(tensor: dict[str, Any]) -> np.ndarray | None:
    try:
        raw = base64.b64decode(tensor["sample"])
        if tensor["dtype"] == "bfloat16":
            return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        return np.frombuffer(raw, np.dtype(tensor["dtype"]).newbyteorder("<")).astype(np.float64)
    except (KeyError, ValueError, TypeError):
        return None


def _in_ulp(error: float | None, tensor: dict[str, Any]) -> float | None:
    scale = max(abs(tensor.get("min") or 0.0), abs(tensor.get("max") or 0.0))
    if error is None or not math.isfinite(error) or not math.isfinite(scale):
        return None
    dtype = "float32" if tensor["dtype"] == "bfloat16" else tensor["dtype"]
    return error / ulp_at(scale, np.dtype(dtype))


def _rounded(value: float | None) -> float | None:
    """Four significant digits; None for none or a non-finite value (JSON has no NaN or Infinity)."""
    return None if value is None or not math.isfinite(value) else float(f"{value:.4g}")
