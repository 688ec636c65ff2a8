"""Compare output tensors with the golden's and return the evidence, not just a verdict.

Policy (docs/drift.md): flush |x| < FLT_MIN to zero; shape, dtype and NaN/Inf mask must match;
an element passes when |actual − golden| ≤ atol·scale + rtol·|golden|, scale = max|golden|; a
probability output must also keep its top-1 class wherever the golden's top-1/top-2 margin is clear.

Memory: the two flattened outputs are read in chunks of CHUNK_ELEMENTS elements, so a comparison costs a
bounded working set (a dozen or so float64 temporaries of one chunk: ~100 MB at the default) beside the
arrays themselves, whatever their size; a 528 MB output used to need 24× its size in float64 temporaries.
The statistics take a few passes over the chunks: the scale-free numbers and max|golden| first, then the
numbers that need that scale, then whatever the exact p99 values still need (see ChunkedPercentile). An output
of at most one chunk gives exactly the numbers it gave before chunking; a larger one the same maxima,
counts, histogram, worst element and p99 values, and a mean summed per chunk (it may differ from a single
pairwise sum in the last bits).

bfloat16, which NumPy lacks, arrives from np.load as raw 2-byte void (`|V2`), or as ml_dtypes' bfloat16 in
memory: it is compared as numbers (its bits are the top half of a float32), with ULP in bfloat16 units.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from envcheck.compare.percentile import ChunkedPercentile
from envcheck.compare.policy import Policy
from envcheck.model import OutputComparison, Tolerance

# A golden top-1/top-2 margin below this share of the output's scale is a coin toss, not a class.
CLEAR_MARGIN = 1e-3
# ULP-distance histogram buckets: 0, 1, 2–3, 4–7, … (powers of two), last one open-ended.
ULP_EDGES = (0, 1, 2, 4, 8, 16, 64, 256, 1024, 1 << 16, 1 << 62)
ORDERED_INT = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}
# Elements of the flattened outputs handled at once (read at call time: tests set it small).
CHUNK_ELEMENTS = 1 << 20
PERCENTILE = 99


@dataclass(frozen=True, slots=True)
class FloatFormat:
    """How to read one floating-point output: the dtype name shown, the subnormal limit, and the signed
    integer of the same width whose ordering of the bit patterns is the ULP ruler (None: no ULP)."""

    name: str
    tiny: float
    ordered_int: type[np.signedinteger] | None
    bfloat16: bool = False

    def values(self, raw: np.ndarray) -> np.ndarray:
        """The array as this comparison reads it: bfloat16 bits widened exactly to float32, others as they are."""
        if not self.bfloat16:
            return raw
        # A bfloat16 is the top half of a float32: its bits shifted up 16 are the same number, exactly.
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


BFLOAT16 = FloatFormat("bfloat16", float(np.finfo(np.float32).tiny), np.int16, bfloat16=True)


def float_format(array: np.ndarray, logical_dtype: str | None = None) -> FloatFormat | None:
    """The float format of `array`, or None for a non-float output (compared by equality).

    A raw 2-byte void array is read as bfloat16 unless `logical_dtype` (the dtype the producer recorded,
    e.g. capture.json's outputs.<name>.dtype) names something else: np.savez writes ml_dtypes' bfloat16,
    the only 2-byte type TensorFlow has and NumPy lacks, as `|V2`."""
    dtype = array.dtype
    if dtype.kind == "f":
        return FloatFormat(str(dtype), float(np.finfo(dtype).tiny), ORDERED_INT.get(dtype))
    if dtype.name == "bfloat16":  # ml_dtypes' type, when it is importable
        return BFLOAT16
    raw_two_bytes = dtype.kind == "V" and dtype.itemsize == 2 and dtype.names is None and dtype.subdtype is None
    if raw_two_bytes and logical_dtype in (None, "bfloat16"):
        return BFLOAT16
    return None


def compare_outputs(golden: dict[str, np.ndarray], actual: dict[str, np.ndarray], policy: Policy,
                    logical_dtypes: Mapping[str, str] | None = None) -> tuple[OutputComparison, ...]:
    """Every output of either side; `logical_dtypes` (name → recorded dtype) as for compare_output."""
    results = []
    for name in sorted(set(golden) | set(actual)):
        tolerance = policy.tolerance_for(name)
        if name not in actual:
            results.append(_mismatch(name, tolerance, "output missing from the target's results"))
        elif name not in golden:
            results.append(_mismatch(name, tolerance, "output not in the golden (the model's signature changed)"))
        else:
            results.append(compare_output(name, golden[name], actual[name], tolerance,
                                          policy.classification.get(name), (logical_dtypes or {}).get(name)))
    return tuple(results)


def compare_output(name: str, golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance,
                   classification: bool | None = None, logical_dtype: str | None = None) -> OutputComparison:
    """One output's evidence. `logical_dtype` is the dtype its producer recorded: it only matters for a
    raw `|V2` array, which is read as bfloat16 unless the hint says otherwise."""
    golden_format, actual_format = float_format(golden, logical_dtype), float_format(actual, logical_dtype)
    same_dtype = golden.dtype == actual.dtype or (golden_format is not None and golden_format == actual_format)
    if not same_dtype:
        return _mismatch(name, tolerance, f"dtype changed: {_shown(golden, golden_format)} → "
                         f"{_shown(actual, actual_format)}", golden, golden_format)
    if golden.shape != actual.shape:
        return _mismatch(name, tolerance, f"shape changed: {golden.shape} → {actual.shape}", golden, golden_format)
    shape, dtype, fmt = tuple(golden.shape), _shown(golden, golden_format), golden_format
    flat_golden, flat_actual = _flat(golden), _flat(actual)
    if _same_bytes(flat_golden, flat_actual):
        return OutputComparison(name=name, status="identical", reason=None, tolerance=tolerance, shape=shape,
                                dtype=dtype, max_abs=0.0, mean_abs=0.0, p99_abs=0.0, max_rel=0.0, p99_rel=0.0,
                                max_ulp=0 if fmt is not None and fmt.ordered_int is not None else None, p99_ulp=0.0,
                                changed_fraction=0.0, min_passing_tolerance=0.0)
    if fmt is None:
        changed = sum(np.count_nonzero(g != a) for g, a in _chunks(flat_golden, flat_actual)) / golden.size
        return OutputComparison(name=name, status="drift", reason=f"{dtype} values differ in {changed:.2%} of elements",
                                tolerance=tolerance, shape=shape, dtype=dtype, changed_fraction=changed)
    mask_problem = _nonfinite_mismatch(fmt, flat_golden, flat_actual)
    if mask_problem:
        return _mismatch(name, tolerance, mask_problem, golden, fmt)
    return _compare_floats(name, fmt, golden, actual, tolerance, classification)


def _flat(array: np.ndarray) -> np.ndarray:
    """A 1-D view (a copy only for a non-contiguous array, which np.load never returns)."""
    return np.ascontiguousarray(array).reshape(-1)


def _chunks(*arrays: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    size, step = arrays[0].size, max(1, CHUNK_ELEMENTS)
    for start in range(0, size, step):
        yield tuple(array[start:start + step] for array in arrays)


def _same_bytes(golden: np.ndarray, actual: np.ndarray) -> bool:
    # Compared a chunk at a time: ndarray.tobytes() would copy both outputs whole.
    if golden.itemsize == 0:
        return True
    return all(np.array_equal(g, a) for g, a in _chunks(golden.view(np.uint8), actual.view(np.uint8)))


def _nonfinite_mismatch(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray) -> str | None:
    new_nan = lost_nan = inf_differs = 0
    for raw_golden, raw_actual in _chunks(golden, actual):
        g, a = fmt.values(raw_golden), fmt.values(raw_actual)
        golden_nan, actual_nan = np.isnan(g), np.isnan(a)
        new_nan += np.count_nonzero(actual_nan & ~golden_nan)
        lost_nan += np.count_nonzero(golden_nan & ~actual_nan)
        inf_differs += np.count_nonzero((np.isinf(g) | np.isinf(a)) & (g != a))  # (an Inf whose sign flipped too)
    if new_nan:
        return f"NaN in {new_nan} element(s) where the golden is finite"
    if lost_nan:
        return f"the golden has NaN in {lost_nan} element(s) the target does not"
    if inf_differs:
        return f"Inf in {inf_differs} element(s) differs from the golden"
    return None


@dataclass(slots=True)
class _Errors:
    """One chunk's errors over its finite elements (subnormals flushed to zero for err and |golden|;
    ULP on the stored bits, None when not asked for), and how many of all its elements changed value."""

    err: np.ndarray
    mag: np.ndarray
    ulp: np.ndarray | None
    changed: int

    @property
    def rel(self) -> np.ndarray:
        nonzero = self.mag > 0
        with np.errstate(over="ignore"):  # a float64 error past 1e308 relative to a tiny value is just inf
            return self.err[nonzero] / self.mag[nonzero]


def _errors(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray, *, ulp: bool = True,
            changed: bool = False) -> Iterator[_Errors]:
    """The chunks' errors; the ULP distances (the dearest part) and the changed count only when asked for."""
    for raw_golden, raw_actual in _chunks(golden, actual):
        g, a = fmt.values(raw_golden), fmt.values(raw_actual)
        finite = np.isfinite(g)
        ref, got = _flushed(g[finite], fmt.tiny), _flushed(a[finite], fmt.tiny)
        distance = None
        if ulp and fmt.ordered_int is not None:
            distance = _ulp_distance(raw_golden[finite], raw_actual[finite], fmt.ordered_int)
        moved = np.count_nonzero(~((g == a) | (np.isnan(g) & np.isnan(a)))) if changed else 0
        yield _Errors(err=np.abs(got - ref), mag=np.abs(ref), ulp=distance, changed=int(moved))


