"""How a dead probe is named (the same for subprocesses and containers), damaged captures, and lossless
save -> load -> save of captures and failures of every kind."""
from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import zipfile

import numpy as np
import pytest

from envcheck import schemas
from envcheck.capture import (
    CAPTURE_SCHEMA,
    NpzError,
    load_capture_dir,
    read_npz,
    save_capture_dir,
)
from envcheck.errors import CaptureError, ExitCode
from envcheck.model import Capture, TargetFailure
from envcheck.targets.exits import ChildExit, classify_exit, read_outcome


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
    outcome = read_outcome(tmp_path, "python:/old/python", ChildExit(returncode=-4, stderr_tail="Illegal"))
    assert isinstance(outcome, TargetFailure) and outcome.kind == "sigill"
    assert outcome.stage == "import-tensorflow" and outcome.fingerprint["python"]["version"] == "3.8.10"
    assert outcome.exit_code == -4 and outcome.stderr_tail == "Illegal"


@pytest.mark.parametrize("content, kind", [
    pytest.param(None, "no-capture", id="nothing-written"),
    pytest.param("{half", "capture-schema", id="torn-json"),
    pytest.param(json.dumps({"schema": "other/1"}), "capture-schema", id="foreign-schema"),
    pytest.param(json.dumps({"schema": CAPTURE_SCHEMA, "status": "ok", "stage": "run-model", "fingerprint": {},
                             "error": None}), "no-outputs", id="no-outputs"),
])
def test_unusable_captures(tmp_path, content, kind):
    if content is not None:
        (tmp_path / "capture.json").write_text(content)
    outcome = read_outcome(tmp_path, "host", ChildExit(returncode=0))
    assert isinstance(outcome, TargetFailure) and outcome.kind == kind


# ------------------------------------------------------------------ damaged and newer captures

def _probe_capture(status="ok", **extra) -> dict:
    """A capture.json as the probe writes it."""
    return {"schema": CAPTURE_SCHEMA, "probe_version": "1", "started": "2026-11-26T11:18:52Z", "status": status,
            "stage": "run-model", "fingerprint": {"python": {"version": "3.11.7"}, "cpu": {"flags": ["avx"]}},
            "timings": {"import_s": 1.5, "load_s": 0.25, "run_s": 0.125, "total_s": 2.0}, "outputs": {},
            "error": None, **extra}


@pytest.mark.parametrize("document, says", [
    pytest.param(dict(_probe_capture(), fingerprint=["not", "a", "table"]), "$.fingerprint: must be an object",
                 id="fingerprint-not-object"),
    pytest.param(dict(_probe_capture(), status="done"), "$.status: must be one of", id="unknown-status"),
    pytest.param(dict(_probe_capture(), timings={"run_s": "fast"}), "$.timings.run_s: must be a number",
                 id="timing-not-number"),
    pytest.param(dict(_probe_capture("error"), error={"message": "no kind"}), "$.error.kind: required",
                 id="error-without-kind"),
    pytest.param(dict(_probe_capture(), schema="envcheck.capture/2"),
                 "written by a newer envcheck (schema envcheck.capture/2; this envcheck reads envcheck.capture/1): "
                 "upgrade envcheck", id="newer-version"),
    pytest.param(["a", "list"], "not a JSON object", id="not-an-object"),
])
def test_a_broken_capture_is_a_failure_naming_the_problem(tmp_path, document, says):
    (tmp_path / "capture.json").write_text(json.dumps(document))
    outcome = read_outcome(tmp_path, "host", ChildExit(returncode=0))
    assert isinstance(outcome, TargetFailure) and outcome.kind == "capture-schema"
    assert says in outcome.message and "capture.json" in outcome.message


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _foreign_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


def _bit_flipped() -> bytes:
    data = bytearray(_npz_bytes(a=np.arange(64, dtype=np.float32)))
    data[120] ^= 0xFF
    return bytes(data)


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


DAMAGED_NPZ = [
    pytest.param(b"", "empty or truncated", id="empty"),
    pytest.param(_npz_bytes(a=np.arange(100))[:150], "not a readable .npz archive", id="truncated"),
    pytest.param(b"not a zip archive", "unpickle", id="text"),
    pytest.param(pickle.dumps({"a": 1}), "unpickle", id="pickle"),
    pytest.param(_npz_bytes(a=np.array([1, "x"], dtype=object)), "object array", id="object-array"),
    pytest.param(_npy(), "not an .npz archive", id="bare-npy"),
    pytest.param(_foreign_zip(), "not a NumPy array", id="foreign-zip"),
    pytest.param(_bit_flipped(), "not a readable .npz archive", id="bit-flipped"),
]


