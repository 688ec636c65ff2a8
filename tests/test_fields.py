"""The field registry (envcheck/fields.py): the tables derived from it are today's, and one entry adds a field.

The TODAY_* tables are frozen copies of what policy.py, explain.py, redact.py and fingerprint.py held
before the registry: the registry must reproduce them exactly (severity rules in first-match order,
causes in order with their texts and bounds), and redaction must give the same result.
"""
from __future__ import annotations

import ast
import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from envcheck import fields
from envcheck.compare import explain, fingerprint, policy
from envcheck.redact import IDENTIFYING_PATHS, REDACTED_PREFIX, hash_identifier, redact_fingerprint

REPO = Path(__file__).resolve().parents[1]

TODAY_SEVERITY = (
    # identity of this particular machine or process: never drift
    ("host.*", "ignore"), ("python.executable", "ignore"), ("tensorflow.threads.*", "info"),
    # the TensorFlow build itself
    ("tensorflow.version", "fail"), ("tensorflow.distribution*", "fail"), ("tensorflow.git_version", "fail"),
    ("tensorflow.compiler_version", "fail"), ("tensorflow.build_info*", "fail"),
    ("packages.tensorflow*", "fail"), ("packages.tf-nightly*", "fail"), ("packages.intel-tensorflow", "fail"),
    # GPU stack: the driver and the CUDA libraries really loaded decide; which board it is warns;
    # identifiers and where a library was found are context
    ("gpu.gpus*uuid", "ignore"), ("gpu.gpus*serial", "ignore"), ("gpu.gpus*pci_bus_id", "ignore"),
    ("gpu.gpus*index", "ignore"), ("gpu.driver_version", "fail"), ("gpu.cuda_driver_version", "fail"),
    ("gpu.gpus*name", "warn"), ("gpu.gpus*compute_capability", "warn"), ("gpu.gpus[[]*[]]", "warn"),
    ("gpu.*", "info"), ("cuda_libraries.installed*", "info"), ("cuda_libraries.loaded.*.path", "info"),
    ("cuda_libraries.loaded.libm*", "warn"), ("cuda_libraries.loaded.libstdc++*", "warn"),
    ("cuda_libraries.loaded*", "fail"), ("*cuda_version*", "fail"), ("*cudnn*", "fail"),
    ("packages.nvidia-*", "fail"), ("tensorflow.gpu_devices*", "warn"), ("tensorflow.devices*", "warn"),
    ("tensorflow.tf32", "warn"),
    # libraries and switches that move numerics a little
    ("packages.numpy", "warn"), ("numpy.version", "warn"), ("packages.keras", "warn"),
    ("packages.tf-keras", "warn"), ("tensorflow.keras*", "warn"), ("packages.protobuf", "warn"),
    ("packages.ml-dtypes", "warn"), ("tensorflow.onednn_enabled", "warn"), ("tensorflow.jit", "warn"),
    ("tensorflow.op_determinism", "warn"), ("python.version", "warn"), ("python.implementation", "warn"),
    ("cpu.missing_required_flags*", "fail"), ("cpu.tf_flags*", "warn"), ("os.glibc", "warn"),
    ("env.TF_ENABLE_ONEDNN_OPTS", "warn"), ("env.ONEDNN_*", "warn"), ("env.DNNL_*", "warn"),
    ("env.TF_SET_ONEDNN_FPMATH_MODE", "warn"), ("env.TF_XLA_FLAGS", "warn"), ("env.XLA_FLAGS", "warn"),
    ("env.TF_DETERMINISTIC_OPS", "warn"), ("env.TF_CUDNN_*", "warn"), ("env.NVIDIA_TF32_OVERRIDE", "warn"),
    ("env.TF_USE_LEGACY_KERAS", "warn"), ("env.PROTOCOL_BUFFERS_*", "warn"),
    # the TFLite runtime: which one is a fact, the op resolver (the application's kernels) warns
    ("tflite.op_resolver", "warn"), ("tflite.op_resolver_words", "ignore"), ("tflite.runtime", "info"),
    ("tflite.version", "info"), ("packages.ai-edge-litert", "info"), ("packages.tflite-runtime", "info"),
    ("tflite.*", "info"),
    # everything else is worth seeing but changes no verdict
    ("*", "info"),
)

