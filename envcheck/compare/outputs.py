"""Compare output tensors with the golden's and return the evidence, not just a verdict.

Policy (shared DRIFT.md): flush |x| < FLT_MIN to zero; shape, dtype and NaN/Inf mask must match;
an element passes when |actual − golden| ≤ atol·scale + rtol·|golden|, scale = max|golden|; a
probability output must also keep its top-1 class wherever the golden's top-1/top-2 margin is clear.
"""
from __future__ import annotations

import itertools

import numpy as np

from envcheck.compare.policy import Policy
from envcheck.model import OutputComparison, Tolerance

# A golden top-1/top-2 margin below this share of the output's scale is a coin toss, not a class.
CLEAR_MARGIN = 1e-3
# ULP-distance histogram buckets: 0, 1, 2–3, 4–7, … (powers of two), last one open-ended.
ULP_EDGES = (0, 1, 2, 4, 8, 16, 64, 256, 1024, 1 << 16, 1 << 62)
ORDERED_INT = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def compare_outputs(golden: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                    policy: Policy) -> tuple[OutputComparison, ...]:
    results = []
    for name in sorted(set(golden) | set(actual)):
        tolerance = policy.tolerance_for(name)
        if name not in actual:
            results.append(_mismatch(name, tolerance, "output missing from the target's results"))
        elif name not in golden:
            results.append(_mismatch(name, tolerance, "output not in the golden (the model's signature changed)"))
        else:
            results.append(compare_output(name, golden[name], actual[name], tolerance,
                                          policy.classification.get(name)))
    return tuple(results)


def compare_output(name: str, golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance,
                   classification: bool | None = None) -> OutputComparison:
    if golden.dtype != actual.dtype:
        return _mismatch(name, tolerance, f"dtype changed: {golden.dtype} → {actual.dtype}", golden)
    if golden.shape != actual.shape:
        return _mismatch(name, tolerance, f"shape changed: {golden.shape} → {actual.shape}", golden)
    shape, dtype = tuple(golden.shape), str(golden.dtype)
    if golden.tobytes() == actual.tobytes():
        return OutputComparison(name=name, status="identical", reason=None, tolerance=tolerance, shape=shape,
                                dtype=dtype, max_abs=0.0, mean_abs=0.0, p99_abs=0.0, max_rel=0.0, p99_rel=0.0,
                                max_ulp=0 if golden.dtype in ORDERED_INT else None, p99_ulp=0.0,
                                changed_fraction=0.0, min_passing_tolerance=0.0)
    if golden.dtype.kind != "f":
        changed = float(np.mean(golden != actual)) if golden.size else 0.0
        return OutputComparison(name=name, status="drift", reason=f"{dtype} values differ in {changed:.2%} of elements",
                                tolerance=tolerance, shape=shape, dtype=dtype, changed_fraction=changed)
    mask_problem = _nonfinite_mismatch(golden, actual)
    if mask_problem:
        return _mismatch(name, tolerance, mask_problem, golden)
    return _compare_floats(name, golden, actual, tolerance, classification)


def _compare_floats(name, golden, actual, tolerance, classification) -> OutputComparison:
    finite = np.isfinite(golden)
    tiny = np.finfo(golden.dtype).tiny
    ref = np.where(np.abs(golden) < tiny, 0, golden)[finite].astype(np.float64)
    got = np.where(np.abs(actual) < tiny, 0, actual)[finite].astype(np.float64)
    err = np.abs(got - ref)
    mag = np.abs(ref)
    scale = float(mag.max()) if mag.size else 0.0
    allowed = tolerance.atol * scale + tolerance.rtol * mag
    nonzero = mag > 0
    rel = err[nonzero] / mag[nonzero]
    ulp = _ulp_distance(golden[finite], actual[finite])
    denominator = scale + mag
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(err == 0, 0.0, err / denominator)
    min_tolerance = float(needed.max()) if needed.size else 0.0
    top1 = _top1_agreement(golden, actual, scale, classification)

    reasons = []
    if np.any(err > allowed):
        worst = int(np.argmax(err - allowed))
        reasons.append(f"beyond tolerance: {int(np.sum(err > allowed))} of {err.size} elements, worst |err| "
                       f"{err[worst]:.3g} > allowed {allowed[worst]:.3g} (would pass at tol {min_tolerance:.2g})")
    if top1 is not None and top1 < 1.0:
        reasons.append(f"top-1 class changed on {1 - top1:.1%} of rows with a clear margin")
    return OutputComparison(
        name=name, status="drift" if reasons else "noise", reason="; ".join(reasons) or None,
        tolerance=tolerance, shape=tuple(golden.shape), dtype=str(golden.dtype),
        max_abs=_stat(err, np.max), mean_abs=_stat(err, np.mean), p99_abs=_stat(err, lambda a: np.percentile(a, 99)),
        max_rel=_stat(rel, np.max), p99_rel=_stat(rel, lambda a: np.percentile(a, 99)),
        max_ulp=int(ulp.max()) if ulp is not None and ulp.size else None,
        p99_ulp=_stat(ulp, lambda a: np.percentile(a, 99)) if ulp is not None else None,
        changed_fraction=float(np.mean(~((golden == actual) | (np.isnan(golden) & np.isnan(actual))))),
        top1_agreement=top1, min_passing_tolerance=min_tolerance,
        ulp_histogram=_histogram(ulp) if ulp is not None else ())


