"""End to end on host interpreters, with real TensorFlow on the real built-in SavedModel.

Numeric assertions are properties ("not bitwise equal, within the noise band"), never ULP counts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import NO_TF_PYTHON, TF_OLDER_PYTHON, require
from envcheck.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_tensorflow")]


def _target(report, index=0):
    return report["targets"][index]


def test_same_environment_twice_is_identical(run_cli):
    code, out, _, report = run_cli("check", "--target", "host", "--target", "host", "--jobs", "2")
    assert code == ExitCode.OK
    assert [t["verdict"] for t in report["targets"]] == ["IDENTICAL", "IDENTICAL"]
    assert report["targets"][0]["output_digest"] == report["targets"][1]["output_digest"]
    assert "IDENTICAL" in out


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


def test_isa_cap_is_detected_and_explained(run_cli, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    code, _, _, report = run_cli("check")
    target = _target(report)
    assert target["verdict"] in ("WARN", "FAIL") and code in (ExitCode.OK, ExitCode.DRIFT)
    assert any(d["path"] == "env.ONEDNN_MAX_CPU_ISA" and d["target"] == "AVX2" for d in target["fingerprint_diff"])
    assert any("ONEDNN_MAX_CPU_ISA" in hint and "instruction set" in hint for hint in target["hints"])
    # On a CPU beyond AVX2 the cap changes kernels; on an AVX2-only CPU it cannot.
    flags = set(target["fingerprint"]["cpu"]["tf_flags"])
    if flags & {"avx512f", "amx_tile", "avx_vnni"}:
        assert any(o["status"] != "identical" for o in target["outputs"].values())


def test_other_interpreter_with_older_tensorflow_fails_on_fingerprint(run_cli):
    require(TF_OLDER_PYTHON.exists(), f"an interpreter with an older TensorFlow at {TF_OLDER_PYTHON}")
    code, _, _, report = run_cli("check", "--target", f"python:{TF_OLDER_PYTHON}")
    target = _target(report)
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    version = next(d for d in target["fingerprint_diff"] if d["path"] == "tensorflow.version")
    assert version["severity"] == "fail" and version["golden"] != version["target"]
    assert any("TensorFlow build differs" in hint for hint in target["hints"])


def test_interpreter_without_tensorflow_is_an_error(run_cli):
    require(NO_TF_PYTHON.exists(), f"an interpreter without TensorFlow at {NO_TF_PYTHON}")
    code, out, _, report = run_cli("check", "--target", f"python:{NO_TF_PYTHON}", "--target", "host")
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
    hang = tmp_path / "python"
    hang.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import time; time.sleep(600)'\n")
    hang.chmod(0o755)
    code, _, _, report = run_cli("check", "--target", f"python:{hang}", "--timeout", "2")
    error = _target(report)["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "timeout" and "2 s" in error["message"]
    leftover = subprocess.run(["pgrep", "-f", "time.sleep\\(600\\)"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""


def test_missing_interpreter_is_an_error(run_cli, tmp_path):
    code, _, _, report = run_cli("check", "--target", f"python:{tmp_path / 'no-such-python'}")
    assert code == ExitCode.UNDECIDED and _target(report)["error"]["kind"] == "interpreter-not-found"


def test_secret_environment_values_never_reach_capture_or_report(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("MY_API_TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("TF_SERVING_API_KEY", "s3cr3t-key-value")  # allowed prefix, secret name
    monkeypatch.setenv("TF_TEST_KNOB", "visible")
    code, out, err, report = run_cli("check")
    capture_dir = tmp_path / "capture"
    probe_code, *_ = run_cli("probe", "--out", str(capture_dir))
    texts = [out, err, (capture_dir / "capture.json").read_text()]
    texts += [p.read_text() for p in (tmp_path / "kept").glob("*.json")]
    assert code == ExitCode.OK and probe_code == ExitCode.OK
    assert report["targets"][0]["fingerprint"]["env"]["TF_TEST_KNOB"] == "visible"
    for text in texts:
        assert "s3cr3t" not in text and "TF_SERVING_API_KEY" not in text and "MY_API_TOKEN" not in text


def test_hostname_is_hashed_in_reports_but_kept_in_local_capture(run_cli, tmp_path):
    import socket
    _, _, _, report = run_cli("check")
    assert report["targets"][0]["fingerprint"]["host"]["hostname"].startswith("sha256:")
    run_cli("probe", "--out", str(tmp_path / "capture"))
    assert socket.gethostname() in (tmp_path / "capture" / "capture.json").read_text()


def test_library_chatter_on_stdout_cannot_corrupt_the_capture(run_cli, tmp_path, monkeypatch):
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    (noisy / "sitecustomize.py").write_text("import sys\nprint('{garbage on stdout')\nsys.stderr.write('noise\\n')\n")
    monkeypatch.setenv("PYTHONPATH", str(noisy))
    code, _, _, report = run_cli("check")
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"


def _capture(run_cli, tmp_path) -> Path:
    capture_dir = tmp_path / "capture"
    code, *_ = run_cli("probe", "--site", "line-7", "--out", str(capture_dir))
    assert code == ExitCode.OK
    return capture_dir


def test_probe_then_compare_round_trip(run_cli, tmp_path):
    code, out, _, report = run_cli("compare", str(_capture(run_cli, tmp_path)))
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"
    assert report["targets"][0]["site"] == "line-7"


@pytest.mark.parametrize("edit, reason", [
    pytest.param(lambda o: o.__setitem__("embedding", np.where(np.arange(o["embedding"].size).reshape(
        o["embedding"].shape) == 3, np.nan, o["embedding"]).astype(np.float32)), "NaN", id="nan"),
    pytest.param(lambda o: o.__setitem__("embedding", o["embedding"][:, :4]), "shape changed", id="shape"),
    pytest.param(lambda o: o.__setitem__("class_probs", o["class_probs"].astype(np.float64)), "dtype changed",
                 id="dtype"),
])
def test_broken_outputs_fail_with_the_reason(run_cli, tmp_path, edit, reason):
    capture_dir = _capture(run_cli, tmp_path)
    with np.load(capture_dir / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    edit(outputs)
    np.savez(capture_dir / "outputs.npz", **outputs)
    code, out, _, report = run_cli("compare", str(capture_dir))
    target = _target(report)
    assert code == ExitCode.DRIFT and target["verdict"] == "FAIL"
    assert any(reason in (o["reason"] or "") for o in target["outputs"].values())
    assert reason in out


def test_capture_from_another_golden_is_refused(run_cli, tmp_path, golden_onednn_on):
    code, _, _, report = run_cli("compare", str(_capture(run_cli, tmp_path)), "--golden", str(golden_onednn_on))
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
    code, *_ = run_cli("golden", "create", "--model", str(builtin_golden_dir() / "model"), "--out", str(out))
    assert code == ExitCode.OK
    golden = load_golden(out)
    with np.load(out / "inputs.npz") as inputs:
        assert inputs["image"].shape[1:] == (16, 16, 3) and inputs["image"].dtype == np.float32
    assert golden.expected["class_probs"].shape[0] == 16
    code, _, err, _ = run_cli("golden", "create", "--model", str(builtin_golden_dir() / "model"), "--out", str(out))
    assert code == ExitCode.USAGE and "--force" in err


def test_console_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "envcheck", "check", "--reports-dir", str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "IDENTICAL" in result.stdout and list(tmp_path.glob("envcheck-*.json"))


def test_ctrl_c_ends_running_probes_and_exits_130(tmp_path):
    """SIGINT reaches envcheck only (probes run in their own session): it must end them itself."""
    import signal
    import time
    hang = tmp_path / "python"
    hang.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import time; time.sleep(601)'\n")
    hang.chmod(0o755)
    child = subprocess.Popen([sys.executable, "-m", "envcheck", "check", "--target", f"python:{hang}",
                              "--timeout", "120", "--reports-dir", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running() -> bool:
        return subprocess.run(["pgrep", "-f", "time.sleep\\(601\\)"], capture_output=True).returncode == 0
    deadline = time.monotonic() + 30
    while not running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(), "the hung probe never started"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130 and "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not running(), "a probe child outlived Ctrl-C"


def test_model_tensorflow_cannot_load_is_a_plain_error(run_cli, tmp_path):
    from envcheck.golden import builtin_golden_dir
    model = tmp_path / "model"
    shutil.copytree(builtin_golden_dir() / "model", model)
    (model / "saved_model.pb").write_bytes(b"\x08\x01garbage that is no SavedModel proto")
    code, _, err, _ = run_cli("golden", "create", "--model", str(model), "--inputs",
                              str(builtin_golden_dir() / "inputs.npz"), "--out", str(tmp_path / "g"))
    assert code == ExitCode.UNDECIDED and "cannot load the golden model" in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()  # nothing half-written


def test_builtin_golden_rebuilds_from_code_with_the_same_inputs_and_outputs(run_cli, tmp_path):
    """Nobody depends on a binary blob: the committed bundle is what the code makes, bit for bit."""
    from envcheck.golden import builtin_golden_dir, load_golden
    code, *_ = run_cli("golden", "create", "--builtin", "--out", str(tmp_path / "rebuilt"))
    assert code == ExitCode.OK
    rebuilt, committed = load_golden(tmp_path / "rebuilt"), load_golden(builtin_golden_dir())
    for name in ("inputs.npz", "expected.npz"):
        with np.load(tmp_path / "rebuilt" / name) as new, np.load(builtin_golden_dir() / name) as old:
            assert sorted(new.files) == sorted(old.files)
            for key in old.files:
                assert new[key].tobytes() == old[key].tobytes(), (name, key)
    assert rebuilt.manifest["policy"] == committed.manifest["policy"]
