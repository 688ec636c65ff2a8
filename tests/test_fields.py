"""The field registry (envcheck/fields.py): what each registered field does where it is used (the severity a
difference gets, first match winning; the hint a difference brings; what is redacted; what is compared as a set),
and that one entry adds a field everywhere."""
from __future__ import annotations

import ast
import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from envcheck import fields
from envcheck.compare import explain, policy
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.policy import Policy
from envcheck.redact import REDACTED_PREFIX, hash_identifier, redact_fingerprint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path, severity", [
    pytest.param("host.hostname", "ignore", id="identity-of-the-machine"),
    pytest.param("tensorflow.threads.intra_op", "info", id="threads"),
    pytest.param("tensorflow.version", "fail", id="tf-version"),
    pytest.param("packages.tensorflow-cpu", "fail", id="tf-package"),
    # First match wins: the specific rule before the broad one below it.
    pytest.param("gpu.gpus[0].uuid", "ignore", id="gpu-uuid-before-gpu-record"),
    pytest.param("gpu.gpus[1]", "warn", id="a-gpu-added"),
    pytest.param("gpu.gpus[0].name", "warn", id="gpu-name"),
    pytest.param("gpu.driver_version", "fail", id="driver"),
    pytest.param("gpu.nvml_api", "info", id="other-gpu-facts"),
    pytest.param("native_libraries.loaded.libcudnn.path", "info", id="library-path-before-library"),
    pytest.param("native_libraries.loaded.libcudnn.version", "fail", id="cuda-library-version"),
    pytest.param("native_libraries.loaded.libm.version", "warn", id="libm-before-libraries"),
    pytest.param("native_libraries.loaded.libgomp.version", "warn", id="openmp-version"),
    pytest.param("native_libraries.loaded.libiomp5", "warn", id="another-openmp"),
    pytest.param("native_libraries.loaded.libdnnl.version", "warn", id="onednn-library"),
    pytest.param("native_libraries.loaded.libscipy_openblas64_.version", "warn", id="numpy-bundled-openblas"),
    pytest.param("native_libraries.loaded.libmkl_rt.version", "warn", id="mkl-before-libm"),
    pytest.param("native_libraries.loaded.libtensorflow_framework.version", "warn", id="tensorflow-library"),
    pytest.param("native_libraries.loaded.libgomp.path", "info", id="openmp-path"),
    pytest.param("native_libraries.installed.libcudart", "info", id="installed-library"),
    pytest.param("packages.nvidia-cudnn-cu12", "fail", id="nvidia-package"),
    pytest.param("packages.numpy", "warn", id="numpy"),
    pytest.param("env.TF_ENABLE_ONEDNN_OPTS", "warn", id="onednn-switch"),
    pytest.param("cpu.missing_required_flags[0]", "fail", id="cpu-lacks-avx"),
    pytest.param("tflite.op_resolver_words", "ignore", id="resolver-words-before-tflite"),
    pytest.param("tflite.op_resolver", "warn", id="resolver"),
    pytest.param("tflite.version", "info", id="tflite-version"),
    pytest.param("packages.requests", "info", id="anything-else"),
])
def test_a_difference_gets_its_fields_severity(path, severity):
    assert Policy().severity_for(path) == severity


@pytest.mark.parametrize("path, says", [
    pytest.param("env.TF_ENABLE_ONEDNN_OPTS", "oneDNN custom ops", id="onednn"),
    pytest.param("env.ONEDNN_MAX_CPU_ISA", "another instruction set", id="isa"),
    pytest.param("cpu.tf_flags[2]", "The CPU's instruction sets differ", id="cpu-flags"),
    pytest.param("tensorflow.version", "The TensorFlow build differs", id="tf"),
    pytest.param("packages.numpy", "NumPy differs", id="numpy"),
    pytest.param("tflite.op_resolver", "XNNPACK", id="resolver"),
])
def test_a_registered_hint_explains_its_fields(path, says):
    (cause,) = [cause for cause in explain.CAUSES if any(fnmatch(path, p) for p in cause.patterns)][:1]
    assert says in cause.text.format(path=path, change="a → b")


