"""The field registry: everything envcheck knows about a fingerprint field, in one table.

Each entry names a fingerprint path pattern and what holds for the fields it matches: the default
severity of a difference there, the hint that explains drift it causes (and how much drift that
explains), whether its value identifies a machine (hashed in shared reports) or holds file system paths
(the folder naming a person hashed there), whether a list of
records there is a set, and a label for people. The policy defaults (compare/policy.py), the causes
(compare/explain.py), redaction (redact.py) and set-ness (compare/fingerprint.py) are derived from
FIELDS; adding what envcheck knows about a field is one entry here. See docs/fields.md.

A field renamed since it was first written is read under its current name: current_fingerprint() for every
reader of a stored fingerprint (captures, goldens), current_path() for a stored path or pattern, and
comparable_libraries() so that a fingerprint of an older probe, which looked for fewer native libraries, is
compared only on what both probes looked for.

A hint may speak of one CPU architecture only (`Hint.machine`: oneDNN's x86 defaults, AVX, SIGILL; Arm's NEON,
SVE, dot-product instructions): `Architectures` of a comparison, golden and target, decides in one place which
hints speak for it, so an x86 hint never fires for an Arm box, and across architectures neither does (the
architecture itself is the cause, CROSS_ARCHITECTURE).

Path syntax: the policy file's (fnmatch globs over dotted paths, list items as `[i]`:
`gpu.gpus[0].name`), plus `[*]` for "any list index", translated once by `glob()` to the fnmatch
form `[[]*[]]`. A redacted or set-of-records entry is an exact path instead (`[*]` its only
wildcard), matched exactly. Only the standard library is imported at run time: every stage,
`envcheck --help` included, may read this table.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # envcheck.model imports numpy; a type needs nothing at run time
    from envcheck.model import Severity

ANY_INDEX = "[*]"
ANY_INDEX_GLOB = "[[]*[]]"  # fnmatch: a literal `[`, anything, a literal `]`


def glob(pattern: str) -> str:
    """A registry pattern in fnmatch form, as policy files write it: `gpu.gpus[*].uuid` -> `gpu.gpus[[]*[]].uuid`."""
    return pattern.replace(ANY_INDEX, ANY_INDEX_GLOB)


@dataclass(frozen=True)
class Hint:
    """What a difference means for the outputs, and how much drift it alone typically explains."""

    priority: int
    """Hints are listed lowest first: the likeliest cause of drift leads."""
    text: str
    """Filled with {path} and {change} from the first matching difference."""
    explains_ulp: int | None = None
    explains_rel: float | None = None
    machine: str | None = None
    """The CPU architecture it speaks of (cpu.machine: x86_64, aarch64): given only where the golden and the target
    both are one (Architectures.admits); None: any."""
    of_the_cpu: bool = False
    """It blames the target's CPU (its features, its core): under emulation that CPU is the emulator's, and the
    hint says so (Architectures.note)."""


@dataclass(frozen=True)
class Field:
    """One path pattern and what envcheck knows about the fields it matches.

    Without a severity the entry only adds knowledge (a hint, redaction, set-ness, a label): the
    severity then comes from the first entry with one that matches, as for any path.
    """

    pattern: str
    severity: Severity | None = None
    label: str = ""
    hint: Hint | tuple[Hint, ...] | None = None
    """One hint, or one per architecture (each with its own `machine`): Architectures picks the one that speaks."""
    identifying: bool = False
    """Its value names a machine (hostname, GPU UUID): hashed in anything meant to be shared."""
    set_of_records: bool = False
    """A list of records whose order means nothing (lists of scalars are sets anyway)."""
    holds_paths: bool = False
    """Its value is a file system path, or several in one string (LD_LIBRARY_PATH): in anything meant to be
    shared, the folder that names a person or a machine (`/home/alice/…`) is hashed, the rest stays readable."""

    def __post_init__(self) -> None:
        """Refuse an entry whose redaction or set-ness would match more than the one field it names."""
        # Redaction and set-ness name one field exactly, `[*]` standing for one list index: a glob
        # would also hash the reason next to a value (gpu.gpus[0].unsupported.uuid) or a nested record.
        exact = self.pattern.replace(ANY_INDEX, "") if self.identifying else self.pattern
        if (self.identifying or self.set_of_records) and any(c in exact for c in "*?["):
            raise ValueError(f"{self.pattern}: a redacted or set-of-records field is an exact path ([*] for any index)")

    @property
    def hints(self) -> tuple[Hint, ...]:
        """Its hints, none, one, or one per architecture."""
        if self.hint is None:
            return ()
        return self.hint if isinstance(self.hint, tuple) else (self.hint,)


# CPU architectures, as Linux names them (cpu.machine); other spellings of the same one (Python on Windows or
# macOS, Docker's platform names) are read as these.
X86_64 = "x86_64"
AARCH64 = "aarch64"
MACHINE_SPELLINGS = {"amd64": X86_64, "x64": X86_64, "arm64": AARCH64}
ARCHITECTURE_FIELDS = {X86_64: ("missing_required_flags",), AARCH64: ("hwcaps", "arm")}
"""The cpu fields only the probe on that architecture writes: compared only between fingerprints of it (across
architectures their absence on one side is no difference: comparable_cpus)."""


def machine(fingerprint: Any) -> str:
    """The CPU architecture a fingerprint records (cpu.machine), x86_64 where it records none: every probe before
    arm64 support ran on x86 (and a fingerprint built by hand for a test has no cpu section)."""
    cpu = fingerprint.get("cpu") if isinstance(fingerprint, dict) else None
    named = cpu.get("machine") if isinstance(cpu, dict) else None
    if not isinstance(named, str) or not named:
        return X86_64
    return MACHINE_SPELLINGS.get(named.lower(), named)


def emulator(fingerprint: Any) -> str | None:
    """What emulated the probe's CPU (cpu.emulated: "qemu" under qemu-user), None on a real CPU."""
    cpu = fingerprint.get("cpu") if isinstance(fingerprint, dict) else None
    named = cpu.get("emulated") if isinstance(cpu, dict) else None
    return named if isinstance(named, str) and named else None


