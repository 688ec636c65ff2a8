"""Hints that use the golden's own measurements: where its calibration ran the knob a difference turns, the hint
quotes that measurement instead of the typical range, and several knobs that differ at once are checked once,
together (issue 29).

The unit tests use crafted calibrations and comparisons; the real ones a golden calibrated on this machine,
checked against the oneDNN-off fixture image and against this host with oneDNN off and capped at SSE4.1.
They assert what the hints say, never ULP counts (those vary with the CPU).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import docker_with_images, make_golden_here

from envcheck import fields
from envcheck.check import check_targets, layered_policy
from envcheck.compare.explain import CAUSES, PERTURBATION_FOR, TYPICAL_RANGE, hints_for
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.policy import build_policy
from envcheck.golden import builtin_golden_dir, load_golden
from envcheck.model import FingerprintDifference, OutputComparison, Tolerance
from envcheck.probe.envcheck_probe.calibrate import DESCRIPTIONS
from envcheck.targets import parse_target

GOLDEN = {"env": {}, "cpu": {"tf_flags": ["avx2", "avx512f"]}, "tensorflow": {"version": "2.21.0"}}
ELSEWHERE = "something else differs"


def _differences(**env: str) -> list[FingerprintDifference]:
    return diff_fingerprints(GOLDEN, {**GOLDEN, "env": env}, build_policy())


def _measured(name: str, max_ulp: int, p99_ulp: float | None = None, p99_rel: float = 1e-7) -> OutputComparison:
    return OutputComparison(name=name, status="noise", reason=None, tolerance=Tolerance(), max_ulp=max_ulp,
                            p99_ulp=max_ulp if p99_ulp is None else p99_ulp, p99_rel=p99_rel, max_rel=p99_rel)


def _calibration(**moved: dict[str, int] | str) -> dict[str, Any]:
    """A manifest's calibration whose perturbations moved each output by the given ULP (a string: skipped)."""
    return {"k": 4.0, "perturbations": {
        name.replace("_", "-"): {"skipped": outputs} if isinstance(outputs, str) else
        {"description": DESCRIPTIONS[name.replace("_", "-")], "setting": f"setting of {name}",
         "outputs": {output: {"max_abs": ulp * 1e-9, "max_ulp": ulp} for output, ulp in outputs.items()}}
        for name, outputs in moved.items()}}


ONEDNN_OFF = {"TF_ENABLE_ONEDNN_OPTS": "0"}
ONEDNN_OFF_AND_CAPPED = {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"}
CALIBRATED = _calibration(onednn_off={"embedding": 711, "class_probs": 11}, isa_cap={"embedding": 745, "class_probs": 4})


def test_one_knob_within_its_calibrated_move_quotes_the_calibration():
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("embedding", 207), _measured("class_probs", 3)],
                        CALIBRATED)
    assert "This golden's calibration ran the same knob (onednn-off, setting of onednn_off): it moved embedding by " \
           "up to 711 ULP, class_probs by up to 11 ULP." in hint
    assert "Measured: embedding max 207 ULP: within what this knob alone does (711 ULP)." in hint
    # The typical range gives way to the measurement: the two would contradict each other.
    assert "~15 ULP" not in hint and "expect" not in hint and ELSEWHERE not in hint


def test_one_knob_beyond_its_calibrated_move_says_something_else_differs():
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("embedding", 2000)], CALIBRATED)
    assert "Measured: embedding max 2000 ULP is more than what this knob alone does (711 ULP): something else " \
           "differs too." in hint


def test_each_output_is_held_to_its_own_calibrated_move():
    """A move that is small on embedding's scale is large on class_probs': each output against its own number."""
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("embedding", 207), _measured("class_probs", 300)],
                        CALIBRATED)
    assert "Measured: class_probs max 300 ULP is more than what this knob alone does (11 ULP)" in hint


def test_beyond_the_calibrated_move_only_near_zero_says_so():
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("embedding", 2000, p99_ulp=40)], CALIBRATED)
    assert "only the largest errors exceed it, typically elements near zero" in hint and ELSEWHERE not in hint


