"""The model stages' TensorFlow work: importing it, loading the golden signature, generating inputs for
it, running it (inputs.py reads the golden's)."""
import os
import sys

from .errors import ProbeFailure, first_line
from .numpy_abi import KeptStderr, exception_text, numpy_abi_mismatch


def import_tensorflow():
    """(tensorflow, numpy), or the ProbeFailure that names which one is missing here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with KeptStderr(sys.stderr) as printed:
            import tensorflow as tf
    except Exception as error:  # whatever `import tensorflow` raises is the target's install failing, not the probe
        raise ProbeFailure("tensorflow-not-importable", tensorflow_import_failure(error, printed.text())) from error
    try:
        import numpy as np
    except ImportError as error:
        raise ProbeFailure("numpy-not-importable",
                           "numpy is not importable in %s: %s" % (sys.executable, error)) from error
    return tf, np


def tensorflow_import_failure(error, printed):
    """Why `import tensorflow` failed: where NumPy's C-API refused TensorFlow's compiled modules, the NumPy ABI
    at fault first, then the exception's first line; otherwise the exception (its type too unless an
    ImportError, the usual case). `printed`: what the import wrote to stderr."""
    mismatch = numpy_abi_mismatch(exception_text(error) + "\n" + printed)
    raised = "%s: %s" % (type(error).__name__, first_line(error))
    if mismatch is not None:
        # TensorFlow often fails on something else once NumPy refused it: name that too.
        also = "" if raised in mismatch else " (the import then raised %s)" % raised
        return "TensorFlow is not importable in %s: %s%s" % (sys.executable, mismatch, also)
    said = str(error) if isinstance(error, ImportError) else raised
    return "TensorFlow is not importable in %s: %s" % (sys.executable, said)


def tensorflow_installed():
    """Whether a `tensorflow` package is there at all, importable or not."""
    import importlib.util
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def load_signature(tf, model_dir):
    """(the loaded SavedModel, its serving_default signature), or a model-load ProbeFailure."""
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as error:  # TF raises many types for an unloadable model
        raise ProbeFailure("model-load", "TensorFlow %s cannot load the golden model: %s: %s"
                           % (tf.__version__, type(error).__name__, first_line(error))) from error
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ProbeFailure("model-load", "the SavedModel has no 'serving_default' signature (has: %s)"
                           % (", ".join(sorted(signatures)) or "none"))
    # Keep `loaded` alive with the signature: its variables die with it.
    return loaded, signatures["serving_default"]


def run_signature(tf, np, signature, inputs):
    """The signature's outputs as numpy arrays, by name, after checking the inputs against it."""
    feeds = signature_feeds(tf, np, signature, inputs)
    try:
        return call_signature(signature, feeds)
    except Exception as error:  # whatever the model raises is its failure
        raise ProbeFailure("model-run", "running the model failed: %s: %s"
                           % (type(error).__name__, first_line(error))) from error


def call_signature(signature, feeds):
    """One call of the signature: every output brought back to the host as a numpy array, by name."""
    return {name: tensor.numpy() for name, tensor in sorted(signature(**feeds).items())}


def signature_feeds(tf, np, signature, inputs):
    """The inputs as the signature's tensors, by name, after checking them against it."""
    specs = signature.structured_input_signature[1]
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ProbeFailure("inputs", "inputs.npz lacks signature input(s): %s" % ", ".join(missing))
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise ProbeFailure("inputs", "inputs.npz has input(s) the signature does not take: %s (it takes: %s)"
                           % (", ".join(unknown), ", ".join(sorted(specs))))
    feeds = {}
    for name, spec in specs.items():
        array = inputs[name]
        if spec.dtype == tf.string and array.dtype.kind in "US":
            array = np.char.encode(array, "utf-8") if array.dtype.kind == "U" else array
        elif array.dtype != np.dtype(spec.dtype.as_numpy_dtype):
            raise ProbeFailure("inputs", "input %r is %s but the signature wants %s"
                               % (name, array.dtype, spec.dtype.name))
        if not spec.shape.is_compatible_with(array.shape):
            raise ProbeFailure("inputs", "input %r has shape %s but the signature wants %s"
                               % (name, list(array.shape), spec.shape.as_list() if spec.shape.rank is not None
                                  else "any"))
        feeds[name] = tf.constant(array)
    return feeds


# Float rows that end a generated set of at least EDGE_MIN samples: zeros, a constant +3 and -3 (the edges of
# a standardised input's range) and wide noise (sigma 5), where kernels' rounding and saturation differ most.
EDGE_ROWS = ("zeros", "plus", "minus", "wide")
EDGE_MIN = 8


def make_inputs(tf, np, signature, samples, seed):
    """A seeded input set of `samples` rows from the signature's shapes and dtypes (for a model without
    inputs): standard-normal floats (a standardised input's range) and small integers, the last rows of a
    set of at least EDGE_MIN samples being the EDGE_ROWS."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, spec in sorted(signature.structured_input_signature[1].items()):
        dims = spec.shape.as_list() if spec.shape.rank is not None else [None]
        shape = [samples if i == 0 and d is None else (d if d is not None else 8) for i, d in enumerate(dims)]
        dtype = np.dtype(spec.dtype.as_numpy_dtype)
        if dtype.kind == "f":
            values = rng.normal(0.0, 1.0, shape).astype(dtype)
            if len(shape) > 1 and shape[0] >= EDGE_MIN:
                edges = values[-len(EDGE_ROWS):]
                edges[0], edges[1], edges[2] = 0, 3, -3
                edges[3] = rng.normal(0.0, 5.0, edges[3].shape)
            inputs[name] = values
        elif dtype.kind in "iu":
            inputs[name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[name] = rng.random(shape) < 0.5
        else:
            raise ProbeFailure("inputs", "cannot generate inputs of dtype %s for %r; pass --inputs"
                               % (dtype, name))
    return inputs