def fnmatch(path: str, pattern: str) -> bool:
    import fnmatch as module

    return module.fnmatchcase(path, pattern)


def test_hints_go_from_the_most_specific_cause_to_the_broadest():
    priorities = [hint.priority for hint, _ in fields.hint_table()]
    assert priorities == sorted(priorities)
    texts = [cause.text for cause in explain.CAUSES]
    assert texts.index(fields.ONEDNN.text) < texts.index(fields.TF_RELEASE.text) < texts.index(fields.NUMPY.text)


def test_devices_are_compared_as_sets():
    golden = {"tensorflow": {"devices": [{"name": "/CPU:0"}, {"name": "/GPU:0"}]}}
    reordered = {"tensorflow": {"devices": [{"name": "/GPU:0"}, {"name": "/CPU:0"}]}}
    assert diff_fingerprints(golden, reordered, Policy()) == ()
    assert diff_fingerprints(golden, {"tensorflow": {"devices": [{"name": "/CPU:0"}]}}, Policy())
    assert {"tensorflow.devices", "tensorflow.gpu_devices"} <= fields.set_of_records_paths()


SAMPLE = {
    "host": {"hostname": "line-7", "pid": 100, "names": ["line-7"]},
    "python": {"executable": "/usr/bin/python3", "version": "3.11.7"},
    "gpu": {"driver_version": "550.54", "gpus": [
        {"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1234", "serial": "1650", "pci_bus_id": "0000:17:00.0",
         "unsupported": {"serial": "not supported"}, "errors": {"uuid": "NVML_ERROR_UNKNOWN"}},
        {"index": 1, "name": "NVIDIA H100", "uuid": hash_identifier("GPU-5678"), "serial": None,
         "pci_bus_id": "0000:18:00.0", "mig": [{"uuid": "MIG-1"}]},
    ]},
    "tensorflow": {"devices": [{"name": "/GPU:0", "uuid": "GPU-1234"}]},
    "env": {"HOSTNAME": "line-7", "gpu.gpus[0].uuid": "literal key"},
}


IDENTIFYING_IN_SAMPLE = (("host", "hostname"), ("gpu", "gpus", 0, "uuid"), ("gpu", "gpus", 0, "serial"),
                         ("gpu", "gpus", 0, "pci_bus_id"), ("gpu", "gpus", 1, "pci_bus_id"))
"""Where SAMPLE holds an identifier of a machine: each is hashed, nothing else is touched."""


def _recorded_fingerprints() -> list[dict[str, Any]]:
    found = []
    for path in sorted((REPO / "fixtures" / "reports" / "recorded").glob("*.json")):
        found.extend(t["fingerprint"] for t in json.loads(path.read_text())["targets"] if t.get("fingerprint"))
    return found


def test_redaction_hashes_the_identifiers_and_nothing_else():
    expected = copy.deepcopy(SAMPLE)
    for path in IDENTIFYING_IN_SAMPLE:
        node = expected
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = hash_identifier(node[path[-1]])
    assert redact_fingerprint(SAMPLE) == expected


@pytest.mark.parametrize("sample", _recorded_fingerprints(), ids=lambda s: str(s.get("host", {}).get("hostname")))
def test_redaction_of_a_shared_fingerprint_changes_nothing(sample):
    assert redact_fingerprint(sample) == sample


def test_the_sample_exercises_redaction():
    shared = redact_fingerprint(SAMPLE)
    first = shared["gpu"]["gpus"][0]
    assert shared["host"]["hostname"].startswith(REDACTED_PREFIX) and first["uuid"].startswith(REDACTED_PREFIX)
    assert first["errors"]["uuid"] == "NVML_ERROR_UNKNOWN"  # why a value is missing stays readable
    assert shared["gpu"]["gpus"][1]["uuid"] == SAMPLE["gpu"]["gpus"][1]["uuid"]  # idempotent


