"""The probe's stages in order: fingerprint, import-tensorflow, load-model, run-model, repeat-model,
measure-latency, and for `golden create` calibrate.

The capture is rewritten as each stage starts, so a process that dies inside one (SIGILL, an
out-of-memory kill) leaves the fingerprint so far and the name of the stage that died. Latency is
measured after the outputs are saved and the capture is "ok": nothing in it can fail the capture.
"""
import os
import time
import traceback

from .calibrate import apply_perturbation, calibration_record
from .capture import CAPTURE_SCHEMA, PROBE_VERSION, write_capture, write_outputs
from .errors import ProbeFailure, first_line
from .fingerprint import base_fingerprint
from .latency import DEFAULT_BUDGET_S, latency_record, skipped
from .libraries import loaded_libraries
from .model import import_tensorflow, load_signature, read_inputs, run_signature
from .repeat import repeat_record
from .tf_fingerprint import numpy_fingerprint, tensorflow_fingerprint


def probe(bundle_dir, out_dir, latency_budget_s=DEFAULT_BUDGET_S, calibrate=False, perturb=None):
    """Run every stage on the bundle, leave the capture (and outputs) in out_dir; 0 when all ran.
    `calibrate`: also run the calibration perturbations (calibrate.py); `perturb`: this probe is one of
    them, and changes TensorFlow's configuration before the model loads."""
    started = time.time()
    capture = {
        "schema": CAPTURE_SCHEMA,
        "probe_version": PROBE_VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "status": "running",
        "stage": "fingerprint",
        "fingerprint": base_fingerprint(),
        "timings": {},
        "outputs": {},
        "error": None,
    }
    write_capture(out_dir, capture)

    def stage(name):
        capture["stage"] = name
        write_capture(out_dir, capture)
        return time.time()

    try:
        began = stage("import-tensorflow")
        tf, np = import_tensorflow()
        capture["timings"]["import_s"] = round(time.time() - began, 4)
        capture["fingerprint"]["numpy"] = numpy_fingerprint(np)
        capture["fingerprint"]["tensorflow"] = tensorflow_fingerprint(tf, capture["fingerprint"]["packages"])
        if perturb:
            apply_perturbation(tf, perturb)

        began = stage("load-model")
        # Keep the loaded model alive with the signature: its variables die with it.
        _loaded, signature = load_signature(tf, os.path.join(bundle_dir, "model"))
        inputs = read_inputs(np, os.path.join(bundle_dir, "inputs.npz"))
        capture["timings"]["load_s"] = round(time.time() - began, 4)

        began = stage("run-model")
        outputs = run_signature(tf, np, signature, inputs)
        capture["timings"]["run_s"] = round(time.time() - began, 4)
        # Now that TensorFlow has touched the GPU (if any), see which CUDA libraries it really loaded.
        capture["fingerprint"]["cuda_libraries"]["loaded"] = loaded_libraries()
        write_outputs(np, out_dir, outputs)
        capture["outputs"] = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in outputs.items()}
        capture["status"] = "ok"
        began = stage("repeat-model")
        capture["determinism"] = repeat_record(tf, np, signature, inputs, outputs)
        capture["timings"]["repeat_s"] = round(time.time() - began, 4)
        # Written with the stage: a probe killed while timing leaves its outputs and says why no latency.
        capture["latency"] = skipped("the probe stopped while measuring latency", latency_budget_s)
        began = stage("measure-latency")
        capture["latency"] = latency_record(tf, np, signature, inputs, latency_budget_s)
        capture["timings"]["latency_s"] = round(time.time() - began, 4)
        if calibrate:
            began = stage("calibrate")
            capture["calibration"] = calibration_record(tf, np, signature, inputs, bundle_dir, out_dir)
            capture["timings"]["calibrate_s"] = round(time.time() - began, 4)
    except ProbeFailure as failure:
        capture["status"] = "error"
        capture["error"] = {"kind": failure.kind, "message": failure.message, "traceback": ""}
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen failure still yields a capture
        capture["status"] = "error"
        capture["error"] = {"kind": "probe-internal",
                            "message": "%s: %s" % (type(error).__name__, first_line(error)),
                            "traceback": traceback.format_exc()[-4000:]}
    capture["timings"]["total_s"] = round(time.time() - started, 4)
    write_capture(out_dir, capture)
    return 0 if capture["status"] == "ok" else 1
