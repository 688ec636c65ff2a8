"""The environment variables that change numerics or library loading, never one that looks secret."""

# Environment variables that change numerics or library loading (see docs/drift.md).
ENV_PREFIXES = ("TF_", "ONEDNN_", "DNNL_", "OMP_", "KMP_", "MKL_", "CUDA_", "NVIDIA_", "NCCL_",
                "CUBLAS_", "CUDNN_", "XLA_", "TF32", "OPENBLAS_", "PROTOCOL_BUFFERS_")
ENV_NAMES = ("PYTHONHASHSEED", "LD_LIBRARY_PATH", "LD_PRELOAD", "KERAS_BACKEND")
# Terraform shares the TF_ prefix; its variables say nothing about TensorFlow.
ENV_EXCLUDED_PREFIXES = ("TF_VAR_", "TF_CLI_", "TF_LOG", "TF_IN_AUTOMATION", "TF_INPUT", "TF_WORKSPACE",
                         "TF_DATA_DIR", "TF_PLUGIN_", "TF_REGISTRY_")
# A name containing any of these is never recorded, whatever its prefix.
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")


def is_secret_name(name):
    """True when the variable's name suggests it holds a secret."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def allowed_environment(environ):
    """Numerics-relevant variables by prefix allowlist, never one whose name looks secret."""
    picked = {}
    for name, value in environ.items():
        if is_secret_name(name) or name.startswith(ENV_EXCLUDED_PREFIXES):
            continue
        if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
            picked[name] = value
    return dict(sorted(picked.items()))
