"""A TensorFlow that does not import is the target's failure, never the probe's: whatever `import tensorflow`
raises is `tensorflow-not-importable`, and where NumPy's C-API refused TensorFlow's compiled modules the message
names the NumPy ABI (the numpy installed, what TensorFlow was built against, as far as NumPy's messages and the
installed metadata tell).

The TensorFlow here is a fake package that fails the way a real one does against the wrong NumPy (NumPy prints
the versions to stderr, then the import raises something terse), in this process and in a real venv checked as
a `python:` target end to end.
"""
from __future__ import annotations

import json
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

from envcheck.errors import ExitCode

NUMPY_2_ON_1X_BUILD = ("A module that was compiled using NumPy 1.x cannot be run in\n"
                       "NumPy 2.0.2 as it may crash. To support both 1.x and 2.x\n"
                       "versions of NumPy, modules must be compiled with NumPy 2.0.\n")
TF_REQUIREMENT = "numpy<2.0.0,>=1.23.5"

CASES = [
    pytest.param(NUMPY_2_ON_1X_BUILD, "ImportError('numpy.core.multiarray failed to import')",
                 ["built against NumPy 1.x, this is NumPy 2.0.2"], id="numpy2-meets-1x-build"),
    pytest.param("AttributeError: _ARRAY_API not found\n",
                 "TypeError('Unable to convert function return value to a Python type! The signature was\\n\\t() -> "
                 "handle')", ["NumPy said 'AttributeError: _ARRAY_API not found'", "the import then raised TypeError"],
                 id="pybind-typeerror-after-array-api"),
    pytest.param("RuntimeError: module compiled against API version 0x10 but this version of numpy is 0xe\n",
                 "ImportError('numpy.core._multiarray_umath failed to import')",
                 ["need NumPy C-API version 0x10, this numpy has 0xe"], id="numpy-older-than-build"),
    pytest.param("", "ImportError('numpy.core.umath failed to import') from AttributeError('_ARRAY_API not found')",
                 ["NumPy said"], id="chained-only"),
]


def fake_tensorflow(site: Path, prints: str, raises: str) -> Path:
    """A `tensorflow` package in `site` whose import writes `prints` to stderr and raises `raises`, beside the
    metadata of a tensorflow 2.15.1 that requires TF_REQUIREMENT."""
    package = site / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"import sys\nsys.stderr.write({prints!r})\nraise {raises}\n")
    dist_info = site / "tensorflow-2.15.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow\nVersion: 2.15.1\n"
                                        f"Requires-Dist: {TF_REQUIREMENT}\n")
    return site


@pytest.fixture
def tensorflow_that_fails(tmp_path, monkeypatch):
    """fake(prints, raises): a fake tensorflow first on this process's path (the real one set aside)."""
    def install(prints: str, raises: str) -> None:
        monkeypatch.syspath_prepend(str(fake_tensorflow(tmp_path / "site", prints, raises)))
        monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    return install


@pytest.mark.parametrize("prints, raises, named", CASES)
def test_a_numpy_abi_failure_is_tensorflow_not_importable_with_the_abi_named(probe, tensorflow_that_fails, capfd,
                                                                             prints, raises, named):
    tensorflow_that_fails(prints, raises)
    with pytest.raises(probe.errors.ProbeFailure) as caught:
        probe.model.import_tensorflow()
    failure = caught.value
    assert failure.kind == "tensorflow-not-importable"
    assert failure.message.startswith(f"TensorFlow is not importable in {sys.executable}: a NumPy ABI mismatch: ")
    assert f"numpy {metadata.version('numpy')} is installed" in failure.message
    assert f"tensorflow 2.15.1 requires {TF_REQUIREMENT}" in failure.message
    for fact in named:
        assert fact in failure.message
    assert prints in capfd.readouterr().err  # kept, and still written where it always went
    assert not isinstance(sys.stderr, probe.numpy_abi.KeptStderr)


def test_another_import_failure_names_no_numpy_abi(probe, tensorflow_that_fails):
    tensorflow_that_fails("", "ImportError('libcudart.so.12: cannot open shared object file')")
    with pytest.raises(probe.errors.ProbeFailure) as caught:
        probe.model.import_tensorflow()
    assert (caught.value.kind, caught.value.message) == (
        "tensorflow-not-importable",
        f"TensorFlow is not importable in {sys.executable}: libcudart.so.12: cannot open shared object file")


def test_any_exception_from_importing_tensorflow_is_the_targets_failure(probe, tensorflow_that_fails):
    tensorflow_that_fails("", "SystemError('initialization of _pywrap_checkpoint_reader raised unreported exception')")
    with pytest.raises(probe.errors.ProbeFailure) as caught:
        probe.model.import_tensorflow()
    assert caught.value.kind == "tensorflow-not-importable"
    assert caught.value.message.endswith(": SystemError: initialization of _pywrap_checkpoint_reader raised "
                                         "unreported exception")


def test_a_venv_whose_tensorflow_fails_on_the_numpy_abi_is_reported_as_such(run_cli, tmp_path):
    """End to end: a real venv (seeing this interpreter's numpy) whose tensorflow fails as against NumPy 2,
    checked as a `python:` target: exit 3, the target's TensorFlow named, never envcheck's own fault."""
    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=True, with_pip=False)
    python = environment / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    fake_tensorflow(Path(site), "AttributeError: _ARRAY_API not found\n",
                    "TypeError('Unable to convert function return value to a Python type!')")
    code, _, err, report = run_cli("check", "--target", f"python:{python}")
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "tensorflow-not-importable", json.dumps(error)
    assert f"TensorFlow is not importable in {python}: a NumPy ABI mismatch: " in error["message"]
    assert f"numpy {metadata.version('numpy')} is installed" in error["message"]
    assert f"tensorflow 2.15.1 requires {TF_REQUIREMENT}" in error["message"]
    assert "probe-internal" not in err and "Traceback" not in err
