"""The fingerprint's native-libraries section (`native_libraries`, each loaded library with its `kind`), and the
goldens, captures and reports written when it was `cuda_libraries` and held libm and libstdc++ as "CUDA and math
libraries": read under the new name by every reader (fields.current_fingerprint), and compared only on the kinds
both probes looked for (fields.comparable_libraries), so that a new capture against an old golden of the same
machine differs in no library."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from envcheck import fields
from envcheck.capture import CAPTURE_SCHEMA, OUTPUTS_FILE, load_capture_dir, save_capture_dir
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.policy import Policy, build_policy
from envcheck.golden import builtin_golden_dir, load_golden
from envcheck.model import Capture
from envcheck.redact import redact_fingerprint
from envcheck.targets.probe_app import probe_app_path

# A machine's libraries as the new probe sees them after TensorFlow has run: the old golden's libm and libstdc++
# (same paths), and what the old probe never looked for (TensorFlow's own library, NumPy's OpenBLAS, OpenMP).
NEW_LIBRARIES_TOO = ("/opt/no-such-29/site-packages/tensorflow/libtensorflow_framework.so.2",
                     "/opt/no-such-29/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
                     "/opt/no-such-29/lib/libgomp.so.1.0.0")


def _probe_section(loaded_paths: list[str], installed: dict[str, list[str]]) -> dict:
    """The `native_libraries` section the probe (the zipapp targets run) writes for these mapped libraries and
    these CUDA libraries known to ldconfig (in a child: the host never imports the probe)."""
    maps = "\n".join(f"7f00-7f01 r-xp 00000000 08:01 1 {path}" for path in loaded_paths)
    ldconfig = "".join(f"\t{name}.so.{version} (libc6,x86-64) => /usr/local/cuda/lib64/{name}.so.{version}\n"
                       for name, versions in installed.items() for version in versions)
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]); from envcheck_probe import libraries; "
              "section = libraries.native_libraries(sys.argv[3]); "
              "section['loaded'] = libraries.loaded_libraries(sys.argv[2]); print(json.dumps(section))")
    result = subprocess.run([sys.executable, "-I", "-c", script, str(probe_app_path()), maps, ldconfig],
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def _old_golden_file(name: str = "default") -> dict:
    """The committed golden's fingerprint.json as written (by the probe before the rename)."""
    return json.loads((builtin_golden_dir(name) / "fingerprint.json").read_text(encoding="utf-8"))


def _new_capture_of_the_golden_machine() -> dict:
    """The golden's machine fingerprinted again by the current probe."""
    old = _old_golden_file()
    libraries = old.pop(fields.LEGACY_LIBRARIES)
    paths = [entry["path"] for entry in libraries["loaded"].values()] + list(NEW_LIBRARIES_TOO)
    return {**old, fields.LIBRARIES: _probe_section(paths, libraries["installed"])}


def _library_differences(golden: dict, target: dict) -> list:
    return [d for d in diff_fingerprints(golden, target, Policy())
            if d.path.startswith((fields.LIBRARIES, fields.LEGACY_LIBRARIES))]


@pytest.mark.parametrize("name", ["default", "edge"])
def test_the_committed_goldens_keep_their_bytes_and_read_under_the_new_name(name):
    assert fields.LEGACY_LIBRARIES in _old_golden_file(name)  # committed before the rename, never rewritten
    golden = load_golden(f"builtin:{name}")  # verifies every file against its sha256
    assert fields.LEGACY_LIBRARIES not in golden.fingerprint
    libraries = golden.fingerprint[fields.LIBRARIES]
    assert libraries["searched_kinds"] == list(fields.LEGACY_SEARCHED_KINDS)
    assert libraries["loaded"] == _old_golden_file(name)[fields.LEGACY_LIBRARIES]["loaded"]


def test_an_old_golden_against_a_new_capture_of_the_same_machine_differs_in_no_library(tmp_path):
    new = _new_capture_of_the_golden_machine()
    assert {"libtensorflow_framework", "libscipy_openblas64_", "libgomp"} <= set(new[fields.LIBRARIES]["loaded"])
    assert new[fields.LIBRARIES]["loaded"]["libm"]["kind"] == "math"
    # Through the readers: the golden as load_golden reads it, the capture as `envcheck compare` reads it.
    (tmp_path / "capture.json").write_text(json.dumps({"schema": CAPTURE_SCHEMA, "status": "ok", "fingerprint": new}))
    np.savez(tmp_path / OUTPUTS_FILE, y=np.zeros(2, np.float32))
    capture, _ = load_capture_dir(tmp_path)
    golden = redact_fingerprint(load_golden().fingerprint)
    assert _library_differences(golden, redact_fingerprint(capture.fingerprint)) == []
    assert diff_fingerprints(golden, redact_fingerprint(capture.fingerprint),
                             Policy()) == diff_fingerprints(_without_libraries(golden),
                                                            _without_libraries(capture.fingerprint), Policy())


def _without_libraries(fingerprint: dict) -> dict:
    return {key: value for key, value in redact_fingerprint(fingerprint).items() if key != fields.LIBRARIES}


