"""Units in the last place: the one ruler every layer measures float differences with.

A float's bit pattern, read as a sign-magnitude integer and mapped onto a monotonic integer line, counts the
representable values between two floats. compare/outputs.py measures a target against the golden with it;
targets/replicas.py measures the spread between a server's answer sets with it. Both layers may import this
module (it imports numpy only), so the mapping exists once.
"""
from __future__ import annotations

import numpy as np

ORDERED_INT: dict[np.dtype, type[np.signedinteger]] = {
    np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}
"""Signed integers of each float width: their order on the bit patterns is the ULP ruler."""


def ordered(values: np.ndarray, as_int: type[np.signedinteger] | None = None) -> np.ndarray | None:
    """`values`' bit patterns on a monotonic integer line (−0 and +0 meet at 0), widened so that a difference
    of two cannot overflow: int64, or float64 for a 64-bit format (exact enough for a distance). float16/32/64
    by their dtype, any other (bfloat16) given the signed integer of its width; None for a non-float."""
    as_int = as_int or ORDERED_INT.get(values.dtype)
    if as_int is None:
        return None
    bits, magnitude = np.iinfo(as_int).bits, np.iinfo(as_int).max
    raw = values.view(as_int)
    sign = raw >> (bits - 1)  # 0 or −1
    # A negative pattern −2^(bits−1) + m becomes −m, in its own width (flip the magnitude bits, add one).
    line = (raw ^ (sign & magnitude)) - sign
    return line.astype(np.float64 if bits == 64 else np.int64)


def ulp_distance(golden: np.ndarray, actual: np.ndarray, as_int: type[np.signedinteger] | None = None
                 ) -> np.ndarray | None:
    """Units in the last place between two arrays of one float format, element-wise (None for a non-float)."""
    as_int = as_int or ORDERED_INT.get(golden.dtype)
    if as_int is None:
        return None
    ours, theirs = ordered(golden, as_int), ordered(actual, as_int)
    assert ours is not None and theirs is not None
    return np.abs(theirs - ours)
