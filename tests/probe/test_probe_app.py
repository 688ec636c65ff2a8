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

from envcheck import fields
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
    debian = {"debian_packages"} if os.path.exists("/var/lib/dpkg/status") else set()  # a Debian or Ubuntu host
    assert set(capture["fingerprint"]) == {"python", "os", "host", "cpu", "packages", "env", "gpu", "native_libraries",
                                           *debian}
    libraries = capture["fingerprint"]["native_libraries"]
    assert libraries["loaded"] == {} and "blas" in libraries["searched_kinds"]  # filled once the model has run
    assert capture["fingerprint"]["python"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_a_usage_error_is_exit_2_on_stderr(tmp_path):
    result = subprocess.run([sys.executable, str(probe_app.probe_app_path()), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--bundle" in result.stderr and result.stdout == ""


# A process's /proc/self/maps, as the probe reads it after TensorFlow has run (directories that exist nowhere, so
# that resolving symlinks changes no path on any machine).
MAPS = "\n".join(f"7f2c4e000000-7f2c4e020000 r-xp 00000000 08:01 4242 {path}" for path in (
    "/opt/no-such-29/lib/libm.so.6", "/opt/no-such-29/lib/libstdc++.so.6.0.30",
    "/opt/no-such-29/lib/libgomp.so.1.0.0", "/opt/no-such-29/intel/libiomp5.so",
    "/opt/no-such-29/lib/libdnnl.so.3.4", "/opt/no-such-29/lib/libmkl_rt.so.2",
    "/opt/no-such-29/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
    "/opt/no-such-29/site-packages/numpy.libs/libopenblas64_p-r0-15028c96.3.21.so",
    "/opt/no-such-29/site-packages/numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0",
    "/opt/no-such-29/site-packages/tensorflow/libtensorflow_framework.so.2",
    "/opt/no-such-29/site-packages/nvidia/cudnn/lib/libcudnn.so.9",
    "/opt/no-such-29/lib/libmath-helpers.so.1", "[vdso]",
))


def test_the_native_libraries_that_change_cpu_numerics_are_found_with_their_kind(probe):
    loaded = probe.libraries.loaded_libraries(MAPS)
    assert {name: (entry["kind"], entry["version"]) for name, entry in loaded.items()} == {
        "libm": ("math", "6"), "libstdc++": ("c++-runtime", "6.0.30"),
        "libgomp": ("threading", "1.0.0"), "libiomp5": ("threading", None), "libdnnl": ("dnn", "3.4"),
        "libmkl_rt": ("blas", "2"), "libtensorflow_framework": ("tensorflow", "2"), "libcudnn": ("cuda", "9"),
        # NumPy's bundled copies: the build hash auditwheel adds is no part of the name (the path keeps it)
        "libscipy_openblas64_": ("blas", None), "libopenblas64_p-r0": ("blas", "3.21"),
    }
    assert loaded["libscipy_openblas64_"]["path"].endswith("libscipy_openblas64_-32a4b2a6.so")


def test_the_section_says_which_kinds_it_looked_for(probe):
    kinds = {kind for _, kind in probe.libraries.LIBRARY_KINDS}
    assert probe.libraries.native_libraries("")["searched_kinds"] == sorted(kinds)
    assert kinds >= {"cuda", "math", "c++-runtime", "threading", "dnn", "blas", "tensorflow"}
    # The host reads an older probe's section as having looked for these: they must be this probe's names.
    assert set(fields.LEGACY_SEARCHED_KINDS) <= kinds