@pytest.mark.parametrize("calibration", [
    pytest.param(None, id="not-calibrated"),
    pytest.param(_calibration(onednn_off="not on this CPU", isa_cap={"embedding": 745}), id="perturbation-skipped"),
])
def test_without_a_measurement_of_the_knob_the_typical_range_stands(calibration):
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("embedding", 647, p99_ulp=40)], calibration)
    assert "expect bitwise-different outputs within ~15 ULP" in hint
    assert "embedding max 647 ULP is more than this alone explains (~15 ULP): something else differs too" in hint


def test_an_output_the_calibration_did_not_measure_is_held_to_the_typical_range():
    (hint,) = hints_for(_differences(**ONEDNN_OFF), [_measured("tflite:embedding", 647, p99_ulp=40)],
                        _calibration(onednn_off={"embedding": 711}))
    assert "moved embedding by up to 711 ULP" in hint
    assert "tflite:embedding max 647 ULP is more than what this knob alone does (~15 ULP): something else" in hint


def test_two_calibrated_knobs_are_checked_once_together():
    """oneDNN off and capped: more than either moved alone, within both together; said once, never "something
    else" under each."""
    hints = hints_for(_differences(**ONEDNN_OFF_AND_CAPPED), [_measured("embedding", 900)], CALIBRATED)
    onednn, isa, together = hints
    assert onednn.startswith("env.TF_ENABLE_ONEDNN_OPTS differs") and "moved embedding by up to 711 ULP" in onednn
    assert isa.startswith("env.ONEDNN_MAX_CPU_ISA differs") and "moved embedding by up to 745 ULP" in isa
    assert not any("Measured" in hint for hint in (onednn, isa))
    assert together.startswith("Several of these differ at once (env.TF_ENABLE_ONEDNN_OPTS: calibrated, "
                               "env.ONEDNN_MAX_CPU_ISA: calibrated): together they explain up to the sum")
    assert "Measured: embedding max 900 ULP: within what they do together (711 + 745 = 1456 ULP)." in together
    assert not any(ELSEWHERE in hint for hint in hints)


def test_two_knobs_beyond_their_sum_say_something_else_once():
    hints = hints_for(_differences(**ONEDNN_OFF_AND_CAPPED), [_measured("embedding", 5000)], CALIBRATED)
    assert [hint for hint in hints if ELSEWHERE in hint] == [hints[-1]]
    assert "embedding max 5000 ULP is more than what they do together (711 + 745 = 1456 ULP)" in hints[-1]


def test_typical_ranges_add_up_too():
    """Two knobs the calibration did not run (no calibration at all): their typical ranges add, said once."""
    hints = hints_for(_differences(**ONEDNN_OFF_AND_CAPPED), [_measured("embedding", 20, p99_ulp=20)])
    assert [hint for hint in hints if "Measured" in hint] == [hints[-1]]
    assert "(env.TF_ENABLE_ONEDNN_OPTS: typical, env.ONEDNN_MAX_CPU_ISA: typical)" in hints[-1]
    assert "within what they do together (~15 + ~12 = ~27 ULP)" in hints[-1]


def test_a_calibrated_and_a_typical_knob_add_up_and_say_which_is_which():
    hints = hints_for(_differences(**ONEDNN_OFF_AND_CAPPED), [_measured("embedding", 720)],
                      _calibration(onednn_off={"embedding": 711}, isa_cap="not on this CPU"))
    assert "(env.TF_ENABLE_ONEDNN_OPTS: calibrated, env.ONEDNN_MAX_CPU_ISA: typical)" in hints[-1]
    assert "within what they do together (711 + ~12 = ~723 ULP)" in hints[-1]


def test_a_knob_bounded_in_relative_error_explains_what_ulp_bounds_do_not():
    """oneDNN off (ULP, calibrated) with another TensorFlow release (relative): the ULP bound is exceeded,
    the relative one is not: explained, together."""
    differences = diff_fingerprints(GOLDEN, {**GOLDEN, "env": ONEDNN_OFF, "tensorflow": {"version": "2.20.0"}},
                                    build_policy())
    hints = hints_for(differences, [_measured("embedding", 5000, p99_rel=2e-6)], CALIBRATED)
    assert "within what they do together (~1e-06)" in hints[-1] and not any(ELSEWHERE in hint for hint in hints)


