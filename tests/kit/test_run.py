"""The kit run on this machine's interpreters: on Python 3.8 without numpy or TensorFlow it still verifies its
golden, fingerprints the box and writes an ERROR capture that `envcheck compare` judges (exit 3); a probe that
crashes or hangs ends the kit's child, never the kit, and headquarters names the crash as a host probe's; the
capture streams to stdout with `--out -`; nothing is left behind but the capture.

No TensorFlow runs here (the crash is injected where TensorFlow would be imported); tests/kit/test_docker.py
runs the kit for real in the fixture images."""
from __future__ import annotations

import glob
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from helpers import NO_TF_PYTHON, require

from envcheck.errors import ExitCode

from .conftest import run_kit

# Kills or stalls the kit's probe child (never the kit itself) where it imports TensorFlow, as a TensorFlow
# built for instructions this CPU lacks dies with SIGILL on import.
INJECTED = """
import os, signal, sys, time

class _AtTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            {action}
        return None

if "--probe-child" in sys.argv:
    sys.meta_path.insert(0, _AtTensorFlow())
"""


def python38() -> str:
    """A CPython 3.8 (ENVCHECK_PYTHON38, `python3.8` on PATH, or pyenv's): the oldest Python the kit promises."""
    candidates = [os.environ.get("ENVCHECK_PYTHON38"), shutil.which("python3.8"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))]
    found = [c for c in candidates if c and os.access(c, os.X_OK) and "/shims/" not in c]
    require(bool(found), "a Python 3.8 (pyenv install 3.8, or ENVCHECK_PYTHON38=PATH)")
    return found[0]


@pytest.fixture
def box(tmp_path) -> dict:
    """A working directory and a private TMPDIR, to see what the kit leaves behind."""
    folders = {"cwd": tmp_path / "cwd", "tmp": tmp_path / "tmp"}
    for folder in folders.values():
        folder.mkdir()
    return {**folders, "env": {**os.environ, "TMPDIR": str(folders["tmp"])}}


def _compare(run_cli, capture: Path):
    code, _, err, report = run_cli("compare", str(capture))
    return code, err, report["targets"][0]


def test_python_3_8_without_tensorflow_gets_an_error_capture_that_compares(kit, box, run_cli):
    ran = run_kit(kit, "--site", "line-8", cwd=box["cwd"], python=python38(), env=box["env"])
    err = ran.stderr.decode()
    assert ran.returncode == ExitCode.UNDECIDED, err
    assert "the probe could not finish here: TensorFlow is not importable" in err and "Traceback" not in err
    assert "at headquarters run:\n  envcheck compare capture.tar.gz" in ran.stdout.decode()
    assert sorted(p.name for p in box["cwd"].iterdir()) == ["capture.tar.gz"] and list(box["tmp"].iterdir()) == []
    code, _, target = _compare(run_cli, box["cwd"] / "capture.tar.gz")
    assert code == ExitCode.UNDECIDED and target["verdict"] == "ERROR" and target["site"] == "line-8"
    assert target["error"]["kind"] == "tensorflow-not-importable", target["error"]
    assert target["fingerprint"]["python"]["version"].startswith("3.8.")


def test_out_dash_streams_the_capture_and_says_everything_on_stderr(kit, box, run_cli):
    require(NO_TF_PYTHON.exists(), f"a Python without TensorFlow at {NO_TF_PYTHON}")
    ran = run_kit(kit, "--out", "-", cwd=box["cwd"], python=str(NO_TF_PYTHON), env=box["env"])
    assert ran.returncode == ExitCode.UNDECIDED, ran.stderr.decode()
    assert ran.stdout[:2] == b"\x1f\x8b"  # gzip: the capture, and nothing else, on stdout
    assert "envcheck compare capture.tar.gz" in ran.stderr.decode()
    assert list(box["cwd"].iterdir()) == [] and list(box["tmp"].iterdir()) == []
    capture = box["cwd"].parent / "streamed.tar.gz"
    capture.write_bytes(ran.stdout)
    with tarfile.open(capture) as archive:
        assert archive.getnames() == ["capture.json"]
    code, _, target = _compare(run_cli, capture)
    assert code == ExitCode.UNDECIDED and target["error"]["kind"] == "tensorflow-not-importable"
    assert target["site"] == "streamed"  # no --site: the file's name, as a folder's name names a capture


CRASHES = [
    pytest.param("os.kill(os.getpid(), signal.SIGILL)", [], "sigill", "died from SIGILL", id="sigill"),
    pytest.param("time.sleep(120)", ["--timeout", "3"], "timeout", "did not finish within 3 s", id="timeout"),
]


@pytest.mark.parametrize(("action", "options", "kind", "kit_says"), CRASHES)
def test_a_probe_that_crashes_is_an_error_capture_named_at_headquarters(kit, box, run_cli, action, options, kind,
                                                                         kit_says):
    site = box["cwd"].parent / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(INJECTED.format(action=action))
    env = {**box["env"], "PYTHONPATH": str(site)}
    ran = run_kit(kit, "--out", "crash.tar.gz", *options, cwd=box["cwd"], env=env, timeout=120)
    err = ran.stderr.decode()
    assert ran.returncode == ExitCode.UNDECIDED and kit_says in err and "Traceback" not in err, err
    assert list(box["tmp"].iterdir()) == []
    code, _, target = _compare(run_cli, box["cwd"] / "crash.tar.gz")
    assert code == ExitCode.UNDECIDED and target["verdict"] == "ERROR"
    assert target["error"]["kind"] == kind, target["error"]  # as targets/exits.py names a host probe's end
    assert target["error"]["stage"] == "import-tensorflow"


def test_a_site_name_is_checked_as_envcheck_checks_one(kit, box):
    ran = run_kit(kit, "--site", "line\n7", cwd=box["cwd"], env=box["env"])
    assert ran.returncode == ExitCode.USAGE and b"one line of at most 200 printable characters" in ran.stderr
    assert list(box["cwd"].iterdir()) == []


def test_an_unwritable_destination_is_found_before_probing(kit, box):
    ran = run_kit(kit, "--out", str(box["cwd"] / "missing" / "capture.tar.gz"), cwd=box["cwd"], env=box["env"])
    err = ran.stderr.decode()
    assert ran.returncode == ExitCode.UNDECIDED and err.count("\n") == 1 and "use --out - to stream" in err, err
    assert "probing" not in err and list(box["tmp"].iterdir()) == []
