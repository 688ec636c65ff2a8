"""Calibrated tolerances: how far the reference target's own benign perturbations move each output (the
noise), and the tolerance that noise yields.

`golden create` has the probe run the model under perturbations that change kernel choice but not the
model (envcheck_probe/calibrate.py); each perturbed output is compared with the reference's own first pass
here. An output's noise is the largest absolute difference any perturbation made, and never less than one
ULP of its largest golden value (a reference that repeats bitwise still has a resolution). Its calibrated
tolerance is `max(policy floor, K × noise)`, as an atol in the band's units (a multiple of max|golden|),
the rtol left at the floor. The manifest keeps all of it (`calibration`); loading a golden computes every
calibrated tolerance again from those numbers and refuses one that does not follow (calibration_problem). A
check lays the calibrated tolerances over the golden's policy, a --policy over both key by key (a file's
`[tolerance.outputs.NAME] atol` replaces that output's calibrated atol, nothing else), and reports each
output's worst error in noise units.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from envcheck.compare.outputs import FloatFormat, compare_output, float_format, ulp_at
from envcheck.compare.policy import Policy
from envcheck.model import Tolerance

K = 4.0
"""Headroom over the largest perturbation seen: other kernels than the few tried move outputs similarly."""
REPEATS = ("repeat", "fresh-process")
"""The perturbations that change nothing but the run: bitwise equal under both is a deterministic reference."""
LAYER = "golden calibration"
"""The policy layer's name in a report's policy record."""


def calibrate(record: dict[str, Any], expected: dict[str, np.ndarray], floor: Policy) -> dict[str, Any]:
    """The manifest's `calibration` from the probe's record (each perturbation's outputs loaded as arrays
    under `outputs`, or `skipped`), the reference's own outputs, and the policy whose tolerances are the floor."""
    perturbations: dict[str, Any] = {}
    noise = {name: 0.0 for name in expected}
    for name, entry in (record.get("perturbations") or {}).items():
        shown = {key: entry[key] for key in ("description", "setting", "skipped") if key in entry}
        if "outputs" in entry:
            shown["outputs"] = {}
            for output, golden in expected.items():
                moved = _moved(output, golden, entry["outputs"].get(output), floor)
                shown["outputs"][output] = moved
                if moved is not None and moved["max_abs"] is not None:
                    noise[output] = max(noise[output], moved["max_abs"])
        perturbations[name] = shown
    return {"k": K, "perturbations": perturbations, "deterministic": _deterministic(perturbations),
            "outputs": {name: _tolerance(expected[name], noise[name], floor.tolerance_for(name)) for name in expected}}


def _moved(name: str, golden: np.ndarray, perturbed: np.ndarray | None, floor: Policy) -> dict[str, Any] | None:
    """How far a perturbation moved one output: max |difference| and max ULP (None: it changed shape or type)."""
    if perturbed is None:
        return None
    if golden.ndim and perturbed.ndim and perturbed.shape[0] < golden.shape[0]:
        golden = golden[:perturbed.shape[0]]  # a large set is calibrated on its first batch
    found = compare_output(name, golden, perturbed, floor.tolerance_for(name))
    if found.status == "mismatch":
        return None
    return {"max_abs": found.max_abs if found.max_abs is not None else (0.0 if found.status == "identical" else None),
            "max_ulp": found.max_ulp}


def _deterministic(perturbations: dict[str, Any]) -> bool | None:
    """True when both repeats reproduced every output bitwise; None when neither could run."""
    ran = [entry for name, entry in perturbations.items() if name in REPEATS and "outputs" in entry]
    if not ran:
        return None
    return all(moved is not None and moved["max_abs"] == 0.0 and moved["max_ulp"] in (0, None)
               for entry in ran for moved in entry["outputs"].values())


def _tolerance(golden: np.ndarray, measured: float, floor: Tolerance, k: float = K) -> dict[str, Any]:
    """An output's noise (never below one ULP of its largest value) and the tolerance it yields; bfloat16 is
    read as the numbers it holds, its ULP in bfloat16 units."""
    fmt = float_format(golden)
    values = fmt.values(golden) if fmt is not None else np.zeros(0)
    finite = values[np.isfinite(values)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    noise = max(measured, _resolution(scale, fmt) if fmt is not None else 0.0)
    atol = max(floor.atol, k * noise / scale) if scale > 0 and math.isfinite(noise) else floor.atol
    return {"noise": noise, "scale": scale, "atol": atol, "rtol": floor.rtol}


def _resolution(scale: float, fmt: FloatFormat) -> float:
    """One ULP of the format at `scale`: a bfloat16 keeps 7 of float32's 23 fraction bits, so its ULP is 2**16
    float32 ULP (normal numbers; near zero, one bfloat16 ULP at 1 as ulp_at does)."""
    if fmt.bfloat16:
        return ulp_at(scale, np.dtype(np.float32)) * 2.0 ** 16
    return ulp_at(scale, np.dtype(fmt.name))


def calibration_problem(calibration: dict[str, Any], expected: dict[str, np.ndarray], floor: Policy) -> str | None:
    """Why a manifest's calibration does not follow from its own numbers (None: it does). Each output's noise,
    scale and tolerance are computed again from the moves the perturbations recorded, the golden's outputs and the
    policy `floor`, as `calibrate` computed them; `k` may be below K (a tighter band), never above."""
    k = calibration["k"]
    if k > K:
        return f"k = {k:g} is above envcheck's {K:g}: it widens every calibrated band"
    if calibration.get("deterministic") != _deterministic(calibration["perturbations"]):
        return "deterministic does not follow from the repeats' recorded moves"
    for name, recorded in sorted(calibration["outputs"].items()):
        if name not in expected:
            return f"output {name!r} is calibrated but the golden has no such output"
        moves = [(entry.get("outputs") or {}).get(name) for entry in calibration["perturbations"].values()]
        measured = max((move["max_abs"] for move in moves if move and move.get("max_abs") is not None), default=0.0)
        honest = _tolerance(expected[name], measured, floor.tolerance_for(name), k)
        differs = [key for key in ("noise", "scale", "atol", "rtol")  # (scale: absent from early calibrations)
                   if key in recorded and not math.isclose(recorded[key], honest[key], rel_tol=1e-9, abs_tol=0.0)]
        if differs:
            return (f"output {name!r} records {', '.join(f'{key} {recorded[key]:.6g}' for key in differs)}, but its "
                    f"perturbations, outputs and policy give {', '.join(f'{key} {honest[key]:.6g}' for key in differs)}")
    return None


def calibrated_layer(calibration: dict[str, Any] | None, floor: Policy) -> dict[str, Any]:
    """The calibrated tolerances as a policy table: the outputs whose calibrated band is wider than the
    golden policy's `floor` (the others keep the floor: restating it would only repeat it); empty when none."""
    outputs = {name: {"atol": entry["atol"], "rtol": entry["rtol"]}
               for name, entry in ((calibration or {}).get("outputs") or {}).items()
               if entry["atol"] > floor.tolerance_for(name).atol or entry["rtol"] > floor.tolerance_for(name).rtol}
    return {"tolerance": {"outputs": outputs}} if outputs else {}


def noise_scales(calibration: dict[str, Any] | None) -> dict[str, float]:
    """Each output's calibrated noise (absolute), for reporting errors in noise units."""
    outputs = (calibration or {}).get("outputs") or {}
    return {name: float(entry["noise"]) for name, entry in outputs.items() if entry.get("noise")}
