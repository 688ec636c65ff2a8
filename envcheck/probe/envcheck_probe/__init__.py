"""envcheck probe: fingerprint this environment and run the golden model on the golden inputs.

These modules are packed into one zipapp (envcheck/targets/probe_app.py), which is copied into every
target (a Docker image, another interpreter) and run there:

    python probe.pyz --bundle BUNDLE_DIR --out CAPTURE_DIR [--latency-budget S]

BUNDLE_DIR holds `model/` (a SavedModel) and `inputs.npz`. CAPTURE_DIR receives `capture.json`
(schema envcheck.capture/1) and `outputs.npz`. The capture is rewritten after every stage, so when
TensorFlow kills the process (SIGILL on a CPU without AVX, an out-of-memory kill) the parent still
reads the fingerprint collected so far and the stage that died.

Rules that keep it portable: standard library only at import time (numpy and TensorFlow are
imported inside functions), and nothing newer than Python 3.8's syntax (tests/test_layering.py
parses it so); the oldest Python a test runs it on is 3.9 (tests/targets/test_probe_python39.py). The
modules import each other relatively, under a package name (`envcheck_probe`) that cannot meet the host's
own `envcheck` package in an interpreter that has envcheck installed. The host tool never imports these
modules; it packs and runs them.

One job per module:
    cli          arguments, stdout kept clean, exit without interpreter teardown
    stages       the probe's stages in order, the capture rewritten after each
    capture      the capture's constants and writing capture.json
    fingerprint  everything known without numpy or TensorFlow, assembled
    system       Python, OS (os-release, glibc, kernel) and host
    cpu          CPU model, flags TensorFlow cares about, CPU quota
    cpu_arm      arm64 CPU identity: Features/MIDR names, AT_HWCAP bits, qemu emulation
    board        the board: device-tree model, Jetson L4T/JetPack
    environment  the numerics-relevant environment variables, never a secret
    packages     installed distributions, read without importing them
    tf_fingerprint  numpy's and TensorFlow's own facts (after they are imported)
    nvml_api     the ctypes binding of libnvidia-ml: codes, structs, calls by generation
    nvml         driver and GPUs read through NVML
    smi          GPUs read through nvidia-smi, degrading field by field
    proc_driver  the kernel module's version from /proc/driver/nvidia/version
    gpu          the consolidated GPU view from the most robust source that answered
    libraries    CUDA libraries known to the linker and really loaded
    model        importing TensorFlow, loading the signature, inputs, running the model
    numpy_abi    naming the NumPy ABI mismatch behind a TensorFlow that does not import
    integrity    installed files against their RECORD sha256s, loaded libraries against dpkg's md5sums
    startup      code that runs at every interpreter start: .pth lines, sitecustomize, ld.so.preload
    latency      timing batch-1 calls after the outputs: percentiles, blocks, throughput, context
    errors       the failure the probe can name
    files        reading and atomically writing files
    kit          the on-site kit's command line: verify, probe in a child, write the tar.gz
    kit_golden   the kit's golden: kit.json, verifying and unpacking the bundle (stdlib only)
    kit_capture  the kit's capture: stamped, redacted by kit.json's rules, written as a tar.gz
"""
