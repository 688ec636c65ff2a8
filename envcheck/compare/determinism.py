"""Run-to-run determinism: a target whose second pass over the golden inputs does not repeat its first
bitwise, where the reference did, cannot be held to bitwise identity and is a finding with its own spread.
A reference that was not repeatable itself says nothing about the targets (no finding)."""
from __future__ import annotations

from typing import Any

from envcheck.model import Finding

NONDETERMINISTIC = "nondeterministic-outputs"


def reference_determinism(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a golden keeps of its reference target's repeat: repeatable or not, and the spread."""
    if not isinstance(record, dict) or not isinstance(record.get("bitwise_repeatable"), bool):
        return None
    return {"bitwise_repeatable": record["bitwise_repeatable"], "max_abs_spread": record.get("max_abs_spread") or {}}


def determinism_findings(record: dict[str, Any] | None, golden: dict[str, Any] | None) -> tuple[Finding, ...]:
    """`nondeterministic-outputs` (warn) for a target that did not repeat bitwise where the reference did."""
    if not isinstance(record, dict) or record.get("bitwise_repeatable") is not False:
        return ()
    if not isinstance(golden, dict) or golden.get("bitwise_repeatable") is not True:
        return ()
    spread = {name: value for name, value in (record.get("max_abs_spread") or {}).items() if value != 0.0}
    shown = ", ".join(f"{name} {'(changed shape or type)' if value is None else f'by up to {value:.3g}'}"
                      for name, value in sorted(spread.items()))
    return (Finding(code=NONDETERMINISTIC, severity="warn",
                    message=f"two passes over the golden inputs differ: {shown}; the reference repeated bitwise",
                    hint="Something in this target varies from run to run: GPU autotuning or atomics "
                         "(TF_DETERMINISTIC_OPS=1, TF_CUDNN_DETERMINISTIC=1), a random op in the model, or "
                         "threads racing in a custom op. Bitwise comparisons of this target will flicker."),)
