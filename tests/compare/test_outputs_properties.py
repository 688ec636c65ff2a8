"""Properties of the output comparison that must hold for every input, checked with Hypothesis."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from envcheck.compare.outputs import _ulp_distance, compare_output
from envcheck.model import Tolerance

FINITE32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)
RANK = {"identical": 0, "noise": 1, "drift": 2, "mismatch": 3}


@st.composite
def golden_and_actual(draw):
    """A float32 golden and a copy moved by a few ULP (or more) in some elements."""
    golden = draw(arrays(np.float32, st.integers(1, 40), elements=FINITE32))
    steps = draw(arrays(np.int32, golden.shape, elements=st.integers(-3000, 3000)))
    ordered = golden.view(np.int32).astype(np.int64)
    ordered = np.where(ordered < 0, np.int64(-(1 << 31)) - ordered, ordered) + steps
    raw = np.where(ordered < 0, np.int64(-(1 << 31)) - ordered, ordered).astype(np.int32)
    actual = raw.view(np.float32)
    actual = np.where(np.isfinite(actual), actual, golden).astype(np.float32)
    return golden, actual


@settings(max_examples=200, deadline=None)
@given(golden_and_actual())
def test_ulp_distance_is_symmetric_and_zero_only_on_equal_bits(pair):
    golden, actual = pair
    forward, backward = _ulp_distance(golden, actual), _ulp_distance(actual, golden)
    assert np.array_equal(forward, backward)
    equal_bits = golden.view(np.int32) == actual.view(np.int32)
    zero_and_minus_zero = (golden == 0) & (actual == 0)  # +0 and −0 are the same number, 0 ULP apart
    assert np.array_equal(forward == 0, equal_bits | zero_and_minus_zero)


@settings(max_examples=200, deadline=None)
@given(golden_and_actual())
def test_the_minimum_passing_tolerance_passes_and_anything_smaller_fails(pair):
    golden, actual = pair
    first = compare_output("y", golden, actual, Tolerance(), classification=False)
    needed = first.min_passing_tolerance
    if first.status == "identical" or needed == 0:
        return
    passing = compare_output("y", golden, actual, Tolerance(atol=needed * (1 + 1e-9), rtol=needed * (1 + 1e-9)),
                             classification=False)
    failing = compare_output("y", golden, actual, Tolerance(atol=needed * (1 - 1e-6), rtol=needed * (1 - 1e-6)),
                             classification=False)
    assert passing.status == "noise", passing
    assert failing.status == "drift", failing


@settings(max_examples=200, deadline=None)
@given(golden_and_actual(), st.floats(1e-9, 1e-2), st.floats(1.0, 1e3))
def test_a_wider_tolerance_never_worsens_a_status(pair, tolerance, widen):
    golden, actual = pair
    narrow = compare_output("y", golden, actual, Tolerance(atol=tolerance, rtol=tolerance), classification=False)
    wide = compare_output("y", golden, actual, Tolerance(atol=tolerance * widen, rtol=tolerance * widen),
                          classification=False)
    assert RANK[wide.status] <= RANK[narrow.status]
