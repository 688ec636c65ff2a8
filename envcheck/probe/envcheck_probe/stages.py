"""The probe's stages in order: fingerprint, import-tensorflow, load-model, run-model, check-integrity (unless
`--integrity off`; begun beside the import, see IntegrityCheck), repeat-model, measure-latency, run-tflite (when
the golden has a model.tflite, or for `golden create --tflite`), record-layers (by default when the golden has a
layer record and an output is not bitwise the golden's, see layers.py; always for `golden create`), and for
`golden create` calibrate. Where TensorFlow is not installed and the
golden has a model.tflite, the probe is an edge box's: fingerprint, import-tensorflow, run-tflite, check-integrity.

The capture is rewritten as each stage starts, so a process that dies inside one (SIGILL, an
out-of-memory kill) leaves the fingerprint so far and the name of the stage that died. The golden pass
runs in batches of the golden's batch size, its outputs streamed to disk (batches.py); the repeat, the
latency and the calibration use the first batch. Latency is
measured after the outputs are saved and the capture is "ok": nothing in it can fail the capture.
"""
import json
import os
import subprocess
import sys
import time
import traceback

from .batches import first_batch_of, golden_batch_size, remove_work, run_batched
from .calibrate import apply_perturbation, calibration_record
from .capture import CAPTURE_SCHEMA, PROBE_VERSION, write_capture, write_outputs
from .errors import ProbeFailure, first_line
from .files import read_bundle_manifest
from .fingerprint import base_fingerprint
from .inputs import InputSet
from .integrity import (
    DEFAULT_DEADLINE_S,
    HASH_TABLE_IN,
    HASH_TABLE_OUT,
    Deadline,
    dpkg_index,
    installed,
    load_hash_table,
    mapped_objects,
    python_integrity,
    recorded_files,
    system_integrity,
)
from .integrity import DEFAULT_MODE as DEFAULT_INTEGRITY
from .latency import DEFAULT_BUDGET_S, latency_record, skipped
from .layers import LAYERS_SCHEMA, layer_record, layers_to_record
from .libraries import loaded_libraries
from .model import import_tensorflow, load_signature, tensorflow_installed
from .repeat import repeat_record
from .startup import startup_code
from .tf_fingerprint import numpy_fingerprint, tensorflow_fingerprint
from .tflite import beside_tensorflow, bundle_has_tflite, run_tflite, runtime_fingerprint


def probe(bundle_dir, out_dir, latency_budget_s=DEFAULT_BUDGET_S, calibrate=False, perturb=None, max_samples=None,
          layers="auto", tflite=None, integrity=DEFAULT_INTEGRITY, hash_table=None):
    """Run every stage on the bundle, leave the capture (and outputs) in out_dir; 0 when all ran.
    `calibrate`: also run the calibration perturbations (calibrate.py); `perturb`: this probe is one of
    them, and changes TensorFlow's configuration before the model loads; `max_samples`: run only the
    first samples of the set (a calibration child); `layers`: when to record the layers (layers.py's
    LAYER_MODES: auto, always, never); `tflite`: True converts the model to TFLite and runs it (golden
    create --tflite), None runs the golden's model.tflite when it has one (all an edge target, without
    TensorFlow, runs), False runs none (a calibration child); `integrity`: which installed files are checked
    (integrity.py: full, numerics, off), begun beside the model and finished once it has run; `hash_table`: the
    digest table the host handed in (IntegrityCheck), when not in out_dir."""
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
    # A calibration child's fingerprint is not kept: it checks no files.
    checking = IntegrityCheck("off" if perturb else integrity, os.environ, bundle_dir=bundle_dir, out_dir=out_dir,
                              table_in=hash_table)

    def stage(name):
        capture["stage"] = name
        write_capture(out_dir, capture)
        return time.time()

    try:
        began = stage("import-tensorflow")
        imported = _tensorflow_or_edge(bundle_dir)
        if isinstance(imported, str):  # an edge target: only a TFLite runtime, and the golden has a model.tflite
            edge_probe(capture, stage, bundle_dir, out_dir, imported, checking)
            return _finish(capture, out_dir, started, checking)
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
        _model_ran(capture, stage, outputs, checking)
        second_pass = {}  # the repeat's outputs: the calibration's "repeat" perturbation, not run again
        _timed(stage, capture, "repeat-model", "determinism", lambda: repeat_record(
            tf, np, signature, first, first_batch_of(input_set, batch_size, outputs), second_pass),
            timing="repeat_s")
        # Written with the stage: a probe killed while timing leaves its outputs and says why no latency.
        capture["latency"] = skipped("the probe stopped while measuring latency", latency_budget_s)
        began = stage("measure-latency")
        capture["latency"] = latency_record(tf, np, signature, first, latency_budget_s, bundle_dir)
        capture["timings"]["latency_s"] = round(time.time() - began, 4)
        if tflite or (tflite is None and bundle_has_tflite(bundle_dir)):
            _timed(stage, capture, "run-tflite", "tflite", lambda: _tflite_beside(
                capture, tf, np, bundle_dir, input_set, batch_size, out_dir, first, convert_first=bool(tflite)))
        _record_layers(stage, capture, layers, bundle_dir, (tf, np, signature, first), outputs)
        if calibrate:
            _timed(stage, capture, "calibrate", "calibration",
                   lambda: calibration_record(tf, np, signature, first, bundle_dir, out_dir, second_pass))
    except ProbeFailure as failure:
        capture["status"] = "error"
        capture["error"] = {"kind": failure.kind, "message": failure.message, "traceback": ""}
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen failure still yields a capture
        capture["status"] = "error"
        capture["error"] = {"kind": "probe-internal",
                            "message": "%s: %s" % (type(error).__name__, first_line(error)),
                            "traceback": traceback.format_exc()[-4000:]}
    return _finish(capture, out_dir, started, checking)


