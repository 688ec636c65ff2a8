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

Per sample (axis 0 of an output; an output of rank 0 is one sample): how many samples have an element beyond
the band, the share that is consistent (within the band and, for a classification output, every clear-margin
row's top-1 kept), top-1 agreement over all rows, the worst samples and the distribution of per-sample errors.
They are folded chunk by chunk too: the element chunks need not align with samples (a sample cut by a chunk
boundary is carried into the next chunk); what is kept whole is one flag byte per sample.

Task-level acceptance (policy `[acceptance]`): a drifted output whose consistency and top-1 agreement meet
min_consistency and min_top1_agreement is `accepted` (a WARN, not a FAIL), with the reason in one sentence.

bfloat16, which NumPy lacks, arrives from np.load as raw 2-byte void (`|V2`), or as ml_dtypes' bfloat16 in
memory: it is compared as numbers (its bits are the top half of a float32), with ULP in bfloat16 units.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from envcheck.compare.percentile import ChunkedPercentile
from envcheck.compare.policy import Policy
from envcheck.model import OutputComparison, Tolerance, percent
from envcheck.ulp import ORDERED_INT
from envcheck.ulp import ulp_distance as _ulp_distance

# A golden top-1/top-2 margin below this share of the output's scale is a coin toss, not a class.
CLEAR_MARGIN = 1e-3
# ULP-distance histogram buckets: 0, 1, 2–3, 4–7, … (powers of two), last one open-ended.
ULP_EDGES = (0, 1, 2, 4, 8, 16, 64, 256, 1024, 1 << 16, 1 << 62)
# Elements of the flattened outputs handled at once (read at call time: tests set it small).
CHUNK_ELEMENTS = 1 << 20
PERCENTILE = 99
# How many of the worst samples an output's evidence names.
WORST_SAMPLES = 5


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
                    logical_dtypes: Mapping[str, str] | None = None,
                    noise: Mapping[str, float] | None = None) -> tuple[OutputComparison, ...]:
    """Every output of either side; `logical_dtypes` (name → recorded dtype) as for compare_output; `noise`
    (name → the golden's calibrated noise) gives each output's worst error in noise units."""
    results = []
    for name in sorted(set(golden) | set(actual)):
        tolerance = policy.tolerance_for(name)
        if name not in actual:
            results.append(_mismatch(name, tolerance, "output missing from the target's results"))
        elif name not in golden:
            results.append(_mismatch(name, tolerance, "output not in the golden (the model's signature changed)"))
        else:
            compared = compare_output(name, golden[name], actual[name], tolerance, policy.classification_for(name),
                                      (logical_dtypes or {}).get(name))
            results.append(accept(in_noise_units(compared, (noise or {}).get(name)), policy.min_consistency,
                                  policy.min_top1_agreement))
    return tuple(results)


def in_noise_units(comparison: OutputComparison, noise: float | None) -> OutputComparison:
    """The comparison with its worst absolute error in units of the calibrated noise (0 when identical)."""
    if not noise or comparison.max_abs is None:
        return comparison
    return dataclasses.replace(comparison, noise_units=comparison.max_abs / noise)


def accept(comparison: OutputComparison, min_consistency: float, min_top1_agreement: float) -> OutputComparison:
    """The two-tier acceptance: a `drift` output (never a mismatch) whose consistency is at least
    `min_consistency` and whose top-1 agreement over all rows at least `min_top1_agreement` (an output that is
    no classification meets it) becomes `accepted`, its reason saying by how much; any other is returned as is."""
    consistency, top1 = comparison.consistency, comparison.top1_agreement_all
    if comparison.status != "drift" or consistency is None or not comparison.samples:
        return comparison
    if consistency < min_consistency or (top1 is not None and top1 < min_top1_agreement):
        return comparison
    beyond = comparison.samples_beyond or 0
    words = [f"{percent(beyond / comparison.samples)} of samples beyond tolerance ({beyond} of {comparison.samples})",
             f"consistency {percent(consistency)} ≥ {percent(min_consistency)}"]
    if top1 is not None:
        words.append(f"top-1 agreement {percent(top1)} ≥ {percent(min_top1_agreement)}")
    reason = "; ".join(words) + (f" (accepted by the policy's [acceptance]: {comparison.reason})"
                                 if comparison.reason else " (accepted by the policy's [acceptance])")
    return dataclasses.replace(comparison, status="accepted", reason=reason)


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
    samples, width = _sample_layout(golden.shape)
    if _same_bytes(flat_golden, flat_actual):
        top1_all = 1.0 if fmt is not None and _is_classification(fmt, golden, classification) else None
        return OutputComparison(name=name, status="identical", reason=None, tolerance=tolerance, shape=shape,
                                dtype=dtype, max_abs=0.0, mean_abs=0.0, p99_abs=0.0, max_rel=0.0, p99_rel=0.0,
                                max_ulp=0 if fmt is not None and fmt.ordered_int is not None else None, p99_ulp=0.0,
                                changed_fraction=0.0, min_passing_tolerance=0.0, samples=samples, samples_beyond=0,
                                consistency=1.0 if samples else None, top1_agreement_all=top1_all, worst_samples=())
    if fmt is None:
        fold, changed_count, start = _SampleFold(samples, width), 0, 0
        for g, a in _chunks(flat_golden, flat_actual):
            moved = g != a
            changed_count += np.count_nonzero(moved)
            fold.feed(start + np.flatnonzero(moved), None, None)
            start += g.size
            changed = changed_count / golden.size
        return OutputComparison(name=name, status="drift", reason=f"{dtype} values differ in {changed:.2%} of elements",
                                tolerance=tolerance, shape=shape, dtype=dtype, changed_fraction=changed,
                                samples=samples, samples_beyond=fold.beyond, consistency=fold.consistency,
                                worst_samples=None)
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
    positions: np.ndarray | None = None
    """Each finite element's index in the flattened output (only when asked for)."""

    @property
    def rel(self) -> np.ndarray:
        nonzero = self.mag > 0
        with np.errstate(over="ignore"):  # a float64 error past 1e308 relative to a tiny value is just inf
            return self.err[nonzero] / self.mag[nonzero]


