"""The zipapp that carries the probe into targets: the same bytes for the same sources, exactly the probe's
modules, and runnable on its own by an interpreter without site-packages."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

from envcheck.golden import builtin_golden_dir
from envcheck.targets import probe_app

FIXED = (1980, 1, 1, 0, 0, 0)


def _archive(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def test_the_zipapp_holds_exactly_the_probe_modules_and_a_launcher():
    sources = sorted(probe_app.PROBE_SOURCE.glob("*.py"))
    assert len(sources) > 10  # small modules, one job each, not one file
    archive = _archive(probe_app.probe_app_bytes())
    names = archive.namelist()
    assert names == sorted(names)
    assert names == ["__main__.py", *(f"envcheck_probe/{path.name}" for path in sources)]
    for path in sources:
        assert archive.read(f"envcheck_probe/{path.name}") == path.read_bytes(), path.name
    assert archive.read("__main__.py").decode().splitlines()[1:] == ["import envcheck_probe.cli",
                                                                      "envcheck_probe.cli.run()"]
    assert probe_app.probe_app_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_the_zipapp_is_the_same_bytes_whatever_the_file_times_timezone_or_build(tmp_path, monkeypatch):
    first = probe_app.probe_app_bytes()
    assert probe_app.probe_app_bytes() is first  # built once per process
    assert all(info.date_time == FIXED and info.compress_type == zipfile.ZIP_STORED
               and info.external_attr >> 16 == 0o100644 for info in _archive(first).infolist())
    # Other file times (a fresh checkout, an edited-and-reverted file) change nothing.
    copy = tmp_path / "envcheck_probe"
    shutil.copytree(probe_app.PROBE_SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for index, path in enumerate(sorted(copy.iterdir())):
        os.utime(path, (1_700_000_000 + index * 7919, 1_700_000_000 + index * 7919))
    monkeypatch.setattr(probe_app, "PROBE_SOURCE", copy)
    assert probe_app.probe_app_bytes.__wrapped__() == first
    # Another process, in another timezone.
    code = ("import sys; from envcheck.targets.probe_app import probe_app_bytes; "
            "sys.stdout.buffer.write(probe_app_bytes())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                           env={**os.environ, "TZ": "Pacific/Kiritimati"}).stdout
    assert other == first


def test_the_zipapp_file_is_written_once_per_process():
    path = probe_app.probe_app_path()
    assert probe_app.probe_app_path() == path and path.name == "probe.pyz"
    assert path.read_bytes() == probe_app.probe_app_bytes()


def test_an_interpreter_without_site_packages_runs_the_stdlib_stages(tmp_path):
    """-I -S: no site-packages, no user site, no PYTHON* variables, the cwd not on the path; the zipapp
    alone must be enough up to importing TensorFlow, which then fails plainly."""
    out = tmp_path / "capture"
    result = subprocess.run([sys.executable, "-I", "-S", str(probe_app.probe_app_path()), "--bundle",
                             str(builtin_golden_dir()), "--out", str(out)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""  # stdout stays clean: fd 1 goes to stderr
    capture = json.loads((out / "capture.json").read_text())
    assert (capture["stage"], capture["status"], capture["error"]["kind"]) == (
        "import-tensorflow", "error", "tensorflow-not-importable")
    assert set(capture["fingerprint"]) == {"python", "os", "host", "cpu", "packages", "env", "gpu", "cuda_libraries"}
    assert capture["fingerprint"]["python"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_a_usage_error_is_exit_2_on_stderr(tmp_path):
    result = subprocess.run([sys.executable, str(probe_app.probe_app_path()), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--bundle" in result.stderr and result.stdout == ""