@dataclass(frozen=True)
class Architectures:
    """The CPU architectures of one comparison, the golden's and the target's, and what emulated the target's CPU:
    the one place that decides which architecture's hints speak for it."""

    golden: str = X86_64
    target: str = X86_64
    emulator: str | None = None
    """cpu.emulated of the target ("qemu"): its CPU features are the emulated CPU's, not the box's."""

    @classmethod
    def of(cls, golden: Any, target: Any) -> Architectures:
        """The architectures of a golden's fingerprint and a target's."""
        return cls(machine(golden), machine(target), emulator(target))

    @property
    def crossed(self) -> bool:
        """The golden was made on another architecture than the target's: a known drift class of its own."""
        return self.golden != self.target

    def admits(self, hint_machine: str | None) -> bool:
        """Whether a hint for `hint_machine` (None: any) speaks for this comparison: an architecture's own hint only
        where both sides are that architecture (across architectures the architecture itself is the cause)."""
        return hint_machine is None or self.golden == self.target == hint_machine

    def note(self, of_the_cpu: bool) -> str:
        """What to add to a hint that blames the target's CPU when that CPU is an emulator's ("" otherwise)."""
        if not (of_the_cpu and self.emulator):
            return ""
        return (f" This target ran under {self.emulator} emulation: these are the features of the CPU {self.emulator} "
                "emulates, not of the box's own CPU.")


SAME_ARCHITECTURE = Architectures()
"""The comparison every fingerprint before arm64 support made: x86 on both sides, nothing emulated."""


