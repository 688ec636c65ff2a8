"""End to end on host interpreters, with real TensorFlow on the real built-in SavedModel.

Numeric assertions are properties ("not bitwise equal, within the noise band"), never ULP counts.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import (NO_TF_PYTHON, TF_OLDER_PYTHON, alive, hanging_interpreter, kill_quietly, make_golden_here, require,
                     spawn_envcheck, wait_for_pid)
from envcheck.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_tensorflow")]


def _target(report, index=0):
    return report["targets"][index]


def test_same_environment_twice_is_identical(run_cli, host_golden):
    code, out, _, report = run_cli("check", "--golden", str(host_golden), "--target", "host", "--target", "host",
                                   "--jobs", "2")
    assert code == ExitCode.OK
    assert [t["verdict"] for t in report["targets"]] == ["IDENTICAL", "IDENTICAL"]
    assert report["targets"][0]["output_digest"] == report["targets"][1]["output_digest"]
    assert "IDENTICAL" in out
    # Two probes at once compete for this machine's CPUs: their latency is shown, not judged.
    assert {t["latency"]["status"] for t in report["targets"]} == {"not-comparable"}


def test_same_environment_checked_repeatedly_never_flags_latency(run_cli, host_golden):
    reference = json.loads((host_golden / "manifest.json").read_text())["latency"]
    assert reference["p50_s"] > 0 and reference["hardware_class"]["kind"] == "cpu"
    for _ in range(3):
        code, _, _, report = run_cli("check", "--golden", str(host_golden))
        target = _target(report)
        assert (code, target["verdict"]) == (ExitCode.OK, "IDENTICAL"), target["latency"]
        assert target["latency"]["status"] == "ok" and 0 < target["latency"]["ratio_p50"] < 1.75, target["latency"]


def test_latency_on_another_hardware_class_is_shown_not_judged(run_cli, host_golden, tmp_path):
    golden = tmp_path / "golden"
    shutil.copytree(host_golden, golden)
    manifest = json.loads((golden / "manifest.json").read_text())
    manifest["latency"]["hardware_class"] = {"kind": "cpu", "model": "Some Other CPU", "isa": "AVX-512"}
    manifest["latency"]["p50_s"] /= 100  # a hundred times faster: would fail if it were compared
    (golden / "manifest.json").write_text(json.dumps(manifest))
    code, out, _, report = run_cli("check", "--golden", str(golden))
    latency = _target(report)["latency"]
    assert (code, _target(report)["verdict"], latency["status"]) == (ExitCode.OK, "IDENTICAL", "not-comparable")
    assert "not comparable (golden: CPU Some Other CPU (AVX-512), target: CPU " in latency["message"]


def test_onednn_off_against_onednn_on_golden_warns_and_names_the_variable(run_cli, golden_onednn_on, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    code, out, _, report = run_cli("check", "--golden", str(golden_onednn_on))
    target = _target(report)
    assert code == ExitCode.OK and target["verdict"] == "WARN"
    for output in target["outputs"].values():
        assert output["status"] == "noise"  # bitwise different, within the band
        assert output["changed_fraction"] > 0 and output["max_abs"] > 0
    diff = {d["path"]: d for d in target["fingerprint_diff"]}
    assert diff["env.TF_ENABLE_ONEDNN_OPTS"]["golden"] == "1"
    assert diff["env.TF_ENABLE_ONEDNN_OPTS"]["target"] == "0"
    assert diff["env.TF_ENABLE_ONEDNN_OPTS"]["severity"] == "warn"
    assert any("TF_ENABLE_ONEDNN_OPTS" in hint for hint in target["hints"])
    assert "TF_ENABLE_ONEDNN_OPTS" in out

    code, *_ = run_cli("check", "--golden", str(golden_onednn_on), "--fail-on", "warn")
    assert code == ExitCode.DRIFT


@pytest.fixture(scope="module")
def golden_onednn_on_uncapped(tmp_path_factory, needs_tensorflow) -> Path:
    """The built-in model as a golden made here with oneDNN forced on and no ISA cap, whatever this shell set."""
    return make_golden_here(tmp_path_factory.mktemp("golden") / "uncapped", TF_ENABLE_ONEDNN_OPTS="1",
                            ONEDNN_MAX_CPU_ISA=None)


def test_isa_cap_is_detected_and_explained(run_cli, monkeypatch, golden_onednn_on_uncapped):
    """A cap is a WARN on any CPU: named in the fingerprint and the hints, its numeric effect within the noise
    band. Where it changes kernels is known from the CPU: oneDNN (forced on here, as it is by default on CPUs
    with AVX-512 VNNI/BF16, AVX-VNNI or AMX) picks AVX-512 kernels for float32 wherever the CPU has AVX-512,
    so there the cap moves outputs; on a CPU without AVX-512 or AVX-VNNI it is a no-op and outputs stay bitwise."""
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    code, _, _, report = run_cli("check", "--golden", str(golden_onednn_on_uncapped))
    target = _target(report)
    assert (code, target["verdict"]) == (ExitCode.OK, "WARN"), target
    assert any(d["path"] == "env.ONEDNN_MAX_CPU_ISA" and d["target"] == "AVX2" for d in target["fingerprint_diff"])
    assert any("ONEDNN_MAX_CPU_ISA" in hint and "instruction set" in hint for hint in target["hints"])
    statuses = {o["status"] for o in target["outputs"].values()}
    assert statuses <= {"identical", "noise"}, target["outputs"]
    flags = set(target["fingerprint"]["cpu"]["tf_flags"])
    if "avx512f" in flags:
        assert "noise" in statuses, "capping an AVX-512 CPU at AVX2 changed no output"
    elif "avx_vnni" not in flags:  # AVX-VNNI alone: whether fp32 kernels change is oneDNN's business
        assert statuses == {"identical"}, "capping a CPU without AVX-512 at AVX2 changed outputs"


def test_other_interpreter_with_older_tensorflow_fails_on_fingerprint(run_cli):
    require(TF_OLDER_PYTHON.exists(), f"an interpreter with an older TensorFlow at {TF_OLDER_PYTHON}")
    code, _, _, report = run_cli("check", "--target", f"python:{TF_OLDER_PYTHON}")
    target = _target(report)
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    version = next(d for d in target["fingerprint_diff"] if d["path"] == "tensorflow.version")
    assert version["severity"] == "fail" and version["golden"] != version["target"]
    assert any("TensorFlow build differs" in hint for hint in target["hints"])


def test_interpreter_without_tensorflow_is_an_error(run_cli, host_golden):
    require(NO_TF_PYTHON.exists(), f"an interpreter without TensorFlow at {NO_TF_PYTHON}")
    code, out, _, report = run_cli("check", "--golden", str(host_golden), "--target", f"python:{NO_TF_PYTHON}",
                                   "--target", "host")
    failed, healthy = report["targets"]
    assert code == ExitCode.UNDECIDED
    assert failed["verdict"] == "ERROR" and failed["error"]["kind"] == "tensorflow-not-importable"
    assert "TensorFlow is not importable" in failed["error"]["message"]
    assert failed["fingerprint"]["python"]["version"]  # the partial fingerprint survives
    assert healthy["verdict"] == "IDENTICAL"  # one failing target never stops the others


@pytest.fixture(scope="module")
def sigill_interpreter(tmp_path_factory) -> Path:
    """A real binary that executes an illegal instruction (ud2), like TF's import on a CPU without AVX."""
    require(shutil.which("gcc") is not None, "gcc")
    directory = tmp_path_factory.mktemp("sigill")
    source = directory / "trap.c"
    source.write_text("int main(void) { __builtin_trap(); return 0; }\n")
    subprocess.run(["gcc", "-O0", "-o", str(directory / "python"), str(source)], check=True)
    return directory / "python"


