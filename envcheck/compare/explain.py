"""Name the most likely causes of drift from the fingerprint differences, and check each against the numbers:
what the golden's own calibration measured when it turned the same knob, else the cause's typical range
(docs/drift.md). Only the hints that speak for the comparison's architectures are given (fields.Architectures):
x86 wording never for an Arm box, and across architectures the architecture alone, which explains the CPU
differences at once."""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    perturbation: str | None = None
    """The calibration perturbation that turns the same knob (envcheck_probe/calibrate.py), if one does."""
    machine: str | None = None
    """The architecture it speaks of (fields.Hint.machine); None: any."""
    of_the_cpu: bool = False
    """It blames the target's CPU (fields.Hint.of_the_cpu)."""


# Beyond this multiple of a cause's typical relative error, the cause alone does not explain it.
REL_MARGIN = 10

# The calibration perturbation that turns each hint's knob. The calibration also runs one thread, the remapper
# off and one sample at a time, but no fingerprint difference names those (tensorflow.threads.* is info-level).
PERTURBATION_FOR: dict[fields.Hint, str] = {fields.ONEDNN: "onednn-off", fields.ONEDNN_ISA: "isa-cap"}

# A registry hint states its typical range as one clause, "; expect ….": where the golden's calibration
# measured the knob, the measurement replaces it.
TYPICAL_RANGE = re.compile(r"; expect [^.]*\.")

# (path globs, what it means), in the registry's priority order (envcheck/fields.py). {path} and {change}
# (`a → b`, or `missing …; extra …` for a set) are filled from the first matching difference.
CAUSES: tuple[Cause, ...] = tuple(Cause(globs, hint.text, hint.explains_ulp, hint.explains_rel,
                                        PERTURBATION_FOR.get(hint), hint.machine, hint.of_the_cpu)
                                  for hint, globs in fields.hint_table())


@dataclass(frozen=True)
class Reach:
    """How far one matched cause alone moves the outputs: what the golden's calibration measured when it ran
    the same knob (`calibrated`, per output), else the cause's typical bound."""

    cause: Cause
    name: str
    """The difference that matched it (its path), to name it among several."""
    calibrated: dict[str, int] = field(default_factory=dict)
    """Per output, the largest ULP move the calibration's perturbation made; empty: it has no such measurement."""
    setting: str = ""
    """The perturbation's setting in words (`TF_ENABLE_ONEDNN_OPTS=0`), when calibrated."""

    @property
    def bounded(self) -> bool:
        """Whether this cause says how far it moves outputs (causes without a bound are never checked)."""
        return bool(self.calibrated) or self.cause.explains_ulp is not None or self.cause.explains_rel is not None

    def ulp(self, output: str) -> int | None:
        """How many ULP this cause alone moves `output`: calibrated, else typical; None: no ULP bound."""
        return self.calibrated.get(output, self.cause.explains_ulp)


@dataclass(frozen=True)
class Check:
    """One bound held against the measured drift."""

    within: bool
    text: str
    """What to append to the hint ("" where a single typical bound holds: the hint's own range said it)."""


def hints_for(diffs: Iterable[FingerprintDifference], outputs: Iterable[OutputComparison],
              calibration: Mapping[str, Any] | None = None,
              architectures: fields.Architectures = fields.SAME_ARCHITECTURE) -> tuple[str, ...]:
    """The likely causes of the measured drift, most specific first, each checked against the numbers: what
    the golden's `calibration` (its manifest's) measured for the same knob where it ran one, else the typical
    range; several checked causes are checked once, together. `architectures` (the golden's and the target's)
    decides which architecture's wording speaks."""
    every, everything = list(diffs), list(outputs)
    diffs = [d for d in every if d.severity != "info"]
    # Parity (TFLite against the site's own SavedModel) is the conversion's, not the environment's.
    outputs = [o for o in everything if not is_parity(o.name)]
    measured = [o for o in outputs if o.status in MEASURED_STATUSES]
    causes = [cause for cause in CAUSES if architectures.admits(cause.machine)]
    matched = [(cause, match) for cause in causes if (match := _first_match(cause, diffs)) is not None]
    reaches = [_reach(cause, match.path, calibration) for cause, match in matched]
    checked = [reach for reach in reaches if reach.bounded]
    alone = checked[0] if len(checked) == 1 else None  # the one checked cause checks itself in its own hint
    hints = _architecture_hints(architectures)
    for (cause, match), reach in zip(matched, reaches, strict=True):
        text = TYPICAL_RANGE.sub(".", cause.text) if reach.calibrated else cause.text
        hints.append(text.format(path=match.path, change=match.change) + architectures.note(cause.of_the_cpu)
                     + _quote(reach) + (_check(checked, measured) if reach is alone else ""))
    if len(checked) > 1 and measured:
        hints.append(_together(checked) + _check(checked, measured))
    drifted = [o for o in outputs if o.status == "drift" and o.max_rel is not None]
    if any(o.p99_rel is not None and o.p99_rel > 1e-4 for o in drifted):
        hints.append("Relative error above 1e-4 is reduced-precision territory (bf16, TF32, mixed precision), "
                     "not float32 round-off.")
    hints += _tflite_hints(every, everything)
    if measured and not diffs and not architectures.crossed:  # (the architecture explains it)
        hints.append(_integrity_cause(every) or
                     "Outputs differ but no fingerprint difference explains it: look for non-determinism or "
                     "a cause the probe cannot see (GPU autotuning, a changed model file, hardware faults).")
    return tuple(hints)


