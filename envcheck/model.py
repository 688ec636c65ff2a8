"""Frozen records that cross stages: what a target produced, how it compared, what the run decided."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

Verdict = Literal["IDENTICAL", "PASS", "WARN", "FAIL", "ERROR"]
"""Per target, first that applies: ERROR, FAIL, WARN, PASS (within noise), IDENTICAL (bitwise)."""

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""Best to worst: IDENTICAL, PASS, WARN, FAIL, ERROR."""
VERDICT_RANK: dict[str, int] = {verdict: rank for rank, verdict in enumerate(VERDICTS)}
"""How bad a verdict is: 0 for IDENTICAL up to 4 for ERROR (a run's worst target decides)."""

Severity = Literal["fail", "warn", "info", "ignore"]
"""How much a fingerprint difference matters; `ignore` differences are dropped from reports."""

OutputStatus = Literal["identical", "noise", "accepted", "drift", "mismatch"]
"""Per output: bitwise equal, within the tolerance band, beyond it but within the policy's task-level
acceptance (`[acceptance]`: a WARN), beyond it, or not comparable at all."""
OUTPUT_STATUS_RANK: dict[str, int] = {status: rank for rank, status in enumerate(get_args(OutputStatus))}
"""Output statuses from best to worst."""
MEASURED_STATUSES = ("noise", "accepted", "drift")
"""Output statuses that carry numbers (identical has none to show, a mismatch none at all)."""
FAILING_STATUSES = ("drift", "mismatch")
"""Output statuses that fail their target."""
IMAGE_DIFFERS_FROM_GOLDEN = "image-differs-from-golden"
"""The finding of a target whose tag names another image than the golden was made in (compare/image.py)."""
TFLITE_PREFIX = "tflite:"
"""An output comparison of a target's model.tflite outputs with the golden's (compare/tflite.py)."""
PARITY_PREFIX = "parity:"
"""An output comparison of a target's model.tflite outputs with its own SavedModel's: conversion parity, which
is never bitwise, so within its band it is shown but decides nothing; beyond it, it fails like any output."""


def is_parity(name: str) -> bool:
    """A conversion-parity comparison (PARITY_PREFIX)."""
    return name.startswith(PARITY_PREFIX)


