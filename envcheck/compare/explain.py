"""Name the most likely causes of drift from the fingerprint differences (docs/drift.md)."""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from envcheck import fields
from envcheck.model import MEASURED_STATUSES, TFLITE_PREFIX, FingerprintDifference, OutputComparison, is_parity


@dataclass(frozen=True)
class Cause:
    """A fingerprint difference that explains drift, and how much drift it typically explains."""

    patterns: tuple[str, ...]
    text: str
    explains_ulp: int | None = None
    """Typical worst float32 ULP distance this cause alone produces (measured; see docs)."""
    explains_rel: float | None = None
    """Typical relative error this cause alone produces."""


# Beyond this multiple of a cause's typical relative error, the cause alone does not explain it.
REL_MARGIN = 10

# (path globs, what it means), in the registry's priority order (envcheck/fields.py). {path} and {change}
# (`a → b`, or `missing …; extra …` for a set) are filled from the first matching difference.
CAUSES: tuple[Cause, ...] = tuple(Cause(globs, hint.text, hint.explains_ulp, hint.explains_rel)
                                  for hint, globs in fields.hint_table())


def hints_for(diffs: Iterable[FingerprintDifference], outputs: Iterable[OutputComparison]) -> tuple[str, ...]:
    """The likely causes of the measured drift, most specific first, each checked against the numbers."""
    every, everything = list(diffs), list(outputs)
    diffs = [d for d in every if d.severity != "info"]
    # Parity (TFLite against the site's own SavedModel) is the conversion's, not the environment's.
    outputs = [o for o in everything if not is_parity(o.name)]
    hints = []
    for cause in CAUSES:
        match = next((d for d in diffs if any(fnmatch.fnmatchcase(d.path, p) for p in cause.patterns)), None)
        if match:
            hints.append(cause.text.format(path=match.path, change=match.change) + _unexplained(cause, outputs))
    drifted = [o for o in outputs if o.status == "drift" and o.max_rel is not None]
    if any(o.p99_rel is not None and o.p99_rel > 1e-4 for o in drifted):
        hints.append("Relative error above 1e-4 is reduced-precision territory (bf16, TF32, mixed precision), "
                     "not float32 round-off.")
    hints += _tflite_hints(every, everything)
    if any(o.status in MEASURED_STATUSES for o in outputs) and not diffs:
        hints.append("Outputs differ but no fingerprint difference explains it: look for non-determinism or "
                     "a cause the probe cannot see (GPU autotuning, a changed model file, hardware faults).")
    return tuple(hints)


def _tflite_hints(diffs: list[FingerprintDifference], outputs: list[OutputComparison]) -> list[str]:
    """Where the TFLite outputs moved: another runtime (an info-level fact until its outputs move), and the
    converted model against the SavedModel at the same site."""
    hints = []
    moved = [o for o in outputs if o.name.startswith(TFLITE_PREFIX) and o.status in MEASURED_STATUSES]
    # (At info level, its default, the registry's own hint for it is not given: it is given here.)
    runtime = next((d for d in diffs if d.path in ("tflite.runtime", "tflite.version") and d.severity == "info"), None)
    if moved and runtime is not None:
        hints.append(fields.TFLITE_RUNTIME.text.format(path=runtime.path, change=runtime.change))
    parity = [o for o in outputs if is_parity(o.name) and o.status in MEASURED_STATUSES]
    if parity:
        worst = max(parity, key=lambda o: o.max_abs or 0.0)
        hints.append(f"The TFLite model differs from the SavedModel here ({worst.name} up to {worst.max_abs:.3g}): the "
                     "converter fuses ops and TFLite's kernels (XNNPACK) sum in another order than TensorFlow's; "
                     "within ~1e-6 relative that is conversion noise, beyond it look at the converter's settings "
                     "(optimisations, FP16, quantisation) in the golden's manifest.")
    return hints


def _unexplained(cause: Cause, outputs: list[OutputComparison]) -> str:
    """A hint checks itself: when the measured drift is larger than its cause explains, it says so."""
    measured = [o for o in outputs if o.status in MEASURED_STATUSES]
    if cause.explains_ulp is not None:
        worst = max(measured, key=lambda o: o.max_ulp or 0, default=None)
        if worst is not None and (worst.max_ulp or 0) > cause.explains_ulp:
            if worst.p99_ulp is not None and worst.p99_ulp <= cause.explains_ulp:
                return (f" Measured: {worst.name} max {worst.max_ulp} ULP, p99 {worst.p99_ulp:.3g}: only the largest "
                        "errors exceed it, typically elements near zero, where ULP exaggerates.")
            return (f" Measured: {worst.name} max {worst.max_ulp} ULP is more than this alone explains "
                    f"(~{cause.explains_ulp} ULP): something else differs too.")
    if cause.explains_rel is not None:
        worst = max(measured, key=lambda o: o.p99_rel or 0.0, default=None)
        if worst is not None and (worst.p99_rel or 0.0) > REL_MARGIN * cause.explains_rel:
            return (f" Measured: {worst.name} p99 relative error {worst.p99_rel:.2g} is more than this alone explains "
                    f"(~{cause.explains_rel:g}): something else differs too.")
    return ""