def _architecture_hints(architectures: fields.Architectures) -> list[str]:
    """The architecture as the cause, leading, where the golden's is not the target's (the difference in
    cpu.machine is info: the cross-architecture finding decides, this hint names the cause)."""
    if not architectures.crossed:
        return []
    change = f"{architectures.golden} → {architectures.target}"
    return [fields.CROSS_ARCHITECTURE.text.format(path="cpu.machine", change=change)]


# Where the probe's integrity record names a file changed, missing or unowned, or start-up code (info-level in
# the fingerprint: its findings decide, compare/findings.py).
INTEGRITY_FILES = ("integrity.python.*.modified", "integrity.python.*.missing", "integrity.python.*.unowned",
                   "integrity.system.modified", "integrity.system.unowned", "integrity.startup.*")


def _integrity_cause(diffs: list[FingerprintDifference]) -> str | None:
    """When outputs drift and the only differences from the golden are installed files or start-up code: that
    is the likely cause, named (None: no such difference)."""
    found = [d for d in diffs if any(fnmatch.fnmatchcase(d.path, p) for p in INTEGRITY_FILES)]
    named = [name for d in found for name in _added(d)]
    if not named:
        return None
    return (f"Outputs differ and the only difference from the golden is in the installed files or start-up code "
            f"({', '.join(named[:5])}{' …' if len(named) > 5 else ''}): this is the likely cause (see the findings).")


def _added(difference: FingerprintDifference) -> list[str]:
    """What the target has there and the golden has not: file paths, or a start-up record's path."""
    golden = difference.golden if isinstance(difference.golden, list) else [difference.golden]
    target = difference.target if isinstance(difference.target, list) else [difference.target]
    return [str(item.get("path")) if isinstance(item, dict) else str(item)
            for item in target if item is not None and item not in golden]


def _first_match(cause: Cause, diffs: list[FingerprintDifference]) -> FingerprintDifference | None:
    return next((d for d in diffs if any(fnmatch.fnmatchcase(d.path, p) for p in cause.patterns)), None)


def _reach(cause: Cause, name: str, calibration: Mapping[str, Any] | None) -> Reach:
    """The cause's reach, calibrated where the golden's calibration ran its knob (a skipped perturbation, or
    an output whose shape it changed, has no measurement: the typical range stands there)."""
    # NOTE: a large golden set is calibrated on its first batch: a check over every batch may find a little more.
    entry = ((calibration or {}).get("perturbations") or {}).get(cause.perturbation or "") or {}
    moves = {output: int(move["max_ulp"]) for output, move in (entry.get("outputs") or {}).items()
             if move and move.get("max_ulp") is not None}
    return Reach(cause, name, moves, entry.get("setting", "")) if moves else Reach(cause, name)


def _quote(reach: Reach, shown: int = 3) -> str:
    """What the golden's calibration measured for this knob, the largest moves first."""
    if not reach.calibrated:
        return ""
    largest = sorted(reach.calibrated.items(), key=lambda item: -item[1])
    moves = ", ".join(f"{output} by up to {ulp} ULP" for output, ulp in largest[:shown])
    more = f" and {len(largest) - shown} more outputs" if len(largest) > shown else ""
    setting = f", {reach.setting}" if reach.setting else ""
    return f" This golden's calibration ran the same knob ({reach.cause.perturbation}{setting}): it moved {moves}{more}."


def _together(reaches: list[Reach]) -> str:
    """The sentence that names several checked causes at once. Their bounds add (the sum, not the larger): knobs
    that change different kernels move outputs further together than either alone (measured here: oneDNN off and
    capped at SSE4.1 moved embedding by 3.6e-7, oneDNN off alone by 3.0e-7, the cap alone by 2.4e-7)."""
    named = ", ".join(f"{reach.name}: {'calibrated' if reach.calibrated else 'typical'}" for reach in reaches)
    return (f"Several of these differ at once ({named}): together they explain up to the sum of what each does "
            "alone, since their effects can add.")