def test_nothing_measured_adds_no_together_line():
    hints = hints_for(_differences(**ONEDNN_OFF_AND_CAPPED), [], CALIBRATED)
    assert len(hints) == 2 and not any("together" in hint for hint in hints)


def test_each_calibrated_knob_names_a_perturbation_the_probe_runs_and_one_typical_range_to_replace():
    for hint, perturbation in PERTURBATION_FOR.items():
        assert perturbation in DESCRIPTIONS
        assert len(TYPICAL_RANGE.findall(hint.text)) == 1, hint.text
    assert {cause.perturbation for cause in CAUSES} - {None} == set(PERTURBATION_FOR.values())
    assert fields.ONEDNN in PERTURBATION_FOR and fields.ONEDNN_ISA in PERTURBATION_FOR


# The real case (issue 29): a golden calibrated here, oneDNN off (and capped) in the target.

def _hints_against(golden_dir: Path, spec: str) -> tuple[str, ...]:
    """The hints a check of `spec` against the golden gives: the golden's calibration reaches them."""
    golden = load_golden(golden_dir)
    policy, record = layered_policy(golden, None)
    (result,) = check_targets(golden, [parse_target(spec)], policy, record, timeout=600).targets
    assert result.error is None, result.error
    assert result.hints == hints_for(result.fingerprint_diff, result.outputs, golden.calibration)
    return result.hints


def _quotes_the_calibration_and_finds_it_explained(hints: tuple[str, ...], *variables: str) -> None:
    for variable in variables:
        hint = next(hint for hint in hints if f"env.{variable} differs" in hint)
        assert "This golden's calibration ran the same knob" in hint, hint
    assert not any(ELSEWHERE in hint for hint in hints), hints
    # Where the outputs moved (oneDNN is on in the golden), the measurement is named and found within.
    assert not any(re.search(r"Measured: .* is more than", hint) for hint in hints), hints


@pytest.mark.slow
@pytest.mark.docker
def test_the_onednn_off_image_is_explained_by_the_golden_calibration(tmp_path_factory, needs_tensorflow):
    """A golden made in the reference image and calibrated there, the oneDNN-off image (the same image with
    TF_ENABLE_ONEDNN_OPTS=0) against it."""
    docker_with_images("envcheck-fixture/reference", "envcheck-fixture/onednn-off").close()
    out = tmp_path_factory.mktemp("golden") / "reference"
    created = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                              str(builtin_golden_dir() / "model"), "--inputs", str(builtin_golden_dir() / "inputs.npz"),
                              "--target", "docker:envcheck-fixture/reference", "--out", str(out)],
                             check=False, capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    hints = _hints_against(out, "docker:envcheck-fixture/onednn-off")
    _quotes_the_calibration_and_finds_it_explained(hints, "TF_ENABLE_ONEDNN_OPTS")


@pytest.mark.slow
def test_onednn_off_and_capped_here_is_explained_together(tmp_path_factory, monkeypatch, needs_tensorflow):
    """The issue's case on this host: a golden made here with oneDNN on (forced, as on CPUs where it is the
    default) and calibrated, checked with oneDNN off and capped at SSE4.1: both knobs quote the calibration and
    the drift is checked once, together."""
    golden = make_golden_here(tmp_path_factory.mktemp("golden") / "here", calibrate=True, TF_ENABLE_ONEDNN_OPTS="1",
                              ONEDNN_MAX_CPU_ISA=None)
    for variable, value in ONEDNN_OFF_AND_CAPPED.items():
        monkeypatch.setenv(variable, value)
    hints = _hints_against(golden, "host")
    _quotes_the_calibration_and_finds_it_explained(hints, *ONEDNN_OFF_AND_CAPPED)
    assert sum("together" in hint for hint in hints) == 1, hints
