"""TFLite: converting the golden's SavedModel once (for `golden create --tflite`, with the reference's
TensorFlow) and running a golden's model.tflite on the golden inputs, in targets with TensorFlow (parity with
the SavedModel) and in edge targets that have only a TFLite runtime.

The runtime is the first importable of ai_edge_litert (LiteRT), tflite_runtime, tf.lite. The op resolver is
the runtime's default (with XNNPACK) unless ENVCHECK_TFLITE_RESOLVER names another, as an application on the
box would build its interpreter: `builtin` (builtin kernels, no default delegates) or `reference` (reference
kernels). The outputs go to tflite-outputs.npz; the capture's `tflite` records runtime, version and resolver.
"""
import os

from .batches import WORK_DIRS, run_batched
from .errors import ProbeFailure, first_line

TFLITE_FILE = "model.tflite"
TFLITE_OUTPUTS_FILE = "tflite-outputs.npz"
RESOLVER_VARIABLE = "ENVCHECK_TFLITE_RESOLVER"
RESOLVERS = {
    "default": ("AUTO", "the runtime's default kernels, with XNNPACK"),
    "builtin": ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "builtin kernels without default delegates (no XNNPACK)"),
    "reference": ("BUILTIN_REF", "reference kernels"),
}
SIGNATURE = "serving_default"


def bundle_has_tflite(bundle_dir):
    """Whether the golden carries a model.tflite (then every probe of it runs TFLite too)."""
    return os.path.isfile(os.path.join(bundle_dir, TFLITE_FILE))


def import_runtime():
    """(name, version, the interpreter module) of the first importable runtime; ProbeFailure when none is."""
    problems = []
    try:
        from ai_edge_litert import interpreter
        return "ai-edge-litert", _distribution_version("ai-edge-litert"), interpreter
    except ImportError as error:
        problems.append("ai_edge_litert: %s" % first_line(error))
    try:
        import tflite_runtime
        from tflite_runtime import interpreter
        return "tflite-runtime", getattr(tflite_runtime, "__version__", None), interpreter
    except ImportError as error:
        problems.append("tflite_runtime: %s" % first_line(error))
    try:
        import tensorflow as tf
        return "tensorflow-lite", tf.__version__, tf.lite
    except ImportError as error:
        problems.append("tensorflow: %s" % first_line(error))
    raise ProbeFailure("tflite-runtime-not-importable",
                       "no TFLite runtime is importable here (%s)" % "; ".join(problems))


def _distribution_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:  # noqa: BLE001 - a version is a fact to record, never a failure
        return None


def resolver_choice():
    """(name, the runtime's OpResolverType member name, words) from ENVCHECK_TFLITE_RESOLVER (default: default)."""
    name = os.environ.get(RESOLVER_VARIABLE, "default").strip().lower() or "default"
    if name not in RESOLVERS:
        raise ProbeFailure("tflite-resolver", "%s=%r: expected one of %s"
                           % (RESOLVER_VARIABLE, name, ", ".join(sorted(RESOLVERS))))
    member, words = RESOLVERS[name]
    return name, member, words


def runtime_fingerprint():
    """The TFLite runtime as the fingerprint records it (ProbeFailure when none is importable)."""
    runtime, version, _ = import_runtime()
    name, _, words = resolver_choice()
    return {"runtime": runtime, "version": version, "op_resolver": name, "op_resolver_words": words}


def run_tflite(np, bundle_dir, input_set, batch_size, out_dir, first, model_path=None):
    """The golden inputs through model.tflite in batches of the golden's batch size, the outputs written to
    tflite-outputs.npz; returns {"runtime", "version", "op_resolver", "outputs": {name: {shape, dtype}}}."""
    runtime, version, module = import_runtime()
    name, member, _ = resolver_choice()
    path = model_path or os.path.join(bundle_dir, TFLITE_FILE)
    try:
        # LiteRT and tflite_runtime name it OpResolverType; tf.lite keeps it under experimental.
        kinds = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
        resolver = getattr(kinds, member)
        interpreter = module.Interpreter(model_path=path, experimental_op_resolver_type=resolver)
        runner = interpreter.get_signature_runner(SIGNATURE)
    except Exception as error:
        raise ProbeFailure("tflite-load", "%s %s cannot load %s: %s: %s" % (
            runtime, version, os.path.basename(path), type(error).__name__, first_line(error))) from error

    def run(batch):
        try:
            return {key: np.asarray(value) for key, value in sorted(runner(**batch).items())}
        except Exception as error:
            raise ProbeFailure("tflite-run", "running model.tflite failed: %s: %s"
                               % (type(error).__name__, first_line(error))) from error

    outputs = run_batched(None, np, None, input_set, batch_size, out_dir, first, run=run, file_name=TFLITE_OUTPUTS_FILE,
                          work_dir=WORK_DIRS[1])
    return {"runtime": runtime, "version": version, "op_resolver": name,
            "outputs": {key: {"shape": list(a.shape), "dtype": str(a.dtype)} for key, a in outputs.items()}}


def convert(tf, np, model_dir, out_dir):
    """Convert the SavedModel with this TensorFlow's default settings (no optimisations, builtin ops only) into
    out_dir/model.tflite; the record of how, or {"status": "unsupported", "reason"} for a model that does not
    convert (its SavedModel golden is unaffected)."""
    settings = {"converter": "tf.lite.TFLiteConverter.from_saved_model", "tensorflow": tf.__version__,
                "optimizations": [], "supported_ops": ["TFLITE_BUILTINS"], "quantization": None}
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(model_dir)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises its own types; the reason is the point
        return {"status": "unsupported", "reason": "the model does not convert with builtin ops: %s: %s"
                % (type(error).__name__, _conversion_reason(error)), **settings}
    path = os.path.join(out_dir, TFLITE_FILE)
    with open(path, "wb") as handle:
        handle.write(flatbuffer)
    return {"status": "ok", "schema_version": schema_version(flatbuffer), **settings}


def _conversion_reason(error):
    """The converter's message is long (MLIR diagnostics): its first line that names a problem."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:  # `loc(callsite(…)): error: 'tf.X' op …`: the words after the location
            return line.rsplit("error:", 1)[1].strip()[:400]
    return (lines[0] if lines else type(error).__name__)[:400]


def schema_version(flatbuffer):
    """The TFLite schema version in the file identifier (bytes 4-8: TFL3 is schema 3); None if unreadable."""
    identifier = bytes(flatbuffer[4:8])
    return int(identifier[3:].decode("ascii")) if identifier[:3] == b"TFL" and identifier[3:].isdigit() else None


def beside_tensorflow(tf, np, bundle_dir, input_set, batch_size, out_dir, first, convert_first=False):
    """In a target with TensorFlow: the TFLite record (converting the model first for `golden create --tflite`),
    or None when there is no model.tflite to run. Never raises: a TFLite failure here is recorded
    ({"error": {kind, message}}) and leaves the SavedModel capture whole."""
    model_path = None
    record = {}
    if convert_first:
        record["conversion"] = convert(tf, np, os.path.join(bundle_dir, "model"), out_dir)
        if record["conversion"]["status"] != "ok":
            return record
        model_path = os.path.join(out_dir, TFLITE_FILE)
    elif not bundle_has_tflite(bundle_dir):
        return None
    try:
        record.update(run_tflite(np, bundle_dir, input_set, batch_size, out_dir, first, model_path))
    except ProbeFailure as failure:
        record["error"] = {"kind": failure.kind, "message": failure.message}
    return record
