"""An exact percentile of a quantity too large to hold: chunks fed over a few passes.

Used for the p99 error statistics of large outputs, which are compared chunk by chunk so that their
comparison costs a bounded working set (see compare/outputs.py).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


class ChunkedPercentile:
    """The 99th percentile of a non-negative float64 or int64 quantity, as np.percentile (method "linear")
    gives it, from chunks that arrive over as many passes as it takes, in memory of about one chunk.

    When every value fits in one chunk they are collected and np.percentile does the rest, so small outputs
    give their old numbers bit for bit. Otherwise the two order statistics the interpolation needs are found
    exactly by radix selection on the bit patterns (as uint64 they sort like non-negative floats and ints do):
    each pass histograms the next 16 bits of the values sharing the prefix found so far, until the two ranks
    fall in different bins (they are then the max of one and the min of the next: one more pass), the
    candidates left fit in one chunk (collected and partitioned), or all 64 bits are known. The first pass
    starts at the largest value's top bit, so small integers (ULP) take one pass; floats at most five.

    A pass is a `feed` of every chunk, in any order, then `end_pass`.
    """

    BITS = 16

    def __init__(self, count: int, largest: np.number[Any] | None, limit: int, percentile: float = 99) -> None:
        """`count` values to come, the `largest` of them, and how many fit in memory at once (`limit`)."""
        self.value: float | None = None
        self.done = count == 0 or largest is None
        if self.done or largest is None:
            return
        self.limit = max(1, limit)
        self.percentile = percentile
        self.dtype = np.asarray(largest).dtype
        index = (count - 1) * (percentile / 100)  # numpy's virtual index for method "linear"
        self.low = math.floor(index)
        self.high = min(self.low + 1, count - 1)
        self.gamma = index - self.low
        self.collecting = self.everything = count <= self.limit
        # The wanted keys k satisfy k >> known == prefix; this pass histograms bits [shift, known).
        top = int(np.asarray(largest).view(np.uint64)).bit_length()
        self.shift = max(0, top - self.BITS)
        self.known, self.prefix, self.narrowed = self.shift + self.BITS, 0, False
        self.below = 0  # values ranked below every candidate
        self.edges: tuple[int, int] | None = None
        self._start_pass()

    def _start_pass(self) -> None:
        self.parts: list[np.ndarray] = []
        self.counts = np.zeros(1 << (self.known - self.shift), np.int64)
        self.low_key, self.high_key = -1, 1 << 64  # edges: the max of the lower bin, the min of the upper
        self.smallest, self.largest = 1 << 64, -1  # histogram: of every candidate

    def feed(self, values: np.ndarray) -> None:
        """Take the next chunk of this pass."""
        if self.done:
            return
        keys = np.ascontiguousarray(values).view(np.uint64)
        if self.narrowed:
            keys = keys[(keys >> np.uint64(self.known)) == np.uint64(self.prefix)]
        if self.collecting:
            self.parts.append(keys)
        elif self.edges is not None:
            bins = keys >> np.uint64(self.shift)
            below_edge, above_edge = keys[bins == self.edges[0]], keys[bins == self.edges[1]]
            if below_edge.size:
                self.low_key = max(self.low_key, int(below_edge.max()))
            if above_edge.size:
                self.high_key = min(self.high_key, int(above_edge.min()))
        else:
            digits = (keys >> np.uint64(self.shift)) & np.uint64(self.counts.size - 1)
            self.counts += np.bincount(digits.astype(np.intp), minlength=self.counts.size)
            if keys.size:
                self.smallest, self.largest = min(self.smallest, int(keys.min())), max(self.largest, int(keys.max()))

    def end_pass(self) -> None:
        """Finish a pass over all chunks: narrow the bracket around the wanted rank, or collect it."""
        if self.done:
            return
        if self.collecting:
            values = np.concatenate(self.parts).view(self.dtype)
            if self.everything:
                self.value, self.done = float(np.percentile(values, self.percentile)), True
            else:
                low, high = self.low - self.below, self.high - self.below
                ordered = np.partition(values, (low, high))
                self._finish(ordered[low], ordered[high])
            return
        if self.edges is not None:
            self._finish(np.uint64(self.low_key).view(self.dtype), np.uint64(self.high_key).view(self.dtype))
            return
        if self.smallest == self.largest:  # every candidate is one value (an exact power of two, say)
            key = np.uint64(self.smallest).view(self.dtype)
            self._finish(key, key)
            return
        ends = np.cumsum(self.counts)
        low_bin = int(np.searchsorted(ends, self.low - self.below, side="right"))
        high_bin = int(np.searchsorted(ends, self.high - self.below, side="right"))
        width = self.known - self.shift
        if low_bin != high_bin:
            self.edges = ((self.prefix << width) | low_bin, (self.prefix << width) | high_bin)
        else:
            self.below += int(ends[low_bin - 1]) if low_bin else 0
            self.prefix, self.known, self.narrowed = (self.prefix << width) | low_bin, self.shift, True
            if self.known == 0:
                key = np.uint64(self.prefix).view(self.dtype)
                self._finish(key, key)
                return
            self.collecting = int(self.counts[low_bin]) <= self.limit
            self.shift = max(0, self.shift - self.BITS)
        self._start_pass()

    def _finish(self, low: np.number[Any], high: np.number[Any]) -> None:
        diff, t = high - low, self.gamma
        # numpy's _lerp, step for step, so that both ways of getting here agree to the bit.
        self.value = float(high - diff * (1 - t) if t >= 0.5 else low + diff * t)
        self.done = True