def test_any_index_translates_once_to_the_policy_file_glob():
    assert fields.glob("gpu.gpus[*].uuid") == "gpu.gpus[[]*[]].uuid"
    assert ("gpu.gpus[[]*[]]", "warn") in policy.DEFAULT_SEVERITY


@pytest.mark.parametrize("pattern", ["gpu.gpus*uuid", "gpu.gpus[*].*", "host.?ostname"])
def test_a_redacted_field_is_an_exact_path(pattern):
    with pytest.raises(ValueError, match="exact path"):
        fields.Field(pattern, identifying=True)


def test_a_set_of_records_is_an_exact_path():
    with pytest.raises(ValueError, match="exact path"):
        fields.Field("tensorflow.*devices", set_of_records=True)


def test_registry_patterns_use_no_other_bracket_class():
    # `[*]` is the registry's only bracket: any other `[...]` would be an fnmatch class, easily misread.
    for field in fields.FIELDS:
        assert "[" not in field.pattern.replace(fields.ANY_INDEX, ""), field.pattern


def test_the_catch_all_is_the_last_severity_rule():
    # An entry with a severity after `*` would never apply.
    assert fields.severity_rules()[-1] == ("*", "info")


def test_every_hint_fills_in():
    for hint, _ in fields.hint_table():
        assert "{" not in hint.text.format(path="env.X", change="a → b")


def test_labels():
    assert fields.label_for("gpu.gpus[1].uuid") == "GPU UUID"
    assert fields.label_for("packages.requests") == "packages.requests"


@pytest.mark.parametrize("path, label", [
    pytest.param("native_libraries.loaded.libm.version", "C math library", id="libm-is-no-cuda-library"),
    pytest.param("native_libraries.loaded.libstdc++.path", "C++ runtime", id="libstdc++"),
    pytest.param("native_libraries.loaded.libmkl_rt.version", "BLAS library", id="mkl-is-no-libm"),
    pytest.param("native_libraries.loaded.libmkldnn.version", "oneDNN library", id="mkldnn-is-no-libm"),
    pytest.param("native_libraries.loaded.libgomp", "OpenMP runtime", id="openmp"),
    pytest.param("native_libraries.loaded.libcudnn.version", "CUDA library loaded", id="cuda"),
])
def test_a_native_library_is_labelled_for_what_it_is(path, label):
    """A reviewer once read "CUDA library loaded" for libm: every kind of library has its own label."""
    assert fields.label_for(path) == label


def test_a_numerics_library_brings_its_hint():
    (cause,) = [c for c in explain.CAUSES if any(fnmatch("native_libraries.loaded.libgomp.version", p) for p in c.patterns)]
    assert "OpenMP" in cause.text and "round-off" in cause.text


def test_one_entry_adds_a_field_everywhere():
    hint = fields.Hint(95, "{path} differs ({change}): another GPU allocator.")
    added = fields.Field("env.TF_GPU_ALLOCATOR", "warn", label="GPU allocator", hint=hint, identifying=True)
    registry = (*fields.FIELDS[:-1], added, fields.FIELDS[-1])
    assert ("env.TF_GPU_ALLOCATOR", "warn") in fields.severity_rules(registry)
    priorities = [h.priority for h, _ in fields.hint_table(registry)]
    assert (hint, ("env.TF_GPU_ALLOCATOR",)) in fields.hint_table(registry) and priorities == sorted(priorities)
    assert "env.TF_GPU_ALLOCATOR" in fields.identifying_paths(registry)
    assert fields.label_for("env.TF_GPU_ALLOCATOR", registry) == "GPU allocator"


def test_the_registry_imports_only_the_standard_library():
    tree = ast.parse((REPO / "envcheck" / "fields.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    at_run_time = {name.split(".")[0] for name in imported} - {"envcheck"}  # envcheck.model: type checking only
    assert at_run_time <= set(sys.stdlib_module_names)