def model_output_name(name: str) -> str:
    """The model's own output a comparison is of: `class_probs` for `tflite:class_probs` (the policy's key)."""
    for prefix in (TFLITE_PREFIX, PARITY_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def is_saved_model_output(name: str) -> bool:
    """An output of the golden's SavedModel itself (not a TFLite comparison)."""
    return not name.startswith((TFLITE_PREFIX, PARITY_PREFIX))


@dataclass(frozen=True, slots=True)
class Capture:
    """What the probe brought back from one target that ran to the end."""

    spec: str
    """The target spec as the user wrote it (`host`, `python:/opt/venv/bin/python`, `docker:img`)."""
    fingerprint: dict[str, Any]
    """The environment as the probe saw it (raw: hostnames are hashed only in shared reports)."""
    outputs: dict[str, np.ndarray]
    """The golden model's outputs, keyed by signature output name."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per probe stage (import, load, run, total)."""
    target_info: dict[str, Any] = field(default_factory=dict)
    """Facts seen from outside the target: interpreter path, image id and digests, daemon version."""
    site: str | None = None
    """The factory or site name the capture belongs to."""
    latency: dict[str, Any] | None = None
    """The probe's latency record (capture.json's `latency`: percentiles, blocks, throughput and context, or
    `skipped` with the reason); None: a probe that measured none."""
    determinism: dict[str, Any] | None = None
    """Whether a second pass over the golden inputs repeated the outputs bitwise (capture.json's `determinism`)."""
    calibration: dict[str, Any] | None = None
    """A probe run with --calibrate: each perturbation's description, setting and outputs (arrays) or why it
    was skipped; None otherwise."""
    layers: dict[str, Any] | None = None
    """The layer record (capture.json's `layers`: each intermediate tensor's summary, or `unsupported` and
    why); None: the probe recorded no layers."""
    tflite: dict[str, Any] | None = None
    """The TFLite record (capture.json's `tflite`: runtime, version, op resolver, a golden's conversion, or an
    error); None: the golden has no model.tflite."""
    tflite_outputs: dict[str, np.ndarray] | None = None
    """model.tflite's outputs on the golden inputs (tflite-outputs.npz); None when it did not run."""
    edge: bool = False
    """The target has no TensorFlow, only a TFLite runtime: `outputs` is empty and tflite_outputs is all."""


@dataclass(frozen=True, slots=True)
class TargetFailure:
    """A target that could not be checked: a row in every report, never an aborted run."""

    spec: str
    kind: str
    """A short closed-ish vocabulary: sigill, sigabrt, killed, timeout, interpreter-not-found,
    tensorflow-not-importable, model-load, image-not-found, daemon-unreachable, …"""
    message: str
    """One plain sentence for a person: what happened and what it most likely means."""
    exit_code: int | None = None
    """The child's exit status (negative: killed by that signal), when there was a child."""
    stderr_tail: str = ""
    """The last lines the child wrote to stderr, for diagnosis."""
    stage: str | None = None
    """The probe stage that was running when it failed (import-tensorflow, load-model, run-model)."""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    """Whatever fingerprint the probe collected before it failed."""
    target_info: dict[str, Any] = field(default_factory=dict)
    site: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per probe stage reached before the failure."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """An output passes when every |actual − golden| ≤ atol·scale + rtol·|golden| (scale = max|golden|)."""

    atol: float = 1e-5
    rtol: float = 1e-5


@dataclass(frozen=True)
class Reference:
    """What every target is judged against: the golden's outputs and fingerprint (as shared: redacted) and
    what its reference target recorded."""

    expected: dict[str, np.ndarray]
    fingerprint: dict[str, Any]
    latency: dict[str, Any] | None = None
    """The reference latency and hardware class, if the golden measured it."""
    determinism: dict[str, Any] | None = None
    """Whether the reference repeated the golden pass bitwise, if recorded."""
    noise: dict[str, float] = field(default_factory=dict)
    """Per output, the calibrated noise (absolute); empty for a golden that was not calibrated."""
    calibration: dict[str, Any] | None = None
    """The golden manifest's `calibration` (each perturbation's moves per output), for the hints; None: not calibrated."""
    layers: dict[str, Any] | None = None
    """The reference's layer record (layers.json); None: the golden has none, so nothing is localised."""
    tflite_expected: dict[str, np.ndarray] | None = None
    """model.tflite's outputs in the reference (tflite_expected.npz); None: the golden has no TFLite model."""
    image: dict[str, Any] | None = None
    """The Docker image the golden was made in ({ref, id, tags, repo_digests}); None: another kind of target."""


@dataclass(frozen=True, slots=True)
class OutputComparison:
    """Evidence for one output tensor: not just a verdict but the numbers behind it."""

    name: str
    status: OutputStatus
    reason: str | None
    """Why it failed, in words (shape, dtype, NaN, beyond tolerance); None when it passed."""
    tolerance: Tolerance
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    p99_abs: float | None = None
    max_rel: float | None = None
    p99_rel: float | None = None
    max_ulp: int | None = None
    p99_ulp: float | None = None
    changed_fraction: float | None = None
    top1_agreement: float | None = None
    """Share of rows whose argmax agrees, counted where the golden's top-1/top-2 margin is clear."""
    min_passing_tolerance: float | None = None
    """The smallest t for which atol = rtol = t would have passed."""
    ulp_histogram: tuple[tuple[str, int], ...] = ()
    """Element counts per ULP-distance bucket, for drifted outputs."""
    samples: int | None = None
    """How many samples the output holds (its axis 0; an output of rank 0 is one sample); None: not compared."""
    samples_beyond: int | None = None
    """Samples with at least one element beyond the tolerance band (any changed element, for a non-float output)."""
    consistency: float | None = None
    """Share of samples entirely within tolerance and, for a classification output, with every clear-margin
    row's top-1 class kept."""
    top1_agreement_all: float | None = None
    """Share of rows (a row is a sample of a [samples, classes] output) whose argmax agrees, over all rows,
    margin or not; None for an output that is not a classification."""
    worst_samples: tuple[tuple[int, float], ...] | None = None
    """The worst samples (at most 5) by their largest |actual − golden|, worst first: (index, error)."""
    sample_error_histogram: tuple[tuple[str, int], ...] = ()
    """Samples per decade of their largest |actual − golden| (`0`, `≤1e-7`, …): the per-sample error distribution."""
    noise_units: float | None = None
    """The worst error in units of the golden's calibrated noise (None until the golden carries a calibration)."""


