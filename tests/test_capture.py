"""How a dead probe is named: the same classification for subprocesses and containers."""
from __future__ import annotations

import json

import pytest

from envcheck.capture import CAPTURE_SCHEMA, ChildExit, classify_exit, read_capture
from envcheck.model import TargetFailure


@pytest.mark.parametrize("returncode, kind, words", [
    pytest.param(-4, "sigill", "illegal instruction", id="sigill-subprocess"),
    pytest.param(132, "sigill", "illegal instruction", id="sigill-container"),
    pytest.param(-6, "sigabrt", "aborted", id="sigabrt-subprocess"),
    pytest.param(134, "sigabrt", "aborted", id="sigabrt-container"),
    pytest.param(-9, "killed", "out of memory", id="killed-subprocess"),
    pytest.param(137, "killed", "out of memory", id="killed-container"),
    pytest.param(-11, "sigsegv", "segmentation fault", id="sigsegv"),
    pytest.param(-15, "signal", "SIGTERM", id="other-signal"),
])
def test_signals_are_named(returncode, kind, words):
    named, message = classify_exit(ChildExit(returncode=returncode), "import-tensorflow", {})
    assert named == kind and words in message and "while import tensorflow" in message


def test_sigill_names_the_missing_instructions_from_the_partial_fingerprint():
    _, message = classify_exit(ChildExit(returncode=132), None, {"cpu": {"missing_required_flags": ["avx"]}})
    assert "this CPU lacks avx" in message


def test_normal_exits_are_not_crashes():
    assert classify_exit(ChildExit(returncode=0), None, {}) is None
    assert classify_exit(ChildExit(returncode=1), None, {}) is None


def test_timeout_wins_over_the_kill_it_caused():
    kind, message = classify_exit(ChildExit(returncode=-9, timed_out=True, timeout_s=5), "run-model", {})
    assert kind == "timeout" and "5 s while run model" in message


def test_partial_capture_survives_a_crash(tmp_path):
    (tmp_path / "capture.json").write_text(json.dumps({
        "schema": CAPTURE_SCHEMA, "status": "running", "stage": "import-tensorflow",
        "fingerprint": {"python": {"version": "3.8.10"}}, "error": None}))
    outcome = read_capture(tmp_path, "python:/old/python", child=ChildExit(returncode=-4, stderr_tail="Illegal"))
    assert isinstance(outcome, TargetFailure) and outcome.kind == "sigill"
    assert outcome.stage == "import-tensorflow" and outcome.fingerprint["python"]["version"] == "3.8.10"
    assert outcome.exit_code == -4 and outcome.stderr_tail == "Illegal"


@pytest.mark.parametrize("content, kind", [
    pytest.param(None, "no-capture", id="nothing-written"),
    pytest.param("{half", "no-capture", id="torn-json"),
    pytest.param(json.dumps({"schema": "other/1"}), "capture-schema", id="foreign-schema"),
    pytest.param(json.dumps({"schema": CAPTURE_SCHEMA, "status": "ok", "stage": "run-model", "fingerprint": {},
                             "error": None}), "no-outputs", id="no-outputs"),
])
def test_unusable_captures(tmp_path, content, kind):
    if content is not None:
        (tmp_path / "capture.json").write_text(content)
    outcome = read_capture(tmp_path, "host", child=ChildExit(returncode=0))
    assert isinstance(outcome, TargetFailure) and outcome.kind == kind