def comparable_cpus(golden: dict[str, Any], target: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both fingerprints as their CPUs are compared: across architectures without the cpu fields only one
    architecture's probe writes (an x86 golden's empty missing_required_flags is no difference from an arm64
    target that has none to miss); between fingerprints of one architecture as they are."""
    golden_machine, target_machine = machine(golden), machine(target)
    if golden_machine == target_machine:
        return golden, target
    one_sided = set(ARCHITECTURE_FIELDS.get(golden_machine, ())) | set(ARCHITECTURE_FIELDS.get(target_machine, ()))
    return _without_cpu_fields(golden, one_sided), _without_cpu_fields(target, one_sided)


def _without_cpu_fields(fingerprint: dict[str, Any], names: set[str]) -> dict[str, Any]:
    cpu = fingerprint.get("cpu")
    if not isinstance(cpu, dict) or not names & set(cpu):
        return fingerprint
    return {**fingerprint, "cpu": {key: value for key, value in cpu.items() if key not in names}}


# Hints that several fields share; a hint for one field may be written in its entry.
# oneDNN and the CPU's instruction sets: measured on x86 (docs/drift.md); each has its Arm wording (`_ARM`), where
# oneDNN runs the Arm Compute Library's kernels and XNNPACK's choice hangs on other features. A field names both.
ONEDNN = Hint(10, "{path} differs ({change}): oneDNN custom ops change the kernels' summation order; "
              "expect bitwise-different outputs within ~15 ULP. Since TF 2.9 oneDNN is on by default only on CPUs "
              "with avx512_vnni, avx512_bf16, avx_vnni or AMX.", explains_ulp=15, machine=X86_64)
ONEDNN_ARM = Hint(10, "{path} differs ({change}): on Arm, TensorFlow's oneDNN path runs the Arm Compute Library's "
                  "NEON/SVE kernels instead of Eigen's, which sum in another order; expect bitwise-different outputs "
                  "at round-off level.", machine=AARCH64)
ONEDNN_ISA = Hint(20, "{path} differs ({change}): oneDNN dispatches to kernels for another instruction set "
                  "(this is also how an older CPU is emulated); expect 0–12 ULP.", explains_ulp=12, machine=X86_64)
ONEDNN_ISA_ARM = Hint(20, "{path} differs ({change}): oneDNN dispatches to kernels for another Arm instruction set "
                      "level (NEON, or SVE at another vector length); expect bitwise-different outputs at round-off "
                      "level.", machine=AARCH64)
ONEDNN_FPMATH = Hint(30, "{path} differs ({change}): oneDNN may compute float32 in reduced precision (bf16/tf32); "
                     "expect relative error ~1e-3, far outside float32 noise.", explains_rel=1e-3)
CPU_ISA = Hint(40, "The CPU's instruction sets differ ({path}: {change}): oneDNN and Eigen select other "
               "kernels (AVX2 / AVX-512 / AMX, FMA); expect 0–12 ULP.", explains_ulp=12, machine=X86_64, of_the_cpu=True)
CPU_ISA_ARM = Hint(40, "The CPU's Arm features differ ({path}: {change}): XNNPACK, the Arm Compute Library and Eigen "
                   "select kernels by them. Without the dot-product (asimddp) or int8 matrix-multiply (i8mm) "
                   "instructions XNNPACK's int8/quantized kernels take another path; SVE/SVE2, bf16 and FP16 "
                   "arithmetic (asimdhp, fphp) select other float kernels. Expect bitwise-different outputs at "
                   "round-off level for a float model.", machine=AARCH64, of_the_cpu=True)
ARM_CORE = Hint(42, "The Arm CPU core differs ({path}: {change}): another core design (implementer, part, revision); "
                "XNNPACK and the Arm Compute Library pick micro-kernels and blockings per core (its vector width, its "
                "caches), which sum in another order. Expect bitwise-different outputs at round-off level.",
                machine=AARCH64, of_the_cpu=True)
CROSS_ARCHITECTURE = Hint(0, "The CPU architecture differs ({path}: {change}): another instruction set runs other SIMD "
                          "kernels, other XNNPACK, oneDNN or Arm Compute Library paths, another libm and other FMA "
                          "contraction, so the outputs are bitwise different within "
                          "bounded noise; this one cause explains the CPU differences. The golden's calibration cannot "
                          "model another ISA: its noise band was measured on the golden's architecture.")
"""Given by compare/explain.py whenever the architectures differ (cpu.machine is info: the cross-architecture
finding decides)."""
JETSON = Hint(75, "The Jetson's L4T/JetPack differs ({path}: {change}): another release ships another CUDA, cuDNN "
              "and TensorRT stack; expect GPU outputs to move as with any CUDA or cuDNN change (round-off level, "
              "more where TF32 or another algorithm is chosen).")
TF_RELEASE = Hint(60, "The TensorFlow build differs ({path}: {change}): kernels and defaults change between "
                  "releases; expect ~1e-6 relative, more when a default changes. Pin the image to the golden's version.",
                  explains_rel=1e-6)
TF_BUILD = Hint(70, "TensorFlow was built differently ({path}: {change}): compiler, CUDA or cuDNN of the build "
                "changed.")
XLA = Hint(80, "XLA/JIT settings differ ({path}: {change}): fused kernels reorder arithmetic; expect ≤ ~14 ULP.",
           explains_ulp=14)
TF32 = Hint(90, "TF32 differs ({path}: {change}): on NVIDIA compute capability ≥ 8.0 matmul inputs are "
            "rounded to 10 mantissa bits; expect ~5e-4 relative.", explains_rel=5e-4)
DETERMINISM = Hint(100, "Determinism / cuDNN algorithm settings differ ({path}: {change}): on GPUs this changes "
                   "algorithm choice and run-to-run variation; on CPUs it has no numeric effect.")
NUMPY = Hint(110, "NumPy differs ({change}): ufuncs may differ by ≤ 4 ULP and NumPy 2's type promotion "
             "changes pre/post-processing.", explains_ulp=4)
KERAS = Hint(120, "Keras differs ({path}: {change}): ~1e-7 per layer; Keras 3 cannot load legacy "
             "SavedModels with load_model.")
TFLITE_RUNTIME = Hint(65, "The TFLite runtime differs ({path}: {change}): another runtime or release ships other "
                      "kernels (XNNPACK's, FP16 paths); expect ~1e-6 relative on the tflite: outputs.", explains_rel=1e-6)
TFLITE_RESOLVER = Hint(15, "{path} differs ({change}): XNNPACK and the builtin or reference kernels sum in another "
                       "order; expect bitwise-different tflite: outputs, a few 1e-7 absolute (measured: 2.2e-7 on the "
                       "built-in edge model).")
NATIVE_NUMERICS = Hint(45, "{path} differs ({change}): another OpenMP runtime, oneDNN or BLAS build splits and "
                       "orders sums differently (threads, blocking, vector kernels); expect bitwise-different outputs "
                       "at round-off level.")
TRANSPORT = Hint(140, "{path} differs ({change}): the endpoint writes its JSON answers with fewer than the 9 significant "
                 "digits that name any float32 (endpoint.transport.outputs.*.max_digits): up to about 1 ULP per value "
                 "(more at 6 digits) may be the transport's, not the model's (docs/endpoints.md).", explains_ulp=1)
PROTOBUF = Hint(130, "protobuf differs ({change}): no numeric effect, but a mismatch breaks TensorFlow's import.")

# Severity: first entry with a severity that matches wins, so specific patterns come before broad
# ones and `*` stays last. Hints: every hint with a matching entry, in priority order.
FIELDS: tuple[Field, ...] = (
    # identity of this particular machine or process: never drift
    Field("host.hostname", label="hostname", identifying=True),
    Field("host.*", "ignore"),
    Field("python.executable", "ignore", label="Python interpreter"),
    Field("tensorflow.threads.*", "info"),
    # the TensorFlow build itself
    Field("tensorflow.version", "fail", label="TensorFlow version", hint=TF_RELEASE),
    Field("tensorflow.distribution*", "fail", hint=TF_RELEASE),
    Field("tensorflow.git_version", "fail", hint=TF_RELEASE),
    Field("tensorflow.compiler_version", "fail", hint=TF_BUILD),
    Field("tensorflow.build_info*", "fail", label="TensorFlow build", hint=TF_BUILD),
    Field("packages.tensorflow*", "fail", hint=TF_RELEASE),
    Field("packages.tf-nightly*", "fail"),
    Field("packages.intel-tensorflow", "fail"),
    # A serving endpoint (targets/endpoint.py) tells what a black box can: its signature and version decide; the
    # transport's rounding warns (it is not the model's drift); its platform and server strings are context.
    Field("endpoint.signature*", "fail", label="served signature"),
    Field("endpoint.model_version", "fail", label="served model version"),
    Field("endpoint.transport.lossless", "warn", label="float32 carried losslessly", hint=TRANSPORT),
    Field("endpoint.*", "info"),
    # GPU stack: the driver and the CUDA libraries really loaded decide; which board it is warns;
    # identifiers and where a library was found are context. The `*uuid`-style globs are broad on
    # purpose: they also silence why a value is missing (gpu.gpus[0].unsupported.uuid), which the
    # `[*]` entries, hashing only the value itself, leave readable.
    Field("gpu.gpus*uuid", "ignore"),
    Field("gpu.gpus[*].uuid", label="GPU UUID", identifying=True),
    Field("gpu.gpus*serial", "ignore"),
    Field("gpu.gpus[*].serial", label="GPU serial number", identifying=True),
    Field("gpu.gpus*pci_bus_id", "ignore"),
    Field("gpu.gpus[*].pci_bus_id", label="GPU PCI bus id", identifying=True),
    Field("gpu.gpus*index", "ignore"),
    Field("gpu.driver_version", "fail", label="NVIDIA driver"),
    Field("gpu.cuda_driver_version", "fail", label="CUDA driver API"),
    Field("gpu.gpus*name", "warn", label="GPU model"),
    Field("gpu.gpus*compute_capability", "warn", label="GPU compute capability"),
    Field("gpu.gpus[*]", "warn", label="GPU"),
    Field("gpu.*", "info"),
    # Native libraries (the probe's libraries.py): another OpenMP runtime, oneDNN or BLAS build changes float
    # results, so its version warns; where a library was found is context. The libm* entry comes after the
    # libmkl*/libmkldnn* ones, which it would also match; what is left under loaded is CUDA's.
    Field("native_libraries.installed*", "info"),
    Field("native_libraries.loaded.*.path", "info", holds_paths=True),
    Field("native_libraries.loaded.libgomp*", "warn", label="OpenMP runtime", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libiomp5*", "warn", label="OpenMP runtime", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libdnnl*", "warn", label="oneDNN library", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libmkldnn*", "warn", label="oneDNN library", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libopenblas*", "warn", label="BLAS library", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libscipy_openblas*", "warn", label="BLAS library", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libmkl_rt*", "warn", label="BLAS library", hint=NATIVE_NUMERICS),
    Field("native_libraries.loaded.libtensorflow*", "warn", label="TensorFlow library", hint=TF_BUILD),
    Field("native_libraries.loaded.libm*", "warn", label="C math library"),
    Field("native_libraries.loaded.libstdc++*", "warn", label="C++ runtime"),
    Field("native_libraries.loaded*", "fail", label="CUDA library loaded"),
    # Debian packages (the probe's debian.py, listed for the SBOM): context, never a verdict. What a package
    # changes in numerics is judged where it acts, on the libraries really loaded (native_libraries above,
    # os.glibc); an installed package the model never loads changes nothing. Before `*cudnn*`, which would
    # otherwise fail a mere `libcudnn9-cuda-12` package list entry.
    Field("debian_packages*", "info", label="Debian packages"),
    Field("*cuda_version*", "fail"),
    Field("*cudnn*", "fail"),
    Field("packages.nvidia-*", "fail"),
    # the same device found in another order is no drift
    Field("tensorflow.gpu_devices", set_of_records=True),
    Field("tensorflow.gpu_devices*", "warn", label="TensorFlow GPU devices"),
    Field("tensorflow.devices", set_of_records=True),
    Field("tensorflow.devices*", "warn", label="TensorFlow devices"),
    Field("tensorflow.tf32", "warn", label="TF32", hint=TF32),
    # libraries and switches that move numerics a little
    Field("packages.numpy", "warn", hint=NUMPY),
    Field("numpy.version", "warn", label="NumPy version", hint=NUMPY),
    Field("packages.keras", "warn", hint=KERAS),
    Field("packages.tf-keras", "warn", hint=KERAS),
    Field("tensorflow.keras*", "warn", hint=KERAS),
    Field("packages.protobuf", "warn", hint=PROTOBUF),
    Field("packages.ml-dtypes", "warn"),
    Field("tensorflow.onednn_enabled", "warn", label="oneDNN enabled", hint=(ONEDNN, ONEDNN_ARM)),
    Field("tensorflow.jit", "warn", label="XLA JIT", hint=XLA),
    Field("tensorflow.op_determinism", "warn", label="op determinism", hint=DETERMINISM),
    Field("python.version", "warn", label="Python version",
          hint=Hint(150, "Python differs ({change}): no numeric effect by itself; it selects other wheels.")),
    Field("python.implementation", "warn"),
    Field("cpu.missing_required_flags*", "fail", label="CPU instructions TensorFlow needs",
          hint=Hint(50, "This CPU lacks instructions every TensorFlow x86 wheel needs ({path}: {change}): importing "
                    "TensorFlow dies with SIGILL. Use a build for older CPUs or another machine.", machine=X86_64)),
    Field("cpu.tf_flags*", "warn", label="CPU instruction sets", hint=(CPU_ISA, CPU_ISA_ARM)),
    # The CPU's whole feature list and, on arm64, the kernel's hwcaps: the same knowledge as tf_flags, all of it,
    # so context (tf_flags decides). Which architecture, and whether emulated: the findings decide
    # (cross-architecture, emulated in compare/findings.py), so that the cause is named once.
    Field("cpu.flags*", "info", label="CPU flags", hint=(CPU_ISA, CPU_ISA_ARM)),
    Field("cpu.hwcaps*", "info", label="CPU hwcaps (AT_HWCAP)", hint=(CPU_ISA, CPU_ISA_ARM)),
    Field("cpu.arm*", "warn", label="Arm CPU core", hint=ARM_CORE),
    Field("cpu.machine", "info", label="CPU architecture"),
    Field("cpu.emulated", "info", label="CPU emulated by"),
    Field("cpu.page_size", "info", label="memory page size"),
    # The board (a Raspberry Pi, a Jetson): which model it is, context; a Jetson's software release decides its
    # CUDA stack.
    Field("board.jetson.board", "info", label="Jetson board"),
    Field("board.jetson*", "warn", label="Jetson L4T/JetPack", hint=JETSON),
    Field("board*", "info", label="board"),
    Field("os.glibc", "warn", label="glibc",
          hint=Hint(140, "glibc differs ({change}): libm may differ within a few ULP, mostly in NumPy-side code.",
                    explains_ulp=4)),
    Field("env.TF_ENABLE_ONEDNN_OPTS", "warn", hint=(ONEDNN, ONEDNN_ARM)),
    Field("env.ONEDNN_MAX_CPU_ISA", hint=(ONEDNN_ISA, ONEDNN_ISA_ARM)),
    Field("env.ONEDNN_DEFAULT_FPMATH_MODE", hint=ONEDNN_FPMATH),
    Field("env.ONEDNN_*", "warn"),
    Field("env.DNNL_MAX_CPU_ISA", hint=(ONEDNN_ISA, ONEDNN_ISA_ARM)),
    Field("env.DNNL_*", "warn"),
    Field("env.TF_SET_ONEDNN_FPMATH_MODE", "warn", hint=ONEDNN_FPMATH),
    Field("env.TF_XLA_FLAGS", "warn", hint=XLA),
    Field("env.XLA_FLAGS", "warn", hint=XLA),
    Field("env.TF_DETERMINISTIC_OPS", "warn", hint=DETERMINISM),
    Field("env.TF_CUDNN_*", "warn", hint=DETERMINISM),
    Field("env.NVIDIA_TF32_OVERRIDE", "warn", hint=TF32),
    Field("env.TF_USE_LEGACY_KERAS", "warn", hint=KERAS),
    Field("env.PROTOCOL_BUFFERS_*", "warn", hint=PROTOBUF),
    # the TFLite runtime (a golden with model.tflite): which one runs is a fact, how it computes is judged by
    # the tflite: outputs; the op resolver is the application's choice of kernels
    Field("tflite.op_resolver", "warn", label="TFLite op resolver", hint=TFLITE_RESOLVER),
    Field("tflite.op_resolver_words", "ignore"),
    Field("tflite.runtime", "info", label="TFLite runtime", hint=TFLITE_RUNTIME),
    Field("tflite.version", "info", label="TFLite runtime version", hint=TFLITE_RUNTIME),
    Field("packages.ai-edge-litert", "info", hint=TFLITE_RUNTIME),
    Field("packages.tflite-runtime", "info", hint=TFLITE_RUNTIME),
    Field("tflite.*", "info"),
    # Where a file lies may name its owner (a virtual environment in /home/alice): that folder is hashed in
    # shared reports (redact.py), so that the same file still compares equal and its name stays readable.
    Field("integrity.system.modified[*]", holds_paths=True),
    Field("integrity.system.unowned[*]", holds_paths=True),
    Field("integrity.startup.pth[*].path", holds_paths=True),
    Field("integrity.startup.sitecustomize.path", holds_paths=True),
    Field("integrity.startup.usercustomize.path", holds_paths=True),
    Field("integrity.startup.ld_so_preload[*].path", holds_paths=True),
    Field("integrity.startup.ld_preload[*].path", holds_paths=True),
    Field("integrity.startup.pythonstartup.path", holds_paths=True),
    Field("integrity.startup.pythonpath[*]", holds_paths=True),
    Field("integrity.error", holds_paths=True),  # the check's own failure may quote a path
    Field("env.LD_PRELOAD", holds_paths=True),
    Field("env.LD_LIBRARY_PATH", holds_paths=True),
    # Installed-file integrity and start-up code (the probe's integrity.py and startup.py): the findings decide
    # (INTEGRITY_FINDINGS below), so that a file is named once; the section itself is context, sets of records
    # where its order means nothing.
    Field("integrity.startup.pth", set_of_records=True),
    Field("integrity.startup.ld_so_preload", set_of_records=True),
    Field("integrity.startup.ld_preload", set_of_records=True),
    # Recorded, not compared: a test runner's or CI job's own entries are the common case (a policy may raise it).
    Field("integrity.startup.pythonpath*", "ignore", label="PYTHONPATH"),
    Field("integrity*", "info", label="installed-file integrity"),
    # everything else is worth seeing but changes no verdict
    Field("*", "info"),
)

# The findings about installed files and start-up code (compare/findings.py), their default severity by
# `code:distribution` (first match wins): a file changed after install inside TensorFlow or NumPy fails, any
# other warns. A policy's `finding.<code>` rule replaces it (compare/severity.py); docs/integrity.md.
INTEGRITY_FINDINGS: tuple[tuple[str, Severity], ...] = (
    ("installed-file-modified:tensorflow*", "fail"),
    ("installed-file-modified:tf-nightly*", "fail"),
    ("installed-file-modified:intel-tensorflow", "fail"),
    ("installed-file-modified:numpy", "fail"),
    ("*", "warn"),
)
INTEGRITY_CODES = ("installed-file-modified", "installed-file-missing", "installed-file-unowned",
                   "system-library-modified", "system-library-unowned", "startup-code")
"""Every code of these findings (compare/findings.py; the review's `integrity_findings` column)."""


def integrity_finding_severity(code: str, distribution: str = "") -> Severity:
    """The default severity of an integrity finding (`installed-file-modified` in `tensorflow-cpu`: fail)."""
    where = f"{code}:{distribution}"
    return next(severity for pattern, severity in INTEGRITY_FINDINGS if fnmatch.fnmatchcase(where, pattern))


def severity_rules(fields: tuple[Field, ...] = FIELDS) -> tuple[tuple[str, Severity], ...]:
    """(glob, severity) in registry order, for first-match lookup: compare/policy.py's defaults."""
    return tuple((glob(f.pattern), f.severity) for f in fields if f.severity is not None)


def hint_table(fields: tuple[Field, ...] = FIELDS) -> tuple[tuple[Hint, tuple[str, ...]], ...]:
    """Each hint once, lowest priority first, with the globs of its entries in registry order."""
    globs: dict[Hint, list[str]] = {}
    for f in fields:
        for hint in f.hints:
            globs.setdefault(hint, []).append(glob(f.pattern))
    return tuple((hint, tuple(globs[hint])) for hint in sorted(globs, key=lambda hint: hint.priority))


def identifying_paths(fields: tuple[Field, ...] = FIELDS) -> tuple[str, ...]:
    """The exact paths (`[*]` for any index) of values to hash before a fingerprint is shared: redact.py."""
    return tuple(f.pattern for f in fields if f.identifying)


def path_fields(fields: tuple[Field, ...] = FIELDS) -> tuple[str, ...]:
    """The globs (fnmatch form) of values holding file system paths, whose folder naming a person or a machine
    is hashed before a fingerprint is shared: redact.py."""
    return tuple(glob(f.pattern) for f in fields if f.holds_paths)


def set_of_records_paths(fields: tuple[Field, ...] = FIELDS) -> frozenset[str]:
    """The exact paths of lists of records compared as sets: compare/fingerprint.py."""
    return frozenset(f.pattern for f in fields if f.set_of_records)


def label_for(path: str, fields: tuple[Field, ...] = FIELDS) -> str:
    """The label of the first labelled entry that matches `path`, or the path itself."""
    return next((f.label for f in fields if f.label and fnmatch.fnmatchcase(path, glob(f.pattern))), path)


# Fingerprints written before the native-libraries section had its name: `cuda_libraries`, whose entries had no
# kind, from a probe that looked for these kinds only (the probe's libraries.py names them the same way).
LIBRARIES = "native_libraries"
LEGACY_LIBRARIES = "cuda_libraries"
LEGACY_SEARCHED_KINDS = ("c++-runtime", "cuda", "math")


def current_fingerprint(fingerprint: Any) -> Any:
    """`fingerprint` as the current probe writes it, for every reader of a stored one (capture.py, golden.py):
    an older probe's `cuda_libraries` becomes `native_libraries`, saying which kinds that probe looked for.
    A fingerprint without the old section is returned as it is (a section of both names keeps the current one)."""
    if not isinstance(fingerprint, dict) or LEGACY_LIBRARIES not in fingerprint:
        return fingerprint
    current = {key: value for key, value in fingerprint.items() if key != LEGACY_LIBRARIES}
    old = fingerprint[LEGACY_LIBRARIES]
    if isinstance(old, dict):
        old = {"searched_kinds": list(LEGACY_SEARCHED_KINDS), **old}
    current.setdefault(LIBRARIES, old)
    return current


def current_path(path: str) -> str:
    """A fingerprint path or pattern as the current probe names it: `cuda_libraries.loaded.libm` ->
    `native_libraries.loaded.libm` (a stored report's difference, an older policy's rule)."""
    rest = path[len(LEGACY_LIBRARIES):]
    if path.startswith(LEGACY_LIBRARIES) and rest[:1] in ("", ".", "*", "?", "["):
        return LIBRARIES + rest
    return path


def comparable_libraries(golden: dict[str, Any], target: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both fingerprints as their libraries are compared: only the loaded libraries of kinds both probes looked
    for (a golden of an older probe never looked for BLAS, OpenMP or oneDNN: their presence in a newer capture
    is no difference), and without the kinds and searched_kinds themselves, which say how envcheck files a
    library, not what the environment is."""
    golden_kinds, target_kinds = _searched_kinds(golden), _searched_kinds(target)
    if golden_kinds is None or target_kinds is None:
        return golden, target
    both = golden_kinds & target_kinds
    return _libraries_of_kinds(golden, both), _libraries_of_kinds(target, both)


def _searched_kinds(fingerprint: dict[str, Any]) -> set[str] | None:
    """The kinds its probe looked for; None without a section that says (a capture's is not trusted to be well formed)."""
    section = fingerprint.get(LIBRARIES) if isinstance(fingerprint, dict) else None
    kinds = section.get("searched_kinds") if isinstance(section, dict) else None
    return {kind for kind in kinds if isinstance(kind, str)} if isinstance(kinds, list) else None


def _libraries_of_kinds(fingerprint: dict[str, Any], kinds: set[str]) -> dict[str, Any]:
    section = {key: value for key, value in fingerprint[LIBRARIES].items() if key != "searched_kinds"}
    loaded = section.get("loaded")
    if isinstance(loaded, dict):
        section["loaded"] = {name: _without_kind(entry) for name, entry in loaded.items() if _of_kinds(entry, kinds)}
    return {**fingerprint, LIBRARIES: section}


def _of_kinds(entry: Any, kinds: set[str]) -> bool:
    """An entry without a kind is an older probe's, found by looking for a kind it searched: kept."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    return kind is None or (isinstance(kind, str) and kind in kinds)


def _without_kind(entry: Any) -> Any:
    return {key: value for key, value in entry.items() if key != "kind"} if isinstance(entry, dict) else entry