@dataclass(frozen=True, slots=True)
class FingerprintDifference:
    """One fingerprint field whose value differs between the golden and a target."""
    path: str
    """Dotted path into the fingerprint, e.g. `env.TF_ENABLE_ONEDNN_OPTS`."""
    golden: Any
    target: Any
    severity: Severity
    missing: tuple[str, ...] | None = None
    """For a set-valued field (CPU flags, devices…): items the golden has and the target lacks."""
    extra: tuple[str, ...] | None = None
    """For a set-valued field: items the target has and the golden lacks."""

    @property
    def change(self) -> str:
        """The difference in words: `missing a, b; extra c` for a set, `golden → target` otherwise."""
        if self.missing is not None or self.extra is not None:
            parts = [f"{word} {', '.join(items)}" for word, items in (("missing", self.missing), ("extra", self.extra))
                     if items]
            return "; ".join(parts)
        return f"{show_value(self.golden)} → {show_value(self.target)}"


LATENCY_SLOWER = "latency-slower"
"""The finding of a target slower than the golden on the same hardware (JUnit gives it a test case of its own)."""

ABSENT = "absent"
"""The one word every renderer uses for a value one side does not have."""


def milliseconds(seconds: Any) -> str:
    """Seconds as milliseconds to 3 significant digits (`0.713 ms`), a dash for none."""
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return f"{seconds * 1000:.3g} ms"
    return "—"


def percent(share: Any) -> str:
    """A share as a percentage with at most two decimals and no trailing zeros (`99.96 %`, `99.9 %`, `100 %`):
    consistency near 100 % needs the second decimal. A dash for none."""
    if not isinstance(share, (int, float)) or isinstance(share, bool):
        return "—"
    shown = f"{share * 100:.2f}".rstrip("0").rstrip(".")
    # Rounding must not make a share below 1 read as all, or one above 0 as none.
    if shown == "100" and share < 1:
        return "> 99.99 %"
    if shown == "0" and share > 0:
        return "< 0.01 %"
    return f"{shown} %"


def show_value(value: Any) -> str:
    """A fingerprint value as text; the word for a value one side does not have."""
    return ABSENT if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem seen in one target's own fingerprint (no golden needed), e.g. a silent CPU fallback."""

    code: str
    """Stable identifier, also the policy path `finding.<code>`: gpu-cpu-fallback, driver-cuda-too-old, …"""
    severity: Severity
    message: str
    """What is wrong, with the values that show it."""
    hint: str
    """What to do about it."""


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One target judged against the golden: its verdict and the evidence behind it."""
    spec: str
    site: str | None
    verdict: Verdict
    error: TargetFailure | None
    outputs: tuple[OutputComparison, ...]
    fingerprint_diff: tuple[FingerprintDifference, ...]
    hints: tuple[str, ...]
    fingerprint: dict[str, Any]
    """As shared: identifying values already hashed."""
    target_info: dict[str, Any]
    timings: dict[str, float]
    output_digest: str | None
    """sha256 over the outputs' names, dtypes, shapes and bytes: equal digests, identical outputs."""
    findings: tuple[Finding, ...] = ()
    """Problems of the target itself (GPU fallback, driver too old, …), decided with the verdict."""
    latency: dict[str, Any] | None = None
    """The target's latency and its comparison with the golden's (compare/latency.py); None: not measured."""
    localization: dict[str, Any] | None = None
    """Where the target's numbers first part from the golden's (compare/localization.py); None: the golden
    has no layer record or the target's probe recorded none (--no-layers)."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """The whole run: the golden, every target's result, and the exit code decided from them."""
    golden_path: str
    golden_sha256: str
    targets: tuple[TargetResult, ...]
    exit_code: int
    fail_on: Literal["warn", "fail"]
    created: str
    envcheck_version: str
    policy: dict[str, Any] | None = None
    """The policy that applied: effective table and hash, each layer's source and hash, warnings."""
    localization_between: dict[str, Any] | None = None
    """`envcheck compare A B`: where capture B's numbers first part from capture A's ({a, b, …localization})."""
