"""The probe's stages in order: fingerprint, import-tensorflow, load-model, run-model, repeat-model,
measure-latency, run-tflite (when the golden has a model.tflite, or for `golden create --tflite`),
record-layers (when the golden has a layer record, or for `golden create`), and for `golden create`
calibrate. Where TensorFlow is not installed and the golden has a model.tflite, the probe is an edge box's:
fingerprint, import-tensorflow, run-tflite.

The capture is rewritten as each stage starts, so a process that dies inside one (SIGILL, an
out-of-memory kill) leaves the fingerprint so far and the name of the stage that died. The golden pass
runs in batches of the golden's batch size, its outputs streamed to disk (batches.py); the repeat, the
latency and the calibration use the first batch. Latency is
measured after the outputs are saved and the capture is "ok": nothing in it can fail the capture.
"""
import os
import time
import traceback

from .batches import first_batch_of, golden_batch_size, remove_work, run_batched
from .calibrate import apply_perturbation, calibration_record
from .capture import CAPTURE_SCHEMA, PROBE_VERSION, write_capture, write_outputs
from .errors import ProbeFailure, first_line
from .fingerprint import base_fingerprint
from .inputs import InputSet
from .latency import DEFAULT_BUDGET_S, latency_record, skipped
from .layers import LAYERS_SCHEMA, golden_has_layers, layer_record
from .libraries import loaded_libraries
from .model import import_tensorflow, load_signature, tensorflow_installed
from .repeat import repeat_record
from .tf_fingerprint import numpy_fingerprint, tensorflow_fingerprint
from .tflite import beside_tensorflow, bundle_has_tflite, run_tflite, runtime_fingerprint


def probe(bundle_dir, out_dir, latency_budget_s=DEFAULT_BUDGET_S, calibrate=False, perturb=None, max_samples=None,
          layers=None, tflite=None):
    """Run every stage on the bundle, leave the capture (and outputs) in out_dir; 0 when all ran.
    `calibrate`: also run the calibration perturbations (calibrate.py); `perturb`: this probe is one of
    them, and changes TensorFlow's configuration before the model loads; `max_samples`: run only the
    first samples of the set (a calibration child); `layers`: record the layers (layers.py): True, False, or
    None when the golden has a layer record; `tflite`: True converts the model to TFLite and runs it (golden
    create --tflite), None runs the golden's model.tflite when it has one (all an edge target, without
    TensorFlow, runs), False runs none (a calibration child)."""
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
        imported = _tensorflow_or_edge(bundle_dir)
        if isinstance(imported, str):  # an edge target: only a TFLite runtime, and the golden has a model.tflite
            edge_probe(capture, stage, bundle_dir, out_dir, imported)
            return _finish(capture, out_dir, started)
        tf, np = imported
        capture["timings"]["import_s"] = round(time.time() - began, 4)
        capture["fingerprint"]["numpy"] = numpy_fingerprint(np)
        capture["fingerprint"]["tensorflow"] = tensorflow_fingerprint(tf, capture["fingerprint"]["packages"])
        if perturb:
            apply_perturbation(tf, perturb)

        began = stage("load-model")
        # Keep the loaded model alive with the signature: its variables die with it.
        _loaded, signature = load_signature(tf, os.path.join(bundle_dir, "model"))
        input_set = InputSet(np, os.path.join(bundle_dir, "inputs.npz"), limit=max_samples)
        batch_size = golden_batch_size(bundle_dir)
        first = input_set.first(batch_size)
        capture["timings"]["load_s"] = round(time.time() - began, 4)

        began = stage("run-model")
        outputs = run_batched(tf, np, signature, input_set, batch_size, out_dir, first)
        capture["timings"]["run_s"] = round(time.time() - began, 4)
        capture["batches"] = {"samples": input_set.rows, "batch_size": batch_size or input_set.rows}
        # Now that TensorFlow has run (on the GPU, if any), see which native libraries it really loaded.
        capture["fingerprint"]["native_libraries"]["loaded"] = loaded_libraries()
        capture["outputs"] = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in outputs.items()}
        capture["status"] = "ok"
        _timed(stage, capture, "repeat-model", "determinism", lambda: repeat_record(
            tf, np, signature, first, first_batch_of(input_set, batch_size, outputs)), timing="repeat_s")
        # Written with the stage: a probe killed while timing leaves its outputs and says why no latency.
        capture["latency"] = skipped("the probe stopped while measuring latency", latency_budget_s)
        began = stage("measure-latency")
        capture["latency"] = latency_record(tf, np, signature, first, latency_budget_s)
        capture["timings"]["latency_s"] = round(time.time() - began, 4)
        if tflite or (tflite is None and bundle_has_tflite(bundle_dir)):
            _timed(stage, capture, "run-tflite", "tflite", lambda: _tflite_beside(
                capture, tf, np, bundle_dir, input_set, batch_size, out_dir, first, convert_first=bool(tflite)))
        if layers or (layers is None and golden_has_layers(bundle_dir)):
            # Written with the stage: a probe killed while recording says why it has no layer record.
            capture["layers"] = {"schema": LAYERS_SCHEMA, "status": "unsupported",
                                 "reason": "the probe stopped while recording the layers"}
            _timed(stage, capture, "record-layers", "layers", lambda: layer_record(tf, np, signature, first))
        if calibrate:
            _timed(stage, capture, "calibrate", "calibration",
                   lambda: calibration_record(tf, np, signature, first, bundle_dir, out_dir))
    except ProbeFailure as failure:
        capture["status"] = "error"
        capture["error"] = {"kind": failure.kind, "message": failure.message, "traceback": ""}
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen failure still yields a capture
        capture["status"] = "error"
        capture["error"] = {"kind": "probe-internal",
                            "message": "%s: %s" % (type(error).__name__, first_line(error)),
                            "traceback": traceback.format_exc()[-4000:]}
    return _finish(capture, out_dir, started)