def _flushed(values: np.ndarray, tiny: float) -> np.ndarray:
    return np.where(np.abs(values) < tiny, 0, values).astype(np.float64)


def _compare_floats(name: str, fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance,
                    classification: bool | None) -> OutputComparison:
    flat_golden, flat_actual = _flat(golden), _flat(actual)
    # Pass 1: everything that does not depend on scale = max|golden|.
    scale, count, changed, sums = 0.0, 0, 0, []
    max_abs: np.number[Any] | None = None
    max_rel: np.number[Any] | None = None
    max_ulp: np.number[Any] | None = None
    histogram = np.zeros(len(ULP_EDGES) - 1, np.int64)
    rel_count = 0
    for chunk in _errors(fmt, flat_golden, flat_actual, changed=True):
        changed += chunk.changed
        if chunk.err.size == 0:
            continue
        count += chunk.err.size
        scale = max(scale, float(chunk.mag.max()))
        max_abs = _larger(max_abs, chunk.err.max())
        sums.append(float(chunk.err.sum()))
        rel = chunk.rel
        if rel.size:
            rel_count += rel.size
            max_rel = _larger(max_rel, rel.max())
        if chunk.ulp is not None:
            max_ulp = _larger(max_ulp, chunk.ulp.max())
            histogram += np.histogram(chunk.ulp, bins=ULP_EDGES)[0]
    p99 = {"abs": ChunkedPercentile(count, max_abs, CHUNK_ELEMENTS, PERCENTILE),
           "rel": ChunkedPercentile(rel_count, max_rel, CHUNK_ELEMENTS, PERCENTILE),
           "ulp": ChunkedPercentile(count if fmt.ordered_int is not None else 0, max_ulp, CHUNK_ELEMENTS, PERCENTILE)}

    # Pass 2: the tolerance band and the smallest passing tolerance need the scale; p99 starts.
    beyond, worst, min_tolerance = 0, (-math.inf, 0.0, 0.0), 0.0
    for chunk in _errors(fmt, flat_golden, flat_actual, ulp=not p99["ulp"].done):
        if chunk.err.size == 0:
            continue
        allowed = tolerance.atol * scale + tolerance.rtol * chunk.mag
        outside = np.count_nonzero(chunk.err > allowed)
        if outside:
            beyond += outside
            excess = chunk.err - allowed
            at = int(np.argmax(excess))
            if excess[at] > worst[0]:  # strictly: the first of equal excesses wins, as np.argmax does
                worst = (float(excess[at]), float(chunk.err[at]), float(allowed[at]))
        # Near float64's limits the quotient may overflow: inf is the honest "no tolerance passes".
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            needed = np.where(chunk.err == 0, 0.0, chunk.err / (scale + chunk.mag))
        min_tolerance = max(min_tolerance, float(needed.max()))
        _feed(p99, chunk)
    for selector in p99.values():
        selector.end_pass()
    # Further passes only while a p99 is not pinned down yet.
    while not all(selector.done for selector in p99.values()):
        for chunk in _errors(fmt, flat_golden, flat_actual, ulp=not p99["ulp"].done):
            _feed(p99, chunk)
        for selector in p99.values():
            selector.end_pass()

    top1 = _top1_agreement(fmt, golden, actual, scale, classification)
    reasons = []
    if beyond:
        reasons.append(f"beyond tolerance: {beyond} of {count} elements, worst |err| {worst[1]:.3g} > allowed "
                       f"{worst[2]:.3g} (would pass at tol {min_tolerance:.2g})")
    if top1 is not None and top1 < 1.0:
        reasons.append(f"top-1 class changed on {1 - top1:.1%} of rows with a clear margin")
    return OutputComparison(
        name=name, status="drift" if reasons else "noise", reason="; ".join(reasons) or None,
        tolerance=tolerance, shape=tuple(golden.shape), dtype=fmt.name,
        max_abs=None if max_abs is None else float(max_abs), mean_abs=math.fsum(sums) / count if count else None,
        p99_abs=p99["abs"].value, max_rel=None if max_rel is None else float(max_rel), p99_rel=p99["rel"].value,
        max_ulp=None if max_ulp is None else int(max_ulp), p99_ulp=p99["ulp"].value,
        changed_fraction=changed / golden.size, top1_agreement=top1, min_passing_tolerance=min_tolerance,
        ulp_histogram=_histogram(histogram) if fmt.ordered_int is not None else ())