def _errors(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray, *, ulp: bool = True,
            changed: bool = False, positions: bool = False) -> Iterator[_Errors]:
    """The chunks' errors; the ULP distances (the dearest part), the changed count and the elements'
    positions only when asked for."""
    start = 0
    for raw_golden, raw_actual in _chunks(golden, actual):
        g, a = fmt.values(raw_golden), fmt.values(raw_actual)
        finite = np.isfinite(g)
        ref, got = _flushed(g[finite], fmt.tiny), _flushed(a[finite], fmt.tiny)
        distance = None
        if ulp and fmt.ordered_int is not None:
            distance = _ulp_distance(raw_golden[finite], raw_actual[finite], fmt.ordered_int)
        moved = np.count_nonzero(~((g == a) | (np.isnan(g) & np.isnan(a)))) if changed else 0
        where = start + np.flatnonzero(finite) if positions else None
        start += g.size
        yield _Errors(err=np.abs(got - ref), mag=np.abs(ref), ulp=distance, changed=int(moved), positions=where)


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
    fold = _SampleFold(*_sample_layout(golden.shape))
    for chunk in _errors(fmt, flat_golden, flat_actual, ulp=not p99["ulp"].done, positions=True):
        if chunk.err.size == 0:
            continue
        allowed = tolerance.atol * scale + tolerance.rtol * chunk.mag
        beyond_mask = chunk.err > allowed
        assert chunk.positions is not None
        fold.feed(chunk.positions, chunk.err, beyond_mask)
        if outside := int(np.count_nonzero(beyond_mask)):
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

    top1, top1_all = _top1_agreement(fmt, golden, actual, scale, classification, fold)
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
        ulp_histogram=_histogram(histogram) if fmt.ordered_int is not None else (), samples=fold.samples,
        samples_beyond=fold.beyond, consistency=fold.consistency, top1_agreement_all=top1_all,
        worst_samples=fold.worst_samples(), sample_error_histogram=fold.histogram())


def _sample_layout(shape: tuple[int, ...]) -> tuple[int, int]:
    """(samples, elements per sample): axis 0 is the samples; an output of rank 0 is one sample of one element."""
    if not shape:
        return 1, 1
    return int(shape[0]), math.prod(shape[1:])


