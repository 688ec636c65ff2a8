"""numpy's and TensorFlow's own facts, read once they are imported (the model stages import them)."""
import os

TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tensorflow-macos", "tensorflow-aarch64", "tf-nightly", "tf-nightly-cpu",
                    "intel-tensorflow")


def numpy_fingerprint(np):
    """numpy's version and the CPU features its kernels were dispatched for."""
    features = None
    for module_name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            module = __import__(module_name, fromlist=["__cpu_features__"])
            features = sorted(k for k, v in module.__cpu_features__.items() if v)
            break
        except (ImportError, AttributeError):
            continue
    return {"version": np.__version__, "cpu_features": features}


def tensorflow_fingerprint(tf, packages):
    """TensorFlow's version, build, oneDNN state, Keras, devices, threads and numerics switches."""
    def attempt(function, default=None):
        # NOTE: several of these are private or moved between releases; a missing one is a None
        # in the fingerprint, never a failed probe.
        try:
            return function()
        except Exception:  # noqa: BLE001 - any failure here means "unknown"
            return default

    def onednn_enabled():
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())

    def build_info():
        return {str(k): json_safe(v) for k, v in sorted(tf.sysconfig.get_build_info().items())}

    def devices():
        return [{"name": d.name, "type": d.device_type} for d in tf.config.list_physical_devices()]

    def gpu_devices():
        found = []
        for device in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(device)
            capability = details.get("compute_capability")
            found.append({"name": details.get("device_name", device.name),
                          "compute_capability": "%d.%d" % tuple(capability) if capability else None})
        return found

    def determinism():
        from tensorflow.python.framework import config as tf_config
        return bool(tf_config.is_op_determinism_enabled())

    legacy_keras = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    version = tf.__version__
    keras_3_default = tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (2, 16)
    return {
        "distribution": [name for name in TF_DISTRIBUTIONS if name in packages],
        "version": version,
        "git_version": attempt(lambda: tf.version.GIT_VERSION),
        "compiler_version": attempt(lambda: tf.version.COMPILER_VERSION),
        "build_info": attempt(build_info, {}),
        "onednn_enabled": attempt(onednn_enabled),
        "keras": {
            "keras": packages.get("keras"),
            "tf_keras": packages.get("tf-keras"),
            # Which Keras tf.keras resolves to, decided as TF does, without importing Keras.
            "tf_uses": "tf_keras" if (legacy_keras or not keras_3_default) else "keras3",
        },
        "devices": attempt(devices, []),
        "gpu_devices": attempt(gpu_devices, []),
        "threads": {
            "intra_op": attempt(tf.config.threading.get_intra_op_parallelism_threads),
            "inter_op": attempt(tf.config.threading.get_inter_op_parallelism_threads),
        },
        "jit": attempt(lambda: json_safe(tf.config.optimizer.get_jit())),
        "op_determinism": attempt(determinism),
        "tf32": attempt(tf.config.experimental.tensor_float_32_execution_enabled),
    }


def json_safe(value):
    """The value with anything JSON cannot hold turned into its text."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)