def _finish(capture, out_dir, started):
    remove_work(out_dir)
    capture["timings"]["total_s"] = round(time.time() - started, 4)
    write_capture(out_dir, capture)
    return 0 if capture["status"] == "ok" else 1


def _tensorflow_or_edge(bundle_dir):
    """(tensorflow, numpy); or, where TensorFlow is not importable but the golden has a model.tflite, why not
    (the probe then runs as an edge target's)."""
    try:
        return import_tensorflow()
    except ProbeFailure as failure:
        # Only where TensorFlow is not installed at all: a broken install (a missing library, a NumPy ABI
        # mismatch) on a server is its failure, never an edge box.
        if failure.kind != "tensorflow-not-importable" or not bundle_has_tflite(bundle_dir) or tensorflow_installed():
            raise
        return "TensorFlow is not installed"


def _tflite_beside(capture, tf, np, *arguments, **options):
    """The TFLite record of a target with TensorFlow, its runtime in the fingerprint (tflite.beside_tensorflow)."""
    try:
        capture["fingerprint"]["tflite"] = runtime_fingerprint()
    except ProbeFailure as failure:
        capture["fingerprint"]["tflite"] = {"runtime": None, "error": failure.message}
    return beside_tensorflow(tf, np, *arguments, **options)


def edge_probe(capture, stage, bundle_dir, out_dir, why_no_tensorflow):
    """The probe of a target without TensorFlow: the golden's model.tflite on the golden inputs, and a
    fingerprint without a TensorFlow section (that is what an edge box is, not drift)."""
    began = stage("run-tflite")
    try:
        import numpy as np
    except ImportError as error:
        raise ProbeFailure("numpy-not-importable", "numpy is not importable here: %s" % error) from error
    capture["fingerprint"]["numpy"] = numpy_fingerprint(np)
    capture["fingerprint"]["tflite"] = runtime_fingerprint()
    capture["edge"] = {"tensorflow": why_no_tensorflow}
    input_set = InputSet(np, os.path.join(bundle_dir, "inputs.npz"))
    batch_size = golden_batch_size(bundle_dir)
    capture["tflite"] = run_tflite(np, bundle_dir, input_set, batch_size, out_dir, input_set.first(batch_size))
    write_outputs(np, out_dir, {})  # no SavedModel outputs: the TFLite ones are in tflite-outputs.npz
    capture["outputs"] = {}
    capture["timings"]["tflite_s"] = round(time.time() - began, 4)
    capture["status"] = "ok"


def _timed(stage, capture, name, field, record, timing=None):
    """Run a stage: its record under capture[field], its seconds under timings[timing or field + "_s"]."""
    began = stage(name)
    capture[field] = record()
    capture["timings"][timing or field + "_s"] = round(time.time() - began, 4)