TODAY_CAUSES = (
    (('env.TF_ENABLE_ONEDNN_OPTS', 'tensorflow.onednn_enabled'), 15, None,
     "{path} differs ({change}): oneDNN custom ops change the kernels' summation order; expect "
     'bitwise-different outputs within ~15 ULP. Since TF 2.9 oneDNN is on by default only on CPUs with '
     'avx512_vnni, avx512_bf16, avx_vnni or AMX.'),
    (('tflite.op_resolver',), None, None,
     '{path} differs ({change}): XNNPACK and the builtin or reference kernels sum in another order; expect '
     'bitwise-different tflite: outputs, a few 1e-7 absolute (measured: 2.2e-7 on the built-in edge model).'),
    (('env.ONEDNN_MAX_CPU_ISA', 'env.DNNL_MAX_CPU_ISA'), 12, None,
     '{path} differs ({change}): oneDNN dispatches to kernels for another instruction set (this is also '
     'how an older CPU is emulated); expect 0–12 ULP.'),
    (('env.ONEDNN_DEFAULT_FPMATH_MODE', 'env.TF_SET_ONEDNN_FPMATH_MODE'), None, 0.001,
     '{path} differs ({change}): oneDNN may compute float32 in reduced precision (bf16/tf32); expect '
     'relative error ~1e-3, far outside float32 noise.'),
    (('cpu.tf_flags*',), 12, None,
     "The CPU's instruction sets differ ({path}: {change}): oneDNN and Eigen select other kernels (AVX2 / "
     'AVX-512 / AMX, FMA); expect 0–12 ULP.'),
    (('cpu.missing_required_flags*',), None, None,
     'This CPU lacks instructions every TensorFlow x86 wheel needs ({path}: {change}): importing '
     'TensorFlow dies with SIGILL. Use a build for older CPUs or another machine.'),
    (('tensorflow.version', 'tensorflow.git_version', 'packages.tensorflow*', 'tensorflow.distribution*'), None, 1e-06,
     'The TensorFlow build differs ({path}: {change}): kernels and defaults change between releases; '
     "expect ~1e-6 relative, more when a default changes. Pin the image to the golden's version."),
    (('tflite.runtime', 'tflite.version', 'packages.ai-edge-litert', 'packages.tflite-runtime'), None, 1e-06,
     'The TFLite runtime differs ({path}: {change}): another runtime or release ships other kernels '
     "(XNNPACK's, FP16 paths); expect ~1e-6 relative on the tflite: outputs."),
    (('tensorflow.build_info*', 'tensorflow.compiler_version'), None, None,
     'TensorFlow was built differently ({path}: {change}): compiler, CUDA or cuDNN of the build changed.'),
    (('env.TF_XLA_FLAGS', 'env.XLA_FLAGS', 'tensorflow.jit'), 14, None,
     'XLA/JIT settings differ ({path}: {change}): fused kernels reorder arithmetic; expect ≤ ~14 ULP.'),
    (('tensorflow.tf32', 'env.NVIDIA_TF32_OVERRIDE'), None, 0.0005,
     'TF32 differs ({path}: {change}): on NVIDIA compute capability ≥ 8.0 matmul inputs are rounded to 10 '
     'mantissa bits; expect ~5e-4 relative.'),
    (('env.TF_DETERMINISTIC_OPS', 'tensorflow.op_determinism', 'env.TF_CUDNN_*'), None, None,
     'Determinism / cuDNN algorithm settings differ ({path}: {change}): on GPUs this changes algorithm '
     'choice and run-to-run variation; on CPUs it has no numeric effect.'),
    (('packages.numpy', 'numpy.version'), 4, None,
     "NumPy differs ({change}): ufuncs may differ by ≤ 4 ULP and NumPy 2's type promotion changes "
     'pre/post-processing.'),
    (('packages.keras', 'packages.tf-keras', 'tensorflow.keras*', 'env.TF_USE_LEGACY_KERAS'), None, None,
     'Keras differs ({path}: {change}): ~1e-7 per layer; Keras 3 cannot load legacy SavedModels with '
     'load_model.'),
    (('packages.protobuf', 'env.PROTOCOL_BUFFERS_*'), None, None,
     "protobuf differs ({change}): no numeric effect, but a mismatch breaks TensorFlow's import."),
    (('os.glibc',), 4, None,
     'glibc differs ({change}): libm may differ within a few ULP, mostly in NumPy-side code.'),
    (('python.version',), None, None,
     'Python differs ({change}): no numeric effect by itself; it selects other wheels.'),
)

TODAY_IDENTIFYING = ("host.hostname", "gpu.gpus[*].uuid", "gpu.gpus[*].serial", "gpu.gpus[*].pci_bus_id")
TODAY_SET_OF_RECORDS = frozenset({"tensorflow.devices", "tensorflow.gpu_devices"})


def test_default_severity_is_todays_rules_in_todays_order():
    assert policy.DEFAULT_SEVERITY == TODAY_SEVERITY


def test_causes_keep_their_order_texts_and_bounds():
    derived = [(cause.text, cause.explains_ulp, cause.explains_rel) for cause in explain.CAUSES]
    assert derived == [(text, ulp, rel) for _, ulp, rel, text in TODAY_CAUSES]


def test_causes_match_the_same_paths():
    # A cause's patterns now follow registry order; hints_for asks whether ANY of them matches a
    # difference, so only the set of patterns is observable.
    assert [set(cause.patterns) for cause in explain.CAUSES] == [set(patterns) for patterns, *_ in TODAY_CAUSES]


def test_identifying_paths_and_sets_of_records_are_todays():
    assert IDENTIFYING_PATHS == TODAY_IDENTIFYING
    assert fingerprint.SET_OF_RECORDS == TODAY_SET_OF_RECORDS


def _redact_as_before(node: Any, path: str = "") -> None:
    """Frozen copy of redact._redact before the registry: exact match on paths with [*] for indexes."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(children):
        child = f"{path}[*]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        if isinstance(value, (dict, list)):
            _redact_as_before(value, child)
        elif isinstance(value, str) and child in TODAY_IDENTIFYING and not value.startswith(REDACTED_PREFIX):
            node[key] = hash_identifier(value)


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


def _recorded_fingerprints() -> list[dict[str, Any]]:
    found = []
    for path in sorted((REPO / "fixtures" / "reports" / "recorded").glob("*.json")):
        found.extend(t["fingerprint"] for t in json.loads(path.read_text())["targets"] if t.get("fingerprint"))
    return found


@pytest.mark.parametrize("sample", [SAMPLE, *_recorded_fingerprints()], ids=lambda s: str(s.get("host", {}).get("hostname")))
def test_redaction_gives_todays_result(sample):
    expected = copy.deepcopy(sample)
    _redact_as_before(expected)
    assert redact_fingerprint(sample) == expected


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