def _check(reaches: list[Reach], measured: list[OutputComparison]) -> str:
    """The causes check themselves against the measured drift: in ULP per output where they bound it so (their
    bounds summed), and in relative error where they bound it so; "something else differs too" only when
    neither covers it."""
    found = [check for check in (_ulp_check(reaches, measured), _rel_check(reaches, measured)) if check is not None]
    chosen = next((check for check in found if check.within), found[0] if found else None)
    return chosen.text if chosen is not None else ""


def _ulp_check(reaches: list[Reach], measured: list[OutputComparison]) -> Check | None:
    """The output nearest its ULP bound (or furthest past it; on a tie, the one that moved most) against that
    bound, the causes' bounds summed; None: no cause bounds an output in ULP."""
    bounded = [(o, bounds) for o in measured if o.max_ulp is not None and (bounds := _ulp_bounds(reaches, o.name))]
    if not bounded:
        return None
    worst, bounds = max(bounded, key=lambda pair: ((pair[0].max_ulp or 0) / max(_total(pair[1]), 1),
                                                   pair[0].max_ulp or 0))
    max_ulp, p99_ulp, bound = worst.max_ulp or 0, worst.p99_ulp, _total(bounds)
    if max_ulp <= bound:
        return Check(True, "" if _typical_alone(reaches) else
                     f" Measured: {worst.name} max {max_ulp} ULP: within what {_whose(reaches)} ({_sum_text(bounds)} ULP).")
    if p99_ulp is not None and p99_ulp <= bound:
        return Check(True, f" Measured: {worst.name} max {max_ulp} ULP, p99 {p99_ulp:.3g}: only the largest errors "
                           "exceed it, typically elements near zero, where ULP exaggerates.")
    beyond = (f"this alone explains (~{bound} ULP)" if _typical_alone(reaches) else
              f"what {_whose(reaches)} ({_sum_text(bounds)} ULP)")
    return Check(False, f" Measured: {worst.name} max {max_ulp} ULP is more than {beyond}: something else differs too.")


def _ulp_bounds(reaches: list[Reach], output: str) -> list[tuple[int, bool]]:
    """Each cause's ULP bound on `output` and whether the calibration measured it (else it is the typical one);
    causes without one are left out. Together they add."""
    return [(bound, output in reach.calibrated) for reach in reaches if (bound := reach.ulp(output)) is not None]


def _total(bounds: list[tuple[int, bool]]) -> int:
    return sum(bound for bound, _ in bounds)


def _sum_text(bounds: list[tuple[int, bool]]) -> str:
    """A ULP bound as the sum it is, typical parts marked `~`: `711 + ~12 = ~723`, or `711` for one cause."""
    parts = [f"{'' if calibrated else '~'}{bound}" for bound, calibrated in bounds]
    total = f"{'' if all(calibrated for _, calibrated in bounds) else '~'}{_total(bounds)}"
    return parts[0] if len(parts) == 1 else f"{' + '.join(parts)} = {total}"


def _rel_check(reaches: list[Reach], measured: list[OutputComparison]) -> Check | None:
    """The worst p99 relative error against the causes' summed typical relative bounds; None: none bounds it so."""
    bounds = [reach.cause.explains_rel for reach in reaches if reach.cause.explains_rel is not None]
    worst = max(measured, key=lambda o: o.p99_rel or 0.0, default=None)
    if not bounds or worst is None:
        return None
    bound, p99_rel = sum(bounds), worst.p99_rel or 0.0
    if p99_rel <= REL_MARGIN * bound:
        return Check(True, "" if _typical_alone(reaches) else
                     f" Measured: {worst.name} p99 relative error {p99_rel:.2g}: within what {_whose(reaches)} "
                     f"(~{bound:g}).")
    beyond = "this alone explains" if len(reaches) == 1 else "they explain together"
    return Check(False, f" Measured: {worst.name} p99 relative error {p99_rel:.2g} is more than {beyond} "
                        f"(~{bound:g}): something else differs too.")


def _typical_alone(reaches: list[Reach]) -> bool:
    """One cause with only its typical range: its hint already states the range, so a drift within it goes unsaid."""
    return len(reaches) == 1 and not reaches[0].calibrated


def _whose(reaches: list[Reach]) -> str:
    return "this knob alone does" if len(reaches) == 1 else "they do together"


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