class _SampleFold:
    """Per-sample evidence folded chunk by chunk in element order: one flag per sample (beyond the band, or
    later a top-1 flip), the worst few samples and the decade counts of every sample's largest |error|.
    A sample's largest error is final once the chunk after it starts, so a sample that a chunk boundary cuts
    is carried into the next chunk before it is counted; nothing else is kept per sample."""

    def __init__(self, samples: int, width: int) -> None:
        self.samples, self.width = samples, max(1, width)
        self.bad = np.zeros(samples, np.bool_)
        self._worst: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.float64))
        self._decades: Counter[int] = Counter()
        self._carry: tuple[np.ndarray, np.ndarray] | None = None

    def feed(self, positions: np.ndarray, err: np.ndarray | None, outside: np.ndarray | None) -> None:
        """One chunk: its elements' flat positions (ascending), their errors, and which are beyond the band
        (None, None: every position given is beyond, as a changed element of a non-float output is)."""
        if positions.size == 0:
            return
        owners_of = positions // self.width
        starts = np.concatenate(([0], np.flatnonzero(np.diff(owners_of)) + 1))
        owners = owners_of[starts]
        if outside is None or err is None:
            self.bad[owners] = True
            return
        self.bad[owners[np.logical_or.reduceat(outside, starts)]] = True
        largest = np.maximum.reduceat(err, starts)
        if self._carry is not None:
            if self._carry[0][0] == owners[0]:
                largest[0] = max(largest[0], self._carry[1][0])
            else:
                self._settle(*self._carry)
        self._carry = (owners[-1:], largest[-1:])
        self._settle(owners[:-1], largest[:-1])

    @property
    def beyond(self) -> int:
        """Samples flagged: beyond the band somewhere, or a clear-margin top-1 flip."""
        return int(np.count_nonzero(self.bad))

    @property
    def consistency(self) -> float | None:
        """Share of samples not flagged; None for an output without samples."""
        return 1 - self.beyond / self.samples if self.samples else None

    def worst_samples(self) -> tuple[tuple[int, float], ...]:
        """(index, largest |error|) of the worst samples with any error, worst first, the lower index first on a tie."""
        self._settle_carry()
        return tuple((int(index), float(error)) for index, error in zip(*self._worst, strict=True))

    def histogram(self) -> tuple[tuple[str, int], ...]:
        """Samples per decade of their largest |error| (`0`, `≤1e-7`, `≤1e-6`, …), ascending: the per-sample
        error distribution."""
        self._settle_carry()
        moved = sum(self._decades.values())
        zero = [("0", self.samples - moved)] if self.samples > moved else []
        return tuple(zero + [(f"≤1e{decade}", count) for decade, count in sorted(self._decades.items())])

    def _settle_carry(self) -> None:
        if self._carry is not None:
            self._settle(*self._carry)
            self._carry = None

    def _settle(self, owners: np.ndarray, largest: np.ndarray) -> None:
        """Samples whose largest error is final: count their decades, keep the worst few."""
        keep = largest > 0
        owners, largest = owners[keep], largest[keep]
        if not owners.size:
            return
        # (a difference that overflowed float64 counts in the decade just past its largest value)
        decades, counts = np.unique(np.ceil(np.log10(np.minimum(largest, np.finfo(np.float64).max))),
                                    return_counts=True)
        self._decades.update({int(decade): int(count) for decade, count in zip(decades, counts, strict=True)})
        if owners.size > WORST_SAMPLES:
            pick = largest >= np.partition(largest, -WORST_SAMPLES)[-WORST_SAMPLES]
            owners, largest = owners[pick], largest[pick]
        owners = np.concatenate((self._worst[0], owners))
        largest = np.concatenate((self._worst[1], largest.astype(np.float64)))
        order = np.lexsort((owners, -largest))[:WORST_SAMPLES]
        self._worst = (owners[order], largest[order])


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


def ulp_at(scale: float, dtype: np.dtype) -> float:
    """One ULP of `dtype` at the magnitude `scale`; at 0, one ULP at 1 (not the smallest subnormal, which would
    make any error astronomically many ULP)."""
    return float(np.spacing(dtype.type(scale or 1.0)))


def _row_blocks(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray | None = None
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """(first row, golden rows, actual rows) of the output's rows (last axis), a block of rows at a time."""
    width = golden.shape[-1]
    rows_golden = np.ascontiguousarray(golden).reshape(-1, width)
    rows_actual = None if actual is None else np.ascontiguousarray(actual).reshape(-1, width)
    step = max(1, CHUNK_ELEMENTS // width)
    for start in range(0, rows_golden.shape[0], step):
        yield (start, fmt.values(rows_golden[start:start + step]),
               None if rows_actual is None else fmt.values(rows_actual[start:start + step]))


def _is_classification(fmt: FloatFormat, golden: np.ndarray, classification: bool | None) -> bool:
    """Whether the top-1 check applies: forced by the policy, else a probability output (rows summing to 1)."""
    if classification is False or golden.ndim < 2 or golden.shape[-1] < 2 or golden.size == 0:
        return False
    return classification is True or all(_looks_like_probabilities(g) for _, g, _ in _row_blocks(fmt, golden))


def _top1_agreement(fmt: FloatFormat, golden: np.ndarray, actual: np.ndarray, scale: float,
                    classification: bool | None, fold: _SampleFold | None = None
                    ) -> tuple[float | None, float | None]:
    """(share of rows (last axis) whose argmax agrees among rows whose golden top-1/top-2 margin is clear,
    the same share over all rows); (None, None) for an output that is not a classification. A sample with a
    clear-margin row whose class flipped is flagged in `fold`. Read a block of rows at a time."""
    if not _is_classification(fmt, golden, classification):
        return None, None
    width = golden.shape[-1]
    rows_per_sample = max(1, math.prod(golden.shape[1:-1]))
    clear_rows = agreeing = agreeing_all = rows = 0
    for start, g, a in _row_blocks(fmt, golden, actual):
        assert a is not None
        top2 = np.partition(g, width - 2, axis=-1)[:, -2:]  # [second, first], as a full sort would give
        clear = (top2[:, 1] - top2[:, 0]) > CLEAR_MARGIN * scale
        same = np.argmax(g, axis=-1) == np.argmax(a, axis=-1)
        clear_rows += np.count_nonzero(clear)
        agreeing += np.count_nonzero(same & clear)
        agreeing_all += np.count_nonzero(same)
        rows += g.shape[0]
        if fold is not None:
            fold.bad[(start + np.flatnonzero(clear & ~same)) // rows_per_sample] = True
    return (agreeing / clear_rows if clear_rows else None), (agreeing_all / rows if rows else None)


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