def _larger(current: np.number[Any] | None, candidate: np.number[Any]) -> np.number[Any]:
    return candidate if current is None or candidate > current else current


def _feed(p99: dict[str, ChunkedPercentile], chunk: _Errors) -> None:
    """Hand one chunk to every p99 still searching (a pass is every chunk, then end_pass)."""
    if not p99["abs"].done:
        p99["abs"].feed(chunk.err)
    if not p99["rel"].done:
        p99["rel"].feed(chunk.rel)
    if chunk.ulp is not None:
        p99["ulp"].feed(chunk.ulp)


def _ulp_distance(golden: np.ndarray, actual: np.ndarray, as_int: type[np.signedinteger] | None = None
                  ) -> np.ndarray | None:
    """Units in the last place between two arrays of one float format: float16/32/64 by their dtype, or
    any other (bfloat16) given the signed integer of its width."""
    as_int = as_int or ORDERED_INT.get(golden.dtype)
    if as_int is None:
        return None
    bits, magnitude = np.iinfo(as_int).bits, np.iinfo(as_int).max

    def ordered(values: np.ndarray) -> np.ndarray:
        # Map sign-magnitude bit patterns onto a monotonic integer line (−0 and +0 meet at 0): a negative
        # pattern −2^(bits−1) + m becomes −m, in its own width (flip the magnitude bits, add one).
        raw = values.view(as_int)
        sign = raw >> (bits - 1)  # 0 or −1
        return (raw ^ (sign & magnitude)) - sign

    if bits == 64:  # an int64 difference could overflow; float64 is exact enough for a distance
        return np.abs(ordered(actual).astype(np.float64) - ordered(golden).astype(np.float64))
    return np.abs(np.subtract(ordered(actual), ordered(golden), dtype=np.int64))


