"""The check service: golden → targets → comparison → report, shared by `check`, `compare` and `probe`.

The CLI parses arguments and prints; everything between a verified golden and a RunReport happens here,
so the three commands cannot decide the same thing in different ways.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from envcheck import __version__
from envcheck.capture import DeathReader, archive_name, load_capture_dir, save_capture_dir
from envcheck.compare.calibration import LAYER as CALIBRATION_LAYER
from envcheck.compare.calibration import calibrated_layer, noise_scales
from envcheck.compare.evaluate import evaluate, output_digest
from envcheck.compare.localization import localize, unsupported
from envcheck.compare.policy import Policy, build_policy, load_policy_file, unknown_outputs
from envcheck.compare.policy_record import policy_record
from envcheck.compare.verdict import FailOn, exit_code_for
from envcheck.errors import GoldenError
from envcheck.golden import GoldenBundle, load_golden
from envcheck.model import Capture, Reference, RunReport, TargetFailure, TargetResult
from envcheck.redact import redact_fingerprint, redact_for_sending
from envcheck.runner import ProgressListener, run_probe_into, run_targets
from envcheck.targets import measured_alongside
from envcheck.targets.base import Target
from envcheck.targets.exits import ChildExit, classify_exit

GOLDEN_LAYER = "golden manifest"
"""How the golden's own policy table is named in the policy record."""

Outcome = Capture | TargetFailure


def load_pinned_golden(path: str | Path | None, pinned_sha256: str | None = None) -> GoldenBundle:
    """The golden, verified against its manifest; with a pin, exactly the bundle CI pinned or nothing."""
    golden = load_golden(path)
    pinned = (pinned_sha256 or "").lower()
    if pinned and not golden.sha256.startswith(pinned):
        raise GoldenError(f"{golden.path}: manifest sha256 is {golden.sha256}, but --golden-sha256 pins {pinned}")
    return golden


def layered_policy(golden: GoldenBundle, policy_file: Path | None) -> tuple[Policy, dict[str, Any]]:
    """The golden's policy, its calibrated tolerances over it, and the user's file over both, key by key (a file
    that sets one output's rtol replaces that and nothing else; compare/policy.py's overlay), with the record of
    all three: its `warnings` say in words where the golden's layers loosen the defaults and what the file
    replaced of them (the caller shows them before anything runs). A file naming an output the golden does not
    have is a usage error."""
    layers = [(GOLDEN_LAYER, golden.policy)]
    if golden.calibration:
        layers.append((CALIBRATION_LAYER, calibrated_layer(golden.calibration, build_policy(golden.policy))))
    if policy_file:
        own = load_policy_file(policy_file)
        unknown_outputs(own, golden.expected, str(policy_file))
        layers.append((str(policy_file), own))
    policy = build_policy(*(table for _, table in layers), source=str(policy_file or GOLDEN_LAYER))
    return policy, policy_record(layers, policy, (GOLDEN_LAYER, CALIBRATION_LAYER))


def check_targets(golden: GoldenBundle, targets: Sequence[Target], policy: Policy, record: dict[str, Any], *,
                  timeout: float, jobs: int = 1, site: str | None = None, fail_on: FailOn = "fail",
                  progress: ProgressListener | None = None, others_at_once: int = 0) -> RunReport:
    """Probe every target (up to `jobs` at once) and judge each against the golden; `others_at_once`: probes
    of other checks running meanwhile (a fleet's other sites), so that latencies are shown, not judged."""
    concurrent_probes = min(jobs, len(targets)) + others_at_once
    # Each target knows the context its latency is measured in: a cached capture is keyed by it (targets/cache.py).
    targets = measured_alongside(targets, concurrent_probes)
    outcomes = run_targets(targets, golden.path, timeout=timeout, jobs=jobs, site=site, progress=progress)
    return build_report(golden, outcomes, policy, fail_on, record, concurrent_probes=concurrent_probes)


def compare_captures(golden: GoldenBundle, capture_dirs: Sequence[Path], policy: Policy, record: dict[str, Any],
                     fail_on: FailOn = "fail") -> RunReport:
    """Judge captures made elsewhere (`envcheck probe --out`) against the golden; two captures are also
    localised against each other (where B's numbers first part from A's, the golden not involved)."""
    outcomes = [_captured(golden, Path(d)) for d in capture_dirs]
    report = build_report(golden, outcomes, policy, fail_on, record)
    if len(outcomes) == 2:
        report = dataclasses.replace(report, localization_between=localize_between(*outcomes))
    return report