@pytest.mark.parametrize("content, says", DAMAGED_NPZ)
def test_damaged_outputs_are_a_failure_never_a_traceback(tmp_path, content, says):
    (tmp_path / "capture.json").write_text(json.dumps(_probe_capture()))
    (tmp_path / "outputs.npz").write_bytes(content)
    outcome = read_outcome(tmp_path, "host", ChildExit(returncode=0))
    assert isinstance(outcome, TargetFailure) and outcome.kind == "no-outputs"
    assert "outputs.npz" in outcome.message and says in outcome.message


@pytest.mark.parametrize("content, says", DAMAGED_NPZ)
def test_read_npz_raises_only_npz_error(tmp_path, content, says):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(NpzError, match=re.escape(says)):
        read_npz(tmp_path / "x.npz")


def test_a_compared_capture_that_is_not_json_is_a_failed_target(tmp_path):
    (tmp_path / "capture.json").write_text('{"schema": "envcheck.capture/1", "stat')
    outcome, golden_sha256 = load_capture_dir(tmp_path)
    assert isinstance(outcome, TargetFailure) and outcome.kind == "capture-schema"
    assert str(tmp_path / "capture.json") in outcome.message and golden_sha256 is None
    assert outcome.spec == f"capture:{tmp_path.name}"


def test_a_directory_without_capture_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="not a capture directory"):
        load_capture_dir(tmp_path)


# ----------------------------------------------------------- lossless save -> load -> save

GOLDEN_SHA = "ab" * 32
TARGET_INFO = {"kind": "docker", "image_ref": "factory/vision:1.4", "image": {"id": "sha256:" + "1" * 64,
               "tags": ["factory/vision:1.4"]}, "daemon": {"host": "ssh://edge-box-17", "version": "24.0.7"},
               "container_user": "root", "elapsed_s": 3.25}
PARTIAL = {"python": {"version": "3.8.10"}, "cpu": {"flags": ["sse2"], "missing_required_flags": ["avx"]}}

FAILURES = [
    TargetFailure(spec="python:/old/python", kind="sigill", message="illegal instruction (SIGILL) — this CPU lacks "
                  "avx while import tensorflow", exit_code=-4, stderr_tail="Illegal instruction (core dumped)\n",
                  stage="import-tensorflow", fingerprint=PARTIAL, target_info={"kind": "python", "python": "/old"},
                  site="shenzhen-3"),
    TargetFailure(spec="docker:factory/vision:1.4", kind="sigill", message="illegal instruction (container)",
                  exit_code=132, stage="import-tensorflow", fingerprint=PARTIAL, target_info=TARGET_INFO),
    TargetFailure(spec="host", kind="timeout", message="the probe did not finish within 5 s while run model; "
                  "it was killed", exit_code=-9, stderr_tail="", stage="run-model", fingerprint=PARTIAL, site="x"),
    TargetFailure(spec="docker:big", kind="killed", message="the probe was killed (SIGKILL) while load model — "
                  "most likely out of memory", exit_code=137, stage="load-model", target_info=TARGET_INFO),
    TargetFailure(spec="docker:envcheck-fixture/no-tf", kind="tensorflow-not-importable",
                  message="TensorFlow is not importable in /usr/bin/python3: No module named 'tensorflow'",
                  exit_code=1, stage="import-tensorflow", fingerprint=PARTIAL, target_info=TARGET_INFO,
                  site="shenzhen-3"),
    TargetFailure(spec="host", kind="no-capture", message="the probe exited without writing a capture "
                  "(exit status 2)", exit_code=2, stderr_tail="python: can't open file\n"),
    TargetFailure(spec="docker:envcheck-fixture/missing", kind="image-not-found",
                  message="image envcheck-fixture/missing is not on the daemon (envcheck never pulls unless --pull)",
                  target_info={"image_ref": "envcheck-fixture/missing"}, site="shenzhen-3"),
    TargetFailure(spec="docker:x", kind="daemon-unreachable", message="cannot reach the Docker daemon at "
                  "ssh://edge-box-17", target_info={"daemon": {"host": "ssh://edge-box-17"}}),
    TargetFailure(spec="python:/nowhere/python", kind="interpreter-not-found", message="/nowhere/python: no such "
                  "interpreter", target_info={"kind": "python", "python": "/nowhere/python"}),
    TargetFailure(spec="host", kind="model-run", message="running serving_default failed: InvalidArgumentError",
                  exit_code=1, stderr_tail="2026-11-26 W tensorflow ...\n", stage="run-model", fingerprint=PARTIAL),
    TargetFailure(spec="host", kind="probe-internal", message="KeyError: 'x'", exit_code=1,
                  stderr_tail="Traceback (most recent call last):\n  ...\nKeyError: 'x'\n", stage="load-model"),
    TargetFailure(spec="host", kind="sigabrt", message="TensorFlow aborted (SIGABRT)", exit_code=-6,
                  stderr_tail="F tensorflow/core/...: check failed\n", stage="import-tensorflow", fingerprint=PARTIAL),
    TargetFailure(spec="host", kind="capture-schema", message="capture.json: $.fingerprint: must be an object",
                  exit_code=0),
    TargetFailure(spec="host", kind="incomplete-capture", message="the probe stopped during load-model without "
                  "saying why", exit_code=0, stage="load-model", fingerprint=PARTIAL),
    TargetFailure(spec="host", kind="no-outputs", message="outputs.npz is missing or unreadable: empty",
                  exit_code=0, stage="run-model", fingerprint=PARTIAL, site="line-7"),
    TargetFailure(spec="docker:x", kind="container-start", message="the container did not start: exec format error",
                  exit_code=None, stderr_tail="exec /usr/bin/python3: exec format error", target_info=TARGET_INFO),
]