def _top1_agreement(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray, scale: float,
                    classification: bool | None) -> float | None:
    """Share of rows (last axis) whose argmax agrees, among rows whose golden top-1/top-2 margin is clear;
    read a block of rows at a time."""
    if classification is False or golden.ndim < 2 or golden.shape[-1] < 2:
        return None
    width = golden.shape[-1]
    rows_golden = np.ascontiguousarray(golden).reshape(-1, width)
    rows_actual = np.ascontiguousarray(actual).reshape(-1, width)
    step = max(1, CHUNK_ELEMENTS // width)

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, rows_golden.shape[0], step):
            yield fmt.values(rows_golden[start:start + step]), fmt.values(rows_actual[start:start + step])

    if classification is None and not all(_looks_like_probabilities(g) for g, _ in blocks()):
        return None
    clear_rows = agreeing = 0
    for g, a in blocks():
        top2 = np.partition(g, width - 2, axis=-1)[:, -2:]  # [second, first], as a full sort would give
        clear = (top2[:, 1] - top2[:, 0]) > CLEAR_MARGIN * scale
        clear_rows += np.count_nonzero(clear)
        agreeing += np.count_nonzero(np.argmax(g[clear], axis=-1) == np.argmax(a[clear], axis=-1))
    return agreeing / clear_rows if clear_rows else None


def _looks_like_probabilities(values: np.ndarray) -> bool:
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        return False
    return bool(np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))


def _histogram(counts: np.ndarray) -> tuple[tuple[str, int], ...]:
    labels = []
    for low, high in itertools.pairwise(ULP_EDGES):
        labels.append(str(low) if high - low == 1 else (f"≥{_short(low)}" if high == ULP_EDGES[-1]
                                                        else f"{_short(low)}–{_short(high - 1)}"))
    return tuple((label, int(count)) for label, count in zip(labels, counts, strict=True))


def _short(count: int) -> str:
    return f"{count // 1024}k" if count >= 4096 else str(count)


def _shown(array: np.ndarray, fmt: FloatFormat | None) -> str:
    return fmt.name if fmt is not None else str(array.dtype)


def _mismatch(name: str, tolerance: Tolerance, reason: str, golden: np.ndarray | None = None,
              fmt: FloatFormat | None = None) -> OutputComparison:
    return OutputComparison(name=name, status="mismatch", reason=reason, tolerance=tolerance,
                            shape=tuple(golden.shape) if golden is not None else None,
                            dtype=_shown(golden, fmt) if golden is not None else None)
