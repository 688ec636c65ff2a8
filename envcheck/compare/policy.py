"""The tolerance and severity policy: defaults, then the golden manifest's, then a TOML file's.

Policy file (TOML), every table optional:

    [tolerance]                 # every output: pass when |err| <= atol*max|golden| + rtol*|golden|
    atol = 1e-5
    rtol = 1e-5

    [tolerance.outputs.embedding]   # one output: e.g. accept bf16-level drift
    atol = 1e-2
    rtol = 1e-2
    classification = false          # top-1 agreement check on/off (default: auto-detect softmax)

    [severity]                  # fingerprint path glob -> fail | warn | info | ignore; first match wins
    "env.TF_ENABLE_ONEDNN_OPTS" = "fail"
    "packages.numpy" = "info"
    "finding.gpu-architecture-differs" = "warn"   # findings too, by code
"""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from envcheck.errors import PolicyError
from envcheck.model import Severity, Tolerance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# First match wins. Paths are dotted, list items as [i] (see compare/fingerprint.py).
DEFAULT_SEVERITY: tuple[tuple[str, Severity], ...] = (
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
    # everything else is worth seeing but changes no verdict
    ("*", "info"),
)
SEVERITIES = frozenset(get_args(Severity))


@dataclass(frozen=True)
class Policy:
    default_tolerance: Tolerance = Tolerance()
    output_tolerances: dict[str, Tolerance] = field(default_factory=dict)
    classification: dict[str, bool] = field(default_factory=dict)
    """Per output: force the top-1 check on or off; absent means auto-detect a probability output."""
    user_rules: tuple[tuple[str, Severity], ...] = ()
    """From the golden's manifest and --policy, consulted before the defaults."""

    def tolerance_for(self, output: str) -> Tolerance:
        return self.output_tolerances.get(output, self.default_tolerance)

    def user_severity(self, path: str) -> Severity | None:
        return _first_match(self.user_rules, path)

    def severity_for(self, path: str) -> Severity:
        return self.user_severity(path) or _first_match(DEFAULT_SEVERITY, path) or "info"


def _first_match(rules: tuple[tuple[str, Severity], ...], path: str) -> Severity | None:
    for pattern, severity in rules:
        if fnmatch.fnmatchcase(path, pattern):
            return severity
    return None


def load_policy_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PolicyError(f"{path}: not valid TOML ({error})") from None


def build_policy(*layers: dict[str, Any], source: str = "policy") -> Policy:
    """Merge policy tables (later layers win) over the defaults."""
    policy = Policy()
    for layer in layers:
        policy = _apply(policy, layer or {}, source)
    return policy


def _apply(policy: Policy, table: dict[str, Any], source: str) -> Policy:
    tolerance = table.get("tolerance", {})
    default = _tolerance(tolerance, policy.default_tolerance, f"{source}: [tolerance]")
    outputs = dict(policy.output_tolerances)
    classification = dict(policy.classification)
    for name, overrides in tolerance.get("outputs", {}).items():
        outputs[name] = _tolerance(overrides, default, f"{source}: [tolerance.outputs.{name}]")
        if "classification" in overrides:
            classification[name] = bool(overrides["classification"])
    rules = []
    for pattern, severity in table.get("severity", {}).items():
        if severity not in SEVERITIES:
            raise PolicyError(f"{source}: [severity] {pattern!r} = {severity!r}; expected one of "
                              f"{', '.join(sorted(SEVERITIES))}")
        rules.append((pattern, severity))
    return Policy(default_tolerance=default, output_tolerances=outputs, classification=classification,
                  user_rules=tuple(rules) + policy.user_rules)


def _tolerance(table: dict[str, Any], base: Tolerance, where: str) -> Tolerance:
    values = {}
    for key in ("atol", "rtol"):
        if key in table:
            value = table[key]
            if not isinstance(value, (int, float)) or value < 0:
                raise PolicyError(f"{where}: {key} must be a non-negative number, got {value!r}")
            values[key] = float(value)
    return Tolerance(atol=values.get("atol", base.atol), rtol=values.get("rtol", base.rtol))