def _round_trip(outcome, source, tmp_path):
    """save -> load -> save; returns the loaded outcome and both capture.json texts."""
    first, second = tmp_path / "first", tmp_path / "second"
    save_capture_dir(outcome, source, first, GOLDEN_SHA)
    loaded, golden_sha256 = load_capture_dir(first)
    assert golden_sha256 == GOLDEN_SHA
    save_capture_dir(loaded, first, second, GOLDEN_SHA)
    return loaded, (first / "capture.json").read_bytes(), (second / "capture.json").read_bytes()


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f"{f.kind}-{f.spec.split(':')[0]}")
def test_failed_capture_round_trips_losslessly(tmp_path, failure):
    source = tmp_path / "probe"
    source.mkdir()
    loaded, first, second = _round_trip(failure, source, tmp_path)
    assert loaded == failure
    assert first == second
    assert schemas.problems(CAPTURE_SCHEMA, json.loads(first)) == []


def test_failure_read_from_a_crashed_probe_round_trips_with_its_traceback(tmp_path):
    """The on-site path: a probe that failed, read as `check` reads it, then saved and compared."""
    source = tmp_path / "probe"
    source.mkdir()
    (source / "capture.json").write_text(json.dumps(_probe_capture(
        "error", stage="load-model", error={"kind": "probe-internal", "message": "KeyError: 'x'",
                                           "traceback": "Traceback (most recent call last):\nKeyError: 'x'\n"})))
    read = read_outcome(source, "python:/opt/venv/bin/python", ChildExit(returncode=1, stderr_tail="warn\n"),
                        target_info={"kind": "python", "python": "/opt/venv/bin/python"})
    on_site = dataclasses.replace(read, site="shenzhen-3")
    assert on_site.kind == "probe-internal" and on_site.exit_code == 1 and on_site.stage == "load-model"
    loaded, first, second = _round_trip(on_site, source, tmp_path)
    assert loaded == on_site and first == second
    saved = json.loads(first)
    assert saved["error"]["traceback"].startswith("Traceback") and saved["probe_version"] == "1"
    assert saved["timings"] == _probe_capture()["timings"]  # kept, though a TargetFailure has no timings


def test_sigill_with_a_partial_capture_round_trips(tmp_path):
    source = tmp_path / "probe"
    source.mkdir()
    (source / "capture.json").write_text(json.dumps(_probe_capture("running", stage="import-tensorflow",
                                                                   fingerprint=PARTIAL)))
    read = read_outcome(source, "host", ChildExit(returncode=-4, stderr_tail="Illegal instruction\n"),
                        target_info={"kind": "python"}, site="xian-4")
    assert read.kind == "sigill" and "this CPU lacks avx" in read.message
    loaded, first, second = _round_trip(read, source, tmp_path)
    assert loaded == read and first == second


def _assert_same_capture(one: Capture, two: Capture) -> None:
    for name in ("spec", "fingerprint", "timings", "target_info", "site", "latency"):
        assert getattr(one, name) == getattr(two, name), name
    assert sorted(one.outputs) == sorted(two.outputs)
    for name, array in one.outputs.items():
        assert two.outputs[name].dtype == array.dtype
        np.testing.assert_array_equal(two.outputs[name], array)