def localize_between(first: Outcome, second: Outcome) -> dict[str, Any]:
    """Where `second`'s numbers first part from `first`'s, by their layer records alone."""
    names = {"a": _name(first), "b": _name(second)}
    failed = next((o for o in (first, second) if isinstance(o, TargetFailure)), None)
    if failed is not None:
        return {**names, **unsupported(f"{_name(failed)} has no capture to compare ({failed.message})")}
    assert isinstance(first, Capture) and isinstance(second, Capture)
    differ = output_digest(first.outputs) != output_digest(second.outputs)
    return {**names, **localize(first.layers, second.layers, outputs_drift=differ, against=names["a"],
                               target_name=names["b"])}


def _name(outcome: Outcome) -> str:
    return outcome.site or outcome.spec


def _captured(golden: GoldenBundle, directory: Path) -> Outcome:
    # A folder, or the on-site kit's tar.gz; the kit's record of how its probe's process ended is named here
    # as a host probe's end is (a SIGILL is a SIGILL whichever way the capture came back).
    outcome, golden_sha256 = load_capture_dir(directory, name_exit=_exit_namer)
    if outcome.site is None:  # captured without --site: its folder (or file) names it, so two machines never merge
        resolved = directory.resolve()
        outcome = dataclasses.replace(outcome, site=archive_name(resolved) if resolved.is_file() else resolved.name)
    # A capture that does not name its golden could have run any: it is judged against none (a failure that
    # left no capture.json to name it is an ERROR row already, its own reason kept).
    unnamed = golden_sha256 is None and isinstance(outcome, Capture)
    if unnamed or (golden_sha256 and golden_sha256 != golden.sha256):
        # Everything the capture says is kept (a failed capture's stage, exit code, stderr too).
        kept = {name: getattr(outcome, name) for name in ("exit_code", "stderr_tail", "stage") if hasattr(outcome, name)}
        which = f"with golden {golden_sha256[:12]}, not {golden.sha256[:12]}; compare it with the golden it ran" \
            if golden_sha256 else "without naming its golden (no golden_sha256); probe it again with envcheck probe --out"
        outcome = TargetFailure(spec=outcome.spec, kind="golden-mismatch", site=outcome.site,
                                message=f"{directory} was captured {which}",
                                fingerprint=outcome.fingerprint, target_info=outcome.target_info,
                                timings=outcome.timings, **kept)
    return outcome


def _exit_namer(exit_code: int | None, timed_out: bool, timeout_s: float | None) -> DeathReader:
    """How the targets name a probe process's end (targets/exits.py), for a capture that recorded it."""
    return partial(classify_exit, ChildExit(returncode=exit_code, timed_out=timed_out, timeout_s=timeout_s))


def probe_to_directory(golden: GoldenBundle, target: Target, out: Path, *, timeout: float, site: str | None = None,
                       raw: bool = False, progress: ProgressListener | None = None) -> Outcome:
    """Probe one target and save its capture (or what a failed probe left) in `out`, for `envcheck compare`.

    Unless `raw`, identifying values are hashed or dropped first: the capture is meant to be sent."""
    with tempfile.TemporaryDirectory(prefix="envcheck-probe-") as work:
        if progress:
            progress.started(0, target.spec)
        outcome = dataclasses.replace(run_probe_into(target, golden.path, Path(work), timeout), site=site)
        if not raw:
            fingerprint, target_info = redact_for_sending(outcome.fingerprint, outcome.target_info)
            outcome = dataclasses.replace(outcome, fingerprint=fingerprint, target_info=target_info)
        if progress:
            progress.finished(0, target.spec, outcome)
        save_capture_dir(outcome, Path(work), out, golden.sha256)
    return outcome


def build_report(golden: GoldenBundle, outcomes: Sequence[Outcome], policy: Policy, fail_on: FailOn = "fail",
                 policy_record: dict | None = None, concurrent_probes: int = 1) -> RunReport:
    """Judge every outcome against the golden and decide the run's exit code (`concurrent_probes`: how many
    of them were probed at once)."""
    # A bundle written by envcheck is already redacted; one written elsewhere may not be: redact once here.
    reference = Reference(expected=golden.expected, fingerprint=redact_fingerprint(golden.fingerprint),
                          latency=golden.latency, determinism=golden.determinism,
                          noise=noise_scales(golden.calibration), calibration=golden.calibration,
                          layers=golden.layers,
                          tflite_expected=golden.tflite_expected, image=golden.reference_image)
    results: list[TargetResult] = [evaluate(o, reference, policy, concurrent_probes) for o in outcomes]
    return RunReport(golden_path=str(golden.path), golden_sha256=golden.sha256, targets=tuple(results),
                     exit_code=int(exit_code_for((r.verdict for r in results), fail_on)), fail_on=fail_on,
                     created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), envcheck_version=__version__,
                     policy=policy_record)