def test_a_new_golden_against_an_old_capture_differs_in_no_library_either():
    """A capture made by an older envcheck at a site, compared at headquarters with a golden made today."""
    old_capture = fields.current_fingerprint(_old_golden_file())
    assert _library_differences(_new_capture_of_the_golden_machine(), old_capture) == []


def test_the_new_libraries_are_compared_once_both_probes_looked_for_them():
    golden = _new_capture_of_the_golden_machine()
    target = copy.deepcopy(golden)
    gomp = target[fields.LIBRARIES]["loaded"].pop("libgomp")
    target[fields.LIBRARIES]["loaded"]["libiomp5"] = {"kind": "threading", "version": None,
                                                      "path": "/opt/intel/lib/libiomp5.so"}
    target[fields.LIBRARIES]["loaded"]["libscipy_openblas64_"]["path"] = "/elsewhere/libscipy_openblas64_-0badcafe.so"
    found = {d.path: d.severity for d in _library_differences(golden, target)}
    assert found == {"native_libraries.loaded.libgomp": "warn", "native_libraries.loaded.libiomp5": "warn",
                     "native_libraries.loaded.libscipy_openblas64_.path": "info"}
    assert gomp["kind"] == "threading"


def test_how_envcheck_files_a_library_is_never_a_difference():
    """The kind and the kinds searched are envcheck's filing, not the environment (a kind's name never changes:
    a new family of libraries is a new kind, which the older side did not search)."""
    golden = _new_capture_of_the_golden_machine()
    target = copy.deepcopy(golden)
    target[fields.LIBRARIES]["loaded"]["libgomp"]["kind"] = "blas"
    target[fields.LIBRARIES]["searched_kinds"].append("a-kind-of-a-later-probe")
    assert _library_differences(golden, target) == []


def test_an_old_capture_reads_and_saves_under_the_new_name(tmp_path):
    old = _old_golden_file()
    source, saved = tmp_path / "old", tmp_path / "saved"
    source.mkdir()
    (source / "capture.json").write_text(json.dumps({"schema": CAPTURE_SCHEMA, "status": "ok", "fingerprint": old}))
    np.savez(source / OUTPUTS_FILE, y=np.zeros(2, np.float32))
    capture, _ = load_capture_dir(source)
    assert isinstance(capture, Capture) and capture.fingerprint == fields.current_fingerprint(old)
    save_capture_dir(capture, source, saved, "0" * 64)
    again, _ = load_capture_dir(saved)
    assert again.fingerprint == capture.fingerprint
    first = (saved / "capture.json").read_bytes()
    save_capture_dir(again, saved, saved, "0" * 64)
    assert (saved / "capture.json").read_bytes() == first


@pytest.mark.parametrize("fingerprint, expected", [
    pytest.param({"cpu": {}}, {"cpu": {}}, id="nothing-old"),
    pytest.param({"cuda_libraries": {"loaded": {}}}, {"native_libraries": {
        "loaded": {}, "searched_kinds": ["c++-runtime", "cuda", "math"]}}, id="old"),
    pytest.param({"cuda_libraries": {"loaded": {}}, "native_libraries": {"loaded": {"libm": {}}}},
                 {"native_libraries": {"loaded": {"libm": {}}}}, id="both-names-the-current-wins"),
    pytest.param({"cuda_libraries": "torn"}, {"native_libraries": "torn"}, id="not-a-section"),
    pytest.param([], [], id="not-a-fingerprint"),
])
def test_current_fingerprint(fingerprint, expected):
    assert fields.current_fingerprint(fingerprint) == expected


@pytest.mark.parametrize("path, expected", [
    ("cuda_libraries.loaded.libm.version", "native_libraries.loaded.libm.version"),
    ("cuda_libraries*", "native_libraries*"),
    ("cuda_libraries", "native_libraries"),
    ("cuda_libraries_v2.loaded", "cuda_libraries_v2.loaded"),
    ("packages.cuda_libraries", "packages.cuda_libraries"),
])
def test_a_stored_path_or_policy_pattern_reads_under_the_new_name(path, expected):
    assert fields.current_path(path) == expected


@pytest.mark.parametrize("section", [
    pytest.param({"searched_kinds": [["blas"], 7, None], "loaded": {"libgomp": "torn"}}, id="kinds-not-words"),
    pytest.param({"searched_kinds": "blas", "loaded": []}, id="kinds-not-a-list"),
    pytest.param("torn", id="not-a-section"),
])
def test_a_malformed_section_from_a_site_is_compared_without_a_traceback(section):
    golden = _new_capture_of_the_golden_machine()
    found = {d.path for d in _library_differences(golden, {**golden, fields.LIBRARIES: section})}
    assert found and all(path.startswith(fields.LIBRARIES) for path in found)


def test_a_policy_rule_written_for_the_old_section_name_still_applies():
    policy = build_policy({"severity": {"cuda_libraries.loaded.libm*": "fail"}})
    assert policy.severity_for("native_libraries.loaded.libm.version") == "fail"