@pytest.mark.parametrize("with_probe_files", [True, False], ids=["from-probe-dir", "from-memory"])
def test_successful_capture_round_trips_losslessly(tmp_path, with_probe_files):
    outputs = {"class_probs": np.full((4, 10), 0.1, dtype=np.float32),
               "embedding": np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)}
    source = tmp_path / "probe"
    source.mkdir()
    if with_probe_files:
        (source / "capture.json").write_text(json.dumps(_probe_capture()))
        (source / "outputs.npz").write_bytes(_npz_bytes(**outputs))
    capture = Capture(spec="docker:factory/vision:1.4", fingerprint=_probe_capture()["fingerprint"], outputs=outputs,
                      timings=_probe_capture()["timings"], target_info=TARGET_INFO, site="shenzhen-3")
    loaded, first, second = _round_trip(capture, source, tmp_path)
    assert isinstance(loaded, Capture)
    _assert_same_capture(loaded, capture)
    assert first == second
    assert (tmp_path / "first" / "outputs.npz").read_bytes() == (tmp_path / "second" / "outputs.npz").read_bytes()
    saved = json.loads(first)
    assert saved["status"] == "ok" and saved["error"] is None
    assert saved["outputs"]["embedding"] == {"shape": [4, 8], "dtype": "float32"}
    assert schemas.problems(CAPTURE_SCHEMA, saved) == []


def test_compare_of_a_failed_capture_says_what_check_said(tmp_path, run_cli):
    """`envcheck compare` of a failed on-site capture reports the same error as `check` would have."""
    from envcheck.golden import load_golden

    failure = FAILURES[0]
    save_capture_dir(failure, tmp_path / "empty", tmp_path / "capture", load_golden().sha256)
    code, _, _, report = run_cli("compare", str(tmp_path / "capture"))
    (target,) = report["targets"]
    assert code == ExitCode.UNDECIDED and target["verdict"] == "ERROR" and target["site"] == failure.site
    assert target["spec"] == failure.spec
    assert target["error"] == {"kind": failure.kind, "message": failure.message, "exit_code": failure.exit_code,
                               "stage": failure.stage, "stderr_tail": failure.stderr_tail}


LATENCY = {"budget_s": 2.0, "batch": 1, "cold_first_call_s": 0.003234733, "warmup_calls": 20, "calls": 766,
           "p50_s": 0.002370433, "p90_s": 0.003509598, "p99_s": 0.005870323, "mad_s": 0.0003132975000000003,
           "min_s": 0.001453525, "max_s": 0.011129871, "block_p50_s": [0.002274734, 0.002124021, 0.002489436],
           "throughput_per_s": 4232.556613809904, "golden_batch": 28,
           "histogram": [["1\u20131.5 ms", 126], ["1.5\u20132 ms", 634], ["\u2265 6.5 ms", 6]],
           "context": {"visible_cpus": 2, "cpu_quota_cpus": 0.5, "intra_op_threads": 0, "inter_op_threads": 0,
                       "loadavg_1m": 1.938, "steal_fraction": 0.012}}


@pytest.mark.parametrize("latency", [LATENCY, {"skipped": "disabled (--latency-budget 0)", "budget_s": 0.0}, None],
                         ids=["measured", "skipped", "none"])
@pytest.mark.parametrize("with_probe_files", [True, False], ids=["from-probe-dir", "from-memory"])
def test_latency_round_trips_losslessly(tmp_path, latency, with_probe_files):
    """The probe's latency record is read into the Capture, saved and read back exactly (floats included)."""
    outputs = {"class_probs": np.full((4, 10), 0.1, dtype=np.float32)}
    source = tmp_path / "probe"
    source.mkdir()
    document = _probe_capture(stage="measure-latency", **({} if latency is None else {"latency": latency}))
    (source / "capture.json").write_text(json.dumps(document))
    (source / "outputs.npz").write_bytes(_npz_bytes(**outputs))
    read = read_outcome(source, "host", ChildExit(returncode=0), target_info={"kind": "interpreter"})
    assert isinstance(read, Capture) and read.latency == latency
    if not with_probe_files:
        (source / "capture.json").unlink()
        (source / "outputs.npz").unlink()
    loaded, first, second = _round_trip(read, source, tmp_path)
    assert isinstance(loaded, Capture)
    _assert_same_capture(loaded, read)
    assert first == second
    saved = json.loads(first)
    assert saved.get("latency") == latency
    assert schemas.problems(CAPTURE_SCHEMA, saved) == []