def test_child_killed_by_sigill_is_explained(run_cli, sigill_interpreter):
    code, out, _, report = run_cli("check", "--target", f"python:{sigill_interpreter}")
    error = _target(report)["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "sigill" and error["exit_code"] == -4
    assert "illegal instruction" in error["message"] and "lacks instructions" in error["message"]


def test_hung_child_times_out_and_is_killed(run_cli, tmp_path):
    hang, pid_file = hanging_interpreter(tmp_path, seconds=600)
    try:
        code, _, _, report = run_cli("check", "--target", f"python:{hang}", "--timeout", "2")
        error = _target(report)["error"]
        assert code == ExitCode.UNDECIDED and error["kind"] == "timeout" and "2 s" in error["message"]
        pid = wait_for_pid(pid_file, 1)
        assert pid is not None and not alive(pid)
    finally:
        kill_quietly(wait_for_pid(pid_file, 0))


def test_missing_interpreter_is_an_error(run_cli, tmp_path):
    code, _, _, report = run_cli("check", "--target", f"python:{tmp_path / 'no-such-python'}")
    assert code == ExitCode.UNDECIDED and _target(report)["error"]["kind"] == "interpreter-not-found"


def test_secret_environment_values_never_reach_capture_or_report(run_cli, monkeypatch, tmp_path, host_golden):
    monkeypatch.setenv("MY_API_TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("TF_SERVING_API_KEY", "s3cr3t-key-value")  # allowed prefix, secret name
    monkeypatch.setenv("TF_TEST_KNOB", "visible")
    code, out, err, report = run_cli("check", "--golden", str(host_golden))
    capture_dir = tmp_path / "capture"
    probe_code, *_ = run_cli("probe", "--golden", str(host_golden), "--out", str(capture_dir))
    texts = [out, err, (capture_dir / "capture.json").read_text()]
    texts += [p.read_text() for p in (tmp_path / "kept").glob("*.json")]
    assert code == ExitCode.OK and probe_code == ExitCode.OK
    assert report["targets"][0]["fingerprint"]["env"]["TF_TEST_KNOB"] == "visible"
    for text in texts:
        assert "s3cr3t" not in text and "TF_SERVING_API_KEY" not in text and "MY_API_TOKEN" not in text


def test_capture_to_send_back_is_redacted_unless_raw(run_cli, tmp_path, host_golden):
    """The technician's capture leaves the site: hostname, interpreter path and pid hashed or dropped;
    --raw keeps them for local diagnosis. The printed next step is the exact command to run."""
    import socket
    _, _, _, report = run_cli("check", "--golden", str(host_golden))
    assert report["targets"][0]["fingerprint"]["host"]["hostname"].startswith("sha256:")
    code, out, _, _ = run_cli("probe", "--golden", str(host_golden), "--out", str(tmp_path / "capture"))
    text = (tmp_path / "capture" / "capture.json").read_text()
    document = json.loads(text)
    assert code == ExitCode.OK and sys.executable not in text
    assert document["fingerprint"]["host"]["hostname"].startswith("sha256:")
    assert "pid" not in document["fingerprint"]["host"]
    assert f"envcheck compare {tmp_path / 'capture'} --golden {host_golden}" in out
    code, *_ = run_cli("compare", str(tmp_path / "capture"), "--golden", str(host_golden))
    assert code == ExitCode.OK
    run_cli("probe", "--golden", str(host_golden), "--raw", "--out", str(tmp_path / "raw"))
    raw = json.loads((tmp_path / "raw" / "capture.json").read_text())
    assert raw["fingerprint"]["host"]["hostname"] == socket.gethostname() and raw["fingerprint"]["host"]["pid"]


def test_library_chatter_on_stdout_cannot_corrupt_the_capture(run_cli, tmp_path, monkeypatch, host_golden):
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    (noisy / "sitecustomize.py").write_text("import sys\nprint('{garbage on stdout')\nsys.stderr.write('noise\\n')\n")
    monkeypatch.setenv("PYTHONPATH", str(noisy))
    code, _, _, report = run_cli("check", "--golden", str(host_golden))
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"


def _capture(run_cli, tmp_path, golden: Path) -> Path:
    capture_dir = tmp_path / "capture"
    code, *_ = run_cli("probe", "--golden", str(golden), "--site", "line-7", "--out", str(capture_dir))
    assert code == ExitCode.OK
    return capture_dir


def test_probe_then_compare_round_trip(run_cli, tmp_path, host_golden):
    code, out, _, report = run_cli("compare", str(_capture(run_cli, tmp_path, host_golden)), "--golden",
                                   str(host_golden))
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"
    assert report["targets"][0]["site"] == "line-7"


@pytest.mark.parametrize("edit, reason", [
    pytest.param(lambda o: o.__setitem__("embedding", np.where(np.arange(o["embedding"].size).reshape(
        o["embedding"].shape) == 3, np.nan, o["embedding"]).astype(np.float32)), "NaN", id="nan"),
    pytest.param(lambda o: o.__setitem__("embedding", o["embedding"][:, :4]), "shape changed", id="shape"),
    pytest.param(lambda o: o.__setitem__("class_probs", o["class_probs"].astype(np.float64)), "dtype changed",
                 id="dtype"),
])
def test_broken_outputs_fail_with_the_reason(run_cli, tmp_path, edit, reason, host_golden):
    capture_dir = _capture(run_cli, tmp_path, host_golden)
    with np.load(capture_dir / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    edit(outputs)
    np.savez(capture_dir / "outputs.npz", **outputs)
    code, out, _, report = run_cli("compare", str(capture_dir), "--golden", str(host_golden))
    target = _target(report)
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    assert any(reason in (o["reason"] or "") for o in target["outputs"].values())
    assert reason in out


def test_capture_from_another_golden_is_refused(run_cli, tmp_path, golden_onednn_on, host_golden):
    code, _, _, report = run_cli("compare", str(_capture(run_cli, tmp_path, host_golden)), "--golden",
                                 str(golden_onednn_on))
    assert code == ExitCode.UNDECIDED and _target(report)["error"]["kind"] == "golden-mismatch"


def test_usage_errors_exit_2(run_cli, capsys):
    with pytest.raises(SystemExit) as caught:
        run_cli("check", "--jobs", "0")
    assert caught.value.code == ExitCode.USAGE
    code, _, err, _ = run_cli("check", "--target", "ftp:somewhere")
    assert code == ExitCode.USAGE and "unknown target" in err


def test_golden_create_from_savedmodel_generates_inputs_and_refuses_overwrite(run_cli, tmp_path):
    from envcheck.golden import builtin_golden_dir, load_golden
    out = tmp_path / "mine"
    code, *_ = run_cli("golden", "create", "--model", str(builtin_golden_dir() / "model"), "--out", str(out),
                       "--no-calibrate")
    assert code == ExitCode.OK
    golden = load_golden(out)
    with np.load(out / "inputs.npz") as inputs:
        assert inputs["image"].shape[1:] == (16, 16, 3) and inputs["image"].dtype == np.float32
    assert golden.expected["class_probs"].shape[0] == 16
    code, _, err, _ = run_cli("golden", "create", "--model", str(builtin_golden_dir() / "model"), "--out", str(out))
    assert code == ExitCode.USAGE and "--force" in err


@pytest.fixture(scope="module")
def builtin_made_here(tmp_path_factory, needs_tensorflow) -> Path:
    """`golden create --builtin` on the machine under test: the built-in golden as this CPU and TF compute it."""
    return _create_builtin(tmp_path_factory.mktemp("builtin") / "default")[0]


@pytest.fixture(scope="module")
def edge_made_here(tmp_path_factory, needs_tensorflow) -> Path:
    """`golden create --builtin --edge` on the machine under test, with its model converted to TFLite."""
    golden, printed = _create_builtin(tmp_path_factory.mktemp("builtin") / "edge", "--edge")
    assert "tflite: model.tflite (schema 3" in printed
    return golden


def _create_builtin(out: Path, *options: str) -> tuple[Path, str]:
    """(the golden, what `golden create --builtin OPTIONS` printed)."""
    result = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--builtin", *options, "--out",
                             str(out), "--no-calibrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout


def test_console_entry_point_checks_this_host_against_the_builtin_golden(tmp_path, builtin_made_here):
    """The README's main job through the console entry point: the built-in golden (made here, so the answer does
    not depend on which CPU or TensorFlow made the committed one) checked on this host is IDENTICAL, exit 0."""
    result = subprocess.run([sys.executable, "-m", "envcheck", "check", "--golden", str(builtin_made_here),
                             "--reports-dir", str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    (report_file,) = tmp_path.glob("envcheck-*.json")
    target = json.loads(report_file.read_text())["targets"][0]
    assert target["verdict"] == "IDENTICAL" and "IDENTICAL" in result.stdout
    assert {o["status"] for o in target["outputs"].values()} == {"identical"}


TGKILL = {"x86_64": 234, "aarch64": 131}  # the syscall's number per architecture (asm/unistd.h)


def test_a_signal_delivered_to_a_worker_thread_still_stops_the_run(tmp_path):
    """The kernel may hand a process's SIGTERM to any thread: one that lands on the thread waiting for a
    probe must stop the run as promptly as one that lands on the main thread."""
    import ctypes
    import platform
    require(platform.machine() in TGKILL, f"the tgkill syscall number for {platform.machine()}")
    hang, pid_file = hanging_interpreter(tmp_path)
    child = spawn_envcheck("check", "--target", f"python:{hang}", "--timeout", "120", "--no-reports")
    probe_pid = None
    try:
        probe_pid = wait_for_pid(pid_file, 60)
        assert probe_pid is not None, "the hung probe never started"
        threads = [int(t) for t in os.listdir(f"/proc/{child.pid}/task") if int(t) != child.pid]
        assert threads, "envcheck runs its probes in worker threads"
        libc = ctypes.CDLL(None, use_errno=True)
        for thread in threads:
            libc.syscall(TGKILL[platform.machine()], child.pid, thread, signal.SIGTERM)
        _, err = child.communicate(timeout=20)
        assert child.returncode == 143 and "interrupted" in err, err
        assert not alive(probe_pid)
    finally:
        kill_quietly(child.pid, probe_pid)


def test_model_tensorflow_cannot_load_is_a_plain_error(run_cli, tmp_path):
    from envcheck.golden import builtin_golden_dir
    model = tmp_path / "model"
    shutil.copytree(builtin_golden_dir() / "model", model)
    (model / "saved_model.pb").write_bytes(b"\x08\x01garbage that is no SavedModel proto")
    code, _, err, _ = run_cli("golden", "create", "--model", str(model), "--inputs",
                              str(builtin_golden_dir() / "inputs.npz"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.UNDECIDED and "cannot load the golden model" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()  # nothing half-written


def _outputs_here(run_cli, tmp_path, golden: str | Path) -> tuple[dict, dict]:
    """(SavedModel outputs, TFLite outputs or {}) of `golden`'s own model files run on this host."""
    capture_dir = tmp_path / "committed-here"
    code, _, err, _ = run_cli("probe", "--golden", str(golden), "--out", str(capture_dir))
    assert code == ExitCode.OK, err
    return _arrays(capture_dir / "outputs.npz"), _arrays(capture_dir / "tflite-outputs.npz")


def _arrays(npz: Path) -> dict:
    """Every array of an .npz file by name ({} when there is no such file)."""
    if not npz.exists():
        return {}
    with np.load(npz) as data:
        return {key: data[key] for key in data.files}


def _assert_bitwise(old: dict, new: dict) -> None:
    assert sorted(old) == sorted(new)
    for name in old:
        assert (old[name].dtype, old[name].shape) == (new[name].dtype, new[name].shape), name
        assert old[name].tobytes() == new[name].tobytes(), f"{name} differs: the code no longer makes this bundle"


def test_builtin_golden_rebuilds_from_code_with_the_same_inputs_and_outputs(run_cli, tmp_path, builtin_made_here):
    """Nobody depends on a binary blob: the committed bundle is what the code makes. Inputs bit for bit (seeded
    NumPy); the committed model and the model the code makes, both run here, give bit for bit the same outputs
    (the same weights), whichever CPU made the committed expected.npz."""
    from envcheck.golden import builtin_golden_dir, load_golden
    rebuilt, committed = load_golden(builtin_made_here), load_golden(builtin_golden_dir())
    _assert_bitwise(_arrays(builtin_golden_dir() / "inputs.npz"), _arrays(builtin_made_here / "inputs.npz"))
    committed_here, _ = _outputs_here(run_cli, tmp_path, builtin_golden_dir())
    assert sorted(committed.expected) == ["class_probs", "embedding"]
    _assert_bitwise(committed_here, rebuilt.expected)
    assert rebuilt.manifest["policy"] == committed.manifest["policy"]


def test_the_builtin_edge_golden_rebuilds_from_code_with_its_tflite_model(run_cli, tmp_path, edge_made_here):
    """golden/edge too is what the code makes: `golden create --builtin --edge` (the image branch alone, converted
    to TFLite); its inputs bit for bit, and run here, its SavedModel's outputs bit for bit the committed
    SavedModel's. The committed model.tflite run here is within the noise band of the one converted here, never
    more: the converter computes folded constants (batch normalisation into the convolutions) on the machine
    that converts, so the two files differ in the last bits even from the same TensorFlow."""
    from envcheck.compare.outputs import compare_outputs
    from envcheck.compare.policy import build_policy
    from envcheck.golden import load_golden
    rebuilt, committed = load_golden(edge_made_here), load_golden("builtin:edge")
    committed_inputs = _arrays(committed.path / "inputs.npz")
    assert sorted(committed_inputs) == ["image"]
    _assert_bitwise(committed_inputs, _arrays(rebuilt.path / "inputs.npz"))
    savedmodel_here, tflite_here = _outputs_here(run_cli, tmp_path, committed.path)
    _assert_bitwise(savedmodel_here, rebuilt.expected)
    assert rebuilt.tflite_expected is not None and sorted(tflite_here) == sorted(rebuilt.tflite_expected)
    comparisons = compare_outputs(tflite_here, rebuilt.tflite_expected, build_policy(committed.policy))
    assert all(c.status in ("identical", "noise") for c in comparisons), comparisons
