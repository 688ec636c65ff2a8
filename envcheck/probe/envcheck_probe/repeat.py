"""Whether the golden pass repeats bitwise: the probe runs the model on the golden inputs a second time
and compares the two passes' bytes. A target whose own run-to-run spread is not zero cannot be held to
bitwise identity, and a reference that repeated bitwise makes such a target worth a finding."""

from .errors import first_line
from .model import run_signature


def repeat_record(tf, np, signature, inputs, first_outputs, keep=None):
    """{"passes": 2, "bitwise_repeatable": bool, "max_abs_spread": {output: float}} or {"skipped": reason};
    never raises (a repeat that cannot be made says nothing about the first pass). `keep`: a dict that gets
    the second pass's outputs under "outputs" (the calibration reuses them)."""
    try:
        second = run_signature(tf, np, signature, inputs)
        if keep is not None:
            keep["outputs"] = second
        spread = {name: _spread(np, np.asarray(first), second.get(name)) for name, first in first_outputs.items()}
    except Exception as error:  # noqa: BLE001 - see the docstring
        return {"skipped": "the second pass failed: %s" % first_line(error)}
    return {"passes": 2, "bitwise_repeatable": all(value == 0.0 for value in spread.values()),
            "max_abs_spread": spread}


def _spread(np, first, again):
    """0.0 when bitwise equal; else the largest |difference| (floats, bfloat16 included), 1.0 for any change
    of another type, None for a changed shape or item size."""
    if again is None:
        return None
    again = np.asarray(again)
    if again.shape != first.shape or again.dtype.itemsize != first.dtype.itemsize:
        return None
    if first.dtype.kind == "O" or again.dtype.kind == "O":  # strings as objects: compare the values
        return 0.0 if np.array_equal(first, again) else 1.0
    if np.ascontiguousarray(first).tobytes() == np.ascontiguousarray(again).tobytes():
        return 0.0
    a, b = _as_floats(np, first), _as_floats(np, again)
    if a is None or b is None:
        return 1.0  # integers, booleans, strings: any change at all
    difference = np.abs(a - b)
    return float(np.nanmax(difference)) if difference.size and not np.all(np.isnan(difference)) else 1.0


def _as_floats(np, array):
    """float64 values of a float array; bfloat16 (2-byte, not IEEE half: kind V, or read back as raw |V2)
    by its bits, the top half of a float32; None for any other type."""
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    if array.dtype.itemsize == 2 and array.dtype.kind == "V":
        bits = np.ascontiguousarray(array).view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    return None
