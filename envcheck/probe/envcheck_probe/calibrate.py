"""Calibration (for `golden create`): the reference target's outputs under benign perturbations that change
which kernels run but not the model, from which the host derives a noise scale and a calibrated tolerance.

In this process: a repeat (the repeat-model stage's second pass), one sample at a time instead of the batch,
and Grappler's remapper off (the model loaded again once the option is set: Grappler optimises a function when
it is first instantiated, and a test holds these outputs bitwise equal to a child's that set it before
loading). In fresh child processes of this probe (same interpreter, same bundle), only where a fresh process
is the point — a setting TensorFlow or oneDNN reads once at start-up: nothing else, one intra-op thread, and
on x86 oneDNN off and a lower oneDNN ISA cap. The children run side by side, as many at once as this process
may use cores, while this process does its own perturbations; they check no installed files (the reference's
own probe did). Each perturbation's outputs go to `calibration-<name>.npz` beside outputs.npz (the host
compares them); one that cannot run here is recorded as skipped, with why.
"""
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from .capture import write_outputs
from .cpu import cpu_info
from .errors import first_line
from .inputs import sample_count
from .model import load_signature, run_signature

CHILD_TIMEOUT_S = 600
FILE_PREFIX = "calibration-"
DESCRIPTIONS = {
    "repeat": "a second pass in the same process",
    "per-sample": "one sample at a time instead of the whole batch",
    "fresh-process": "a fresh process",
    "intra-op-threads-1": "TensorFlow's intra-op threads set to 1",
    "remapper-off": "Grappler's remapper (op fusion) off",
    "onednn-off": "oneDNN off",
    "isa-cap": "oneDNN capped at a lower instruction set",
}
# Applied in a child probe (`--perturb NAME`) after TensorFlow is imported, before the model loads.
IN_CHILD = ("intra-op-threads-1", "remapper-off")
REMAPPER_OFF = {"remapping": False}


def apply_perturbation(tf, name):
    """In a child probe asked for `--perturb NAME`: change TensorFlow's configuration before the model loads."""
    if name == "intra-op-threads-1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
    elif name == "remapper-off":
        tf.config.optimizer.set_experimental_options(REMAPPER_OFF)


def calibration_record(tf, np, signature, inputs, bundle_dir, out_dir, second_pass=None):
    """{"perturbations": {name: {"description", "setting"?, "file"} or {"description", "skipped"}}}, each
    perturbation's outputs (over `inputs`: the first batch of the golden set) written to its file in out_dir.
    `second_pass`: {"outputs": …} of the repeat-model stage, the "repeat" perturbation already made."""
    samples = sample_count(inputs)
    children = _child_perturbations()
    with ThreadPoolExecutor(max_workers=max(1, min(len(children), usable_cores()))) as pool:
        running = [(name, setting, pool.submit(_in_child, bundle_dir, out_dir, name, environment, samples))
                   for name, setting, environment in children]
        found = _in_process(tf, np, signature, inputs, samples, bundle_dir, out_dir, second_pass or {})
        for name, setting, future in running:
            found[name] = dict(future.result(), setting=setting)
    for name, entry in found.items():
        entry["description"] = DESCRIPTIONS[name]
    return {"perturbations": dict(sorted(found.items()))}


def _in_process(tf, np, signature, inputs, samples, bundle_dir, out_dir, second_pass):
    """The perturbations this process can make itself; a model that cannot take one (batch 1, say) skips it."""
    found = {}
    runs = (("repeat", None, lambda: second_pass.get("outputs") or run_signature(tf, np, signature, inputs)),
            ("per-sample", None, lambda: _one_sample_at_a_time(tf, np, signature, inputs, samples)),
            ("remapper-off", "tf.config.optimizer.set_experimental_options({'remapping': False}), the model "
                             "loaded again", lambda: _reloaded_without_remapper(tf, np, inputs, bundle_dir)))
    for name, setting, run in runs:
        try:
            found[name] = _saved(np, out_dir, name, run())
        except Exception as error:  # noqa: BLE001 - see the docstring
            found[name] = {"skipped": "it failed here: %s" % first_line(error)}
        if setting:
            found[name]["setting"] = setting
    return found


def _reloaded_without_remapper(tf, np, inputs, bundle_dir):
    """The first batch through a fresh load of the model with Grappler's remapper off; the option restored."""
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options(REMAPPER_OFF)
    try:
        _loaded, signature = load_signature(tf, os.path.join(bundle_dir, "model"))
        return run_signature(tf, np, signature, inputs)
    finally:
        tf.config.optimizer.set_experimental_options({**{key: True for key in REMAPPER_OFF}, **before})


def usable_cores():
    """The cores this process may run on (its affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _saved(np, out_dir, name, outputs):
    file_name = FILE_PREFIX + name + ".npz"
    write_outputs(np, out_dir, outputs, file_name)
    return {"file": file_name}


def _one_sample_at_a_time(tf, np, signature, inputs, samples):
    if not samples:
        raise ValueError("the inputs share no sample count to cut one sample from")
    parts = [run_signature(tf, np, signature, {name: value[i:i + 1] for name, value in inputs.items()})
             for i in range(samples)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _child_perturbations():
    """(name, setting in words, environment changes) of the perturbations run in child processes here."""
    found = [("fresh-process", "a new process", {}),
             ("intra-op-threads-1", "tf.config.threading.set_intra_op_parallelism_threads(1)", {})]
    if platform.machine() in ("x86_64", "AMD64"):
        cap = lower_isa(cpu_info()["flags"])
        found += [("onednn-off", "TF_ENABLE_ONEDNN_OPTS=0", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
                  ("isa-cap", "ONEDNN_MAX_CPU_ISA=" + cap, {"ONEDNN_MAX_CPU_ISA": cap})]
    return found


def lower_isa(flags):
    """An instruction set below this CPU's best, as ONEDNN_MAX_CPU_ISA names it."""
    if "avx512f" in flags:
        return "AVX2"
    if "avx2" in flags:
        return "AVX"
    return "SSE41"


def _probe_command():
    """How to start this probe again: the zipapp it runs from, or its package."""
    if os.path.isfile(sys.argv[0]):
        return [sys.executable, sys.argv[0]]
    return [sys.executable, "-m", __package__]


def _in_child(bundle_dir, out_dir, name, environment, samples):
    work = tempfile.mkdtemp(prefix="envcheck-calibrate-")
    try:
        command = _probe_command() + ["--bundle", bundle_dir, "--out", work, "--latency-budget", "0", "--no-layers",
                                     "--no-tflite", "--integrity", "off"]
        if samples:
            command += ["--max-samples", str(samples)]
        if name in IN_CHILD:
            command += ["--perturb", name]
        child = subprocess.run(command, env=dict(os.environ, **environment), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=CHILD_TIMEOUT_S,
                               check=False)
        produced = os.path.join(work, "outputs.npz")
        if child.returncode != 0 or not os.path.isfile(produced):
            lines = child.stderr.decode("utf-8", "replace").strip().splitlines()
            return {"skipped": "the child probe failed (status %s)%s"
                               % (child.returncode, ": " + lines[-1][:300] if lines else "")}
        file_name = FILE_PREFIX + name + ".npz"
        shutil.move(produced, os.path.join(out_dir, file_name))
        return {"file": file_name}
    except subprocess.TimeoutExpired:
        return {"skipped": "the child probe did not finish within %d s" % CHILD_TIMEOUT_S}
    except OSError as error:
        return {"skipped": "the child probe could not start: %s" % first_line(error)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
