"""One top-level guard: whatever fails unexpectedly, at whatever stage, ends as exit 3 with one line
(exit 1 only ever means drift); --debug shows the traceback; a closed pipe keeps the verdict's code."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from envcheck.cli import main
from envcheck.errors import ExitCode
from hostile.cases import good_capture

STAGES = [
    # (patched where the check service looks them up)
    pytest.param("envcheck.check.load_golden", id="load-golden"),
    pytest.param("envcheck.check.load_capture_dir", id="load-capture"),
    pytest.param("envcheck.check.build_report", id="compare"),
    pytest.param("envcheck.report.json.report_to_dict", id="report"),
    pytest.param("envcheck.report.terminal.render_plain", id="render"),
    pytest.param("envcheck.files.atomic_write_text", id="write"),
]


def _explode(*args, **kwargs):
    raise RuntimeError("injected fault")


@pytest.mark.parametrize("stage", STAGES)
def test_a_fault_at_any_stage_is_exit_3_with_one_line(stage, tmp_path, capsys, monkeypatch):
    capture = good_capture(tmp_path)
    module, _, name = stage.rpartition(".")
    monkeypatch.setattr(sys.modules[module] if module in sys.modules else __import__(module, fromlist=[name]),
                        name, _explode)
    code = main(["compare", str(capture), "--reports-dir", str(tmp_path / "reports")])
    out, err = capsys.readouterr()
    assert code == ExitCode.UNDECIDED, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("envcheck: internal error: RuntimeError: injected fault")
    assert "--debug" in lines[-1] and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import envcheck.check
    monkeypatch.setattr(envcheck.check, "build_report", _explode)
    code = main(["--debug", "compare", str(good_capture(tmp_path)), "--no-reports"])
    assert code == ExitCode.UNDECIDED and "Traceback" in capsys.readouterr().err


def test_a_closed_pipe_keeps_the_verdicts_exit_code(tmp_path):
    """`envcheck compare … | head -1`: the reader leaves; a WARN run still exits 0, quietly."""
    capture = good_capture(tmp_path)
    document = json.loads((capture / "capture.json").read_text())
    fingerprint = copy.deepcopy(document["fingerprint"])
    fingerprint.setdefault("env", {})["TF_ENABLE_ONEDNN_OPTS"] = "0"  # a warn-level difference
    document["fingerprint"] = fingerprint
    (capture / "capture.json").write_text(json.dumps(document))
    child = subprocess.Popen([sys.executable, "-m", "envcheck", "compare", str(capture), "--json",
                              str(tmp_path / "r.json"), "--no-reports"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdout.close()  # nobody reads: every write to stdout fails with EPIPE
    _, err = child.communicate(timeout=120)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["targets"][0]["verdict"] == "WARN"
    assert child.returncode == report["exit_code"] == ExitCode.OK, err
    assert "Traceback" not in err and "BrokenPipe" not in err
