"""Name the most likely causes of drift from the fingerprint differences (shared DRIFT.md)."""
from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from envcheck.model import FingerprintDifference, OutputComparison


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

# (path globs, what it means). {path} and {change} (`a → b`, or `missing …; extra …` for a set) are
# filled from the first matching difference.
CAUSES: tuple[Cause, ...] = (
    Cause(("env.TF_ENABLE_ONEDNN_OPTS", "tensorflow.onednn_enabled"),
     "{path} differs ({change}): oneDNN custom ops change the kernels' summation order; "
     "expect bitwise-different outputs within ~15 ULP. Since TF 2.9 oneDNN is on by default only on CPUs "
     "with avx512_vnni, avx512_bf16, avx_vnni or AMX.", explains_ulp=15),
    Cause(("env.ONEDNN_MAX_CPU_ISA", "env.DNNL_MAX_CPU_ISA"),
     "{path} differs ({change}): oneDNN dispatches to kernels for another instruction set "
     "(this is also how an older CPU is emulated); expect 0–12 ULP.", explains_ulp=12),
    Cause(("env.ONEDNN_DEFAULT_FPMATH_MODE", "env.TF_SET_ONEDNN_FPMATH_MODE"),
     "{path} differs ({change}): oneDNN may compute float32 in reduced precision (bf16/tf32); "
     "expect relative error ~1e-3, far outside float32 noise.", explains_rel=1e-3),
    Cause(("cpu.tf_flags*",),
     "The CPU's instruction sets differ ({path}: {change}): oneDNN and Eigen select other "
     "kernels (AVX2 / AVX-512 / AMX, FMA); expect 0–12 ULP.", explains_ulp=12),
    Cause(("cpu.missing_required_flags*",),
     "This CPU lacks instructions every TensorFlow x86 wheel needs ({path}: {change}): importing TensorFlow "
     "dies with SIGILL. Use a build for older CPUs or another machine."),
    Cause(("tensorflow.version", "tensorflow.git_version", "packages.tensorflow*", "tensorflow.distribution*"),
     "The TensorFlow build differs ({path}: {change}): kernels and defaults change between "
     "releases; expect ~1e-6 relative, more when a default changes. Pin the image to the golden's version.", explains_rel=1e-6),
    Cause(("tensorflow.build_info*", "tensorflow.compiler_version"),
     "TensorFlow was built differently ({path}: {change}): compiler, CUDA or cuDNN of the build "
     "changed."),
    Cause(("env.TF_XLA_FLAGS", "env.XLA_FLAGS", "tensorflow.jit"),
     "XLA/JIT settings differ ({path}: {change}): fused kernels reorder arithmetic; expect ≤ ~14 ULP.", explains_ulp=14),
    Cause(("tensorflow.tf32", "env.NVIDIA_TF32_OVERRIDE"),
     "TF32 differs ({path}: {change}): on NVIDIA compute capability ≥ 8.0 matmul inputs are "
     "rounded to 10 mantissa bits; expect ~5e-4 relative.", explains_rel=5e-4),
    Cause(("env.TF_DETERMINISTIC_OPS", "tensorflow.op_determinism", "env.TF_CUDNN_*"),
     "Determinism / cuDNN algorithm settings differ ({path}: {change}): on GPUs this changes "
     "algorithm choice and run-to-run variation; on CPUs it has no numeric effect."),
    Cause(("packages.numpy", "numpy.version"),
     "NumPy differs ({change}): ufuncs may differ by ≤ 4 ULP and NumPy 2's type promotion "
     "changes pre/post-processing.", explains_ulp=4),
    Cause(("packages.keras", "packages.tf-keras", "tensorflow.keras*", "env.TF_USE_LEGACY_KERAS"),
     "Keras differs ({path}: {change}): ~1e-7 per layer; Keras 3 cannot load legacy "
     "SavedModels with load_model."),
    Cause(("packages.protobuf", "env.PROTOCOL_BUFFERS_*"),
     "protobuf differs ({change}): no numeric effect, but a mismatch breaks TensorFlow's import."),
    Cause(("os.glibc",),
     "glibc differs ({change}): libm may differ within a few ULP, mostly in NumPy-side code.", explains_ulp=4),
    Cause(("python.version",),
     "Python differs ({change}): no numeric effect by itself; it selects other wheels."),
)


def hints_for(diffs: Iterable[FingerprintDifference], outputs: Iterable[OutputComparison]) -> tuple[str, ...]:
    diffs, outputs = [d for d in diffs if d.severity != "info"], list(outputs)
    hints = []
    for cause in CAUSES:
        match = next((d for d in diffs if any(fnmatch.fnmatchcase(d.path, p) for p in cause.patterns)), None)
        if match:
            hints.append(cause.text.format(path=match.path, change=match.change) + _unexplained(cause, outputs))
    drifted = [o for o in outputs if o.status == "drift" and o.max_rel is not None]
    if any(o.p99_rel is not None and o.p99_rel > 1e-4 for o in drifted):
        hints.append("Relative error above 1e-4 is reduced-precision territory (bf16, TF32, mixed precision), "
                     "not float32 round-off.")
    if any(o.status in ("noise", "drift") for o in outputs) and not diffs:
        hints.append("Outputs differ but no fingerprint difference explains it: look for non-determinism or "
                     "a cause the probe cannot see (GPU autotuning, a changed model file, hardware faults).")
    return tuple(hints)


def _unexplained(cause: Cause, outputs: list[OutputComparison]) -> str:
    """A hint checks itself: when the measured drift is larger than its cause explains, it says so."""
    measured = [o for o in outputs if o.status in ("noise", "drift")]
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
