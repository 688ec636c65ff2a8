"""Whether the golden pass repeats bitwise: the probe runs the model on the golden inputs a second time
and compares the two passes' bytes. A target whose own run-to-run spread is not zero cannot be held to
bitwise identity, and a reference that repeated bitwise makes such a target worth a finding."""

from .errors import first_line
from .model import run_signature


def repeat_record(tf, np, signature, inputs, first_outputs):
    """{"passes": 2, "bitwise_repeatable": bool, "max_abs_spread": {output: float}} or {"skipped": reason}."""
    try:
        second = run_signature(tf, np, signature, inputs)
    except Exception as error:  # noqa: BLE001 - a second pass that fails says nothing about the first
        return {"skipped": "the second pass failed: %s" % first_line(error)}
    spread = {}
    for name, first in first_outputs.items():
        again = second.get(name)
        if again is None or again.shape != first.shape or again.dtype != first.dtype:
            spread[name] = None
        elif first.tobytes() == again.tobytes():
            spread[name] = 0.0
        elif first.dtype.kind in "fc":
            difference = np.abs(first.astype(np.float64) - again.astype(np.float64))
            spread[name] = float(np.nanmax(difference)) if difference.size else 0.0
        else:
            spread[name] = 1.0  # integers, booleans, strings: any change at all
    return {"passes": 2, "bitwise_repeatable": all(value == 0.0 for value in spread.values()),
            "max_abs_spread": spread}