class IntegrityCheck:
    """The integrity check (integrity.py, startup.py), begun in a child process as the probe starts, so that
    hashing runs on another core beside TensorFlow's import and the model instead of after them (a thread would
    hold the GIL the import needs). finish() hands it the shared objects the model mapped, once it has run,
    and takes its record. Where the host handed in a digest table (`table_in`, or HASH_TABLE_IN in `out_dir`), the
    child reuses it and, unless no row changed, leaves this probe's table in `out_dir` (HASH_TABLE_OUT) for the host
    to keep (integrity.HashTable): an unchanged table never travels back."""

    def __init__(self, mode, environ, deadline_s=DEFAULT_DEADLINE_S, bundle_dir=None, out_dir=None, table_in=None):
        self.mode, self.deadline_s, self.child, self.failed = mode, deadline_s, None, None
        self.began = time.time()
        if mode == "off":
            return
        # The folder or zipapp this package is imported from, first on the child's path (never its cwd).
        home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = ("import sys; sys.path[0] = %r; from %s.stages import integrity_child; "
                "integrity_child(%r, %r, %r, %r, %r)" % (home, __package__, mode, deadline_s, bundle_dir, out_dir,
                                                          table_in))
        try:
            self.child = subprocess.Popen([sys.executable, "-c", code], env=dict(environ), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            self.failed = "the integrity check could not start: %s" % first_line(error)

    def finish(self, capture, stage):
        """The check-integrity stage: fingerprint.integrity; timings.integrity_s is what the probe waited for it,
        integrity_child_s how long the check took from the probe's start."""
        if self.mode == "off":
            return
        began = stage("check-integrity")
        capture["fingerprint"]["integrity"] = self._record(json.dumps(mapped_objects()).encode("utf-8"))
        capture["timings"]["integrity_s"] = round(time.time() - began, 4)
        capture["timings"]["integrity_child_s"] = round(time.time() - self.began, 4)

    def stop(self):
        """End a child the probe no longer waits for (a stage failed before check-integrity)."""
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.communicate()

    def _record(self, mapped):
        if self.child is None:
            return {"mode": self.mode, "error": self.failed}
        try:
            out, err = self.child.communicate(mapped, timeout=self.deadline_s + CHILD_GRACE_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.communicate()
            return {"mode": self.mode, "error": "the integrity check did not finish in %d s" % self.deadline_s}
        try:
            return json.loads(out.decode("utf-8"))
        except ValueError:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            return {"mode": self.mode, "error": "the integrity check failed (status %s)%s"
                    % (self.child.returncode, ": " + lines[-1][:300] if lines else "")}


# Beyond the hashing deadline: reading RECORDs, dpkg's lists and the libraries the model mapped.
CHILD_GRACE_S = 60


def integrity_child(mode, deadline_s, bundle_dir=None, out_dir=None, table_in=None):
    """The child process of IntegrityCheck: hash the installed files (also those of the distributions the golden's
    policy names, in `bundle_dir`), then read the shared objects the probe mapped (a JSON list on stdin, sent once
    its model has run) and write the whole record as JSON to stdout. The digest table (IntegrityCheck) is read
    from `table_in` (HASH_TABLE_IN in `out_dir` when not named) and left in `out_dir` only where the host handed
    one in, and only when a row changed (the host keeps what it handed in otherwise)."""
    deadline = Deadline(deadline_s)
    if table_in is None and out_dir:
        table_in = os.path.join(out_dir, HASH_TABLE_IN)
    table = load_hash_table(table_in) if table_in and os.path.isfile(table_in) else None
    distributions = installed()
    recorded = recorded_files(distributions)
    dpkg = dpkg_index()
    record = {"mode": mode,
              "python": python_integrity(distributions, recorded, mode, _named_by_golden(bundle_dir), deadline,
                                         table),
              "startup": startup_code(os.environ, dpkg, recorded)}
    if table is not None and table.changed() and out_dir:
        _write_text(os.path.join(out_dir, HASH_TABLE_OUT), table.dumps())
    mapped = json.loads(sys.stdin.read() or "[]")
    record["system"] = system_integrity(recorded, dpkg, mapped)
    sys.stdout.write(json.dumps(record, sort_keys=True))
    sys.stdout.flush()


def _write_text(path, text):
    """Best effort: a table that cannot be written costs the next probe time, never this one its record."""
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except OSError:
        pass


def _named_by_golden(bundle_dir):
    """The distributions the golden's policy adds to the check (`[integrity] distributions`, compare/policy.py;
    the host validated it when it loaded the golden: here only its strings are taken)."""
    policy = read_bundle_manifest(bundle_dir).get("policy")
    integrity = policy.get("integrity") if isinstance(policy, dict) else None
    names = integrity.get("distributions") if isinstance(integrity, dict) else None
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def _model_ran(capture, stage, outputs, checking):
    """The capture is "ok" once the outputs are saved; then what the run mapped is known: the native libraries
    TensorFlow really loaded (on the GPU, if any), and the integrity check finished with them."""
    capture["fingerprint"]["native_libraries"]["loaded"] = loaded_libraries()
    capture["outputs"] = {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in outputs.items()}
    capture["status"] = "ok"
    checking.finish(capture, stage)


def _finish(capture, out_dir, started, checking):
    checking.stop()
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


def edge_probe(capture, stage, bundle_dir, out_dir, why_no_tensorflow, checking):
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
    checking.finish(capture, stage)


def _record_layers(stage, capture, mode, bundle_dir, model, outputs):
    """The record-layers stage, when layers.layers_to_record says so (its `trigger` kept in the record), or the
    record saying why it was skipped (timings.layers_s then the time to tell: hashing the outputs); `model` is
    (tf, np, signature, the first batch's inputs)."""
    tf, np, signature, first = model
    began = time.time()
    trigger, skipped_record = layers_to_record(mode, bundle_dir, np, outputs)
    if skipped_record is not None:
        capture["layers"] = skipped_record
        capture["timings"]["layers_s"] = round(time.time() - began, 4)
    if trigger is None:
        return
    # Written with the stage: a probe killed while recording says why it has no layer record.
    capture["layers"] = {"schema": LAYERS_SCHEMA, "status": "unsupported",
                         "reason": "the probe stopped while recording the layers"}
    _timed(stage, capture, "record-layers", "layers",
           lambda: dict(layer_record(tf, np, signature, first), trigger=trigger))


def _timed(stage, capture, name, field, record, timing=None):
    """Run a stage: its record under capture[field], its seconds under timings[timing or field + "_s"]."""
    began = stage(name)
    capture[field] = record()
    capture["timings"][timing or field + "_s"] = round(time.time() - began, 4)