def _nonfinite_mismatch(golden: np.ndarray, actual: np.ndarray) -> str | None:
    golden_nan, actual_nan = np.isnan(golden), np.isnan(actual)
    if np.any(actual_nan & ~golden_nan):
        return f"NaN in {int(np.sum(actual_nan & ~golden_nan))} element(s) where the golden is finite"
    if np.any(golden_nan & ~actual_nan):
        return f"the golden has NaN in {int(np.sum(golden_nan & ~actual_nan))} element(s) the target does not"
    golden_inf, actual_inf = np.isinf(golden), np.isinf(actual)
    if np.any(golden_inf != actual_inf) or np.any(golden[golden_inf] != actual[golden_inf]):
        return f"Inf in {int(np.sum(golden_inf != actual_inf))} element(s) differs from the golden"
    return None


def _ulp_distance(golden: np.ndarray, actual: np.ndarray) -> np.ndarray | None:
    """Units in the last place between two float arrays of one dtype (float16/32/64)."""
    as_int = ORDERED_INT.get(golden.dtype)
    if as_int is None:
        return None
    bits = np.iinfo(as_int).bits

    def ordered(values: np.ndarray) -> np.ndarray:
        # Map sign-magnitude bit patterns onto a monotonic integer line (−0 and +0 meet at 0).
        raw = values.view(as_int).astype(np.int64)
        return np.where(raw < 0, np.int64(-(1 << (bits - 1))) - raw, raw)

    if bits == 64:  # an int64 difference could overflow; float64 is exact enough for a distance
        return np.abs(ordered(actual).astype(np.float64) - ordered(golden).astype(np.float64))
    return np.abs(ordered(actual) - ordered(golden))


def _top1_agreement(golden, actual, scale, classification) -> float | None:
    if classification is False or golden.ndim < 2 or golden.shape[-1] < 2:
        return None
    if classification is None and not _looks_like_probabilities(golden):
        return None
    flat_golden = golden.reshape(-1, golden.shape[-1])
    flat_actual = actual.reshape(-1, actual.shape[-1])
    top2 = np.sort(flat_golden, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > CLEAR_MARGIN * scale
    if not np.any(clear):
        return None
    agree = np.argmax(flat_golden[clear], axis=-1) == np.argmax(flat_actual[clear], axis=-1)
    return float(np.mean(agree))


def _looks_like_probabilities(values: np.ndarray) -> bool:
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        return False
    return bool(np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))


def _histogram(ulp: np.ndarray) -> tuple[tuple[str, int], ...]:
    counts, _ = np.histogram(ulp, bins=ULP_EDGES)
    labels = []
    for low, high in itertools.pairwise(ULP_EDGES):
        labels.append(str(low) if high - low == 1 else (f"≥{_short(low)}" if high == ULP_EDGES[-1]
                                                        else f"{_short(low)}–{_short(high - 1)}"))
    return tuple((label, int(count)) for label, count in zip(labels, counts, strict=True))


def _short(count: int) -> str:
    return f"{count // 1024}k" if count >= 4096 else str(count)


def _stat(values: np.ndarray | None, reduce) -> float | None:
    if values is None or values.size == 0:
        return None
    return float(reduce(values))


def _mismatch(name: str, tolerance: Tolerance, reason: str, golden: np.ndarray | None = None) -> OutputComparison:
    return OutputComparison(name=name, status="mismatch", reason=reason, tolerance=tolerance,
                            shape=tuple(golden.shape) if golden is not None else None,
                            dtype=str(golden.dtype) if golden is not None else None)
