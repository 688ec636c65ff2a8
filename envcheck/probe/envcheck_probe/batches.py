"""The golden pass in batches: each batch of samples through the signature, each output streamed to a
.npy file on disk as it comes, then packed into outputs.npz. Memory holds a batch and its outputs, never
the whole set (the outputs come back as read-only memory maps). A set no larger than one batch, or of a
golden made before batching (no `batch_size` in its manifest), runs as one call, exactly as before."""
import json
import os
import shutil
import zipfile

from .capture import OUTPUTS_FILE, write_outputs
from .errors import ProbeFailure
from .files import atomic_write
from .model import run_signature

WORK_DIR = ".envcheck-batches"
WORK_DIRS = (WORK_DIR, ".envcheck-batches-tflite")
"""One per model run in a probe (the SavedModel's, the TFLite model's): each keeps its outputs' files."""
"""Beside the capture while the probe runs; removed before it ends (the capture's files are flat)."""


def golden_batch_size(bundle_dir):
    """The batch size the golden was made with (its manifest's `batch_size`); None for a golden from before
    batching, whose expected outputs came from one call over the whole set."""
    try:
        with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as handle:
            value = json.load(handle).get("batch_size")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def run_batched(tf, np, signature, input_set, batch_size, out_dir, first, run=None, file_name=OUTPUTS_FILE,
                work_dir=WORK_DIR):
    """Every sample through the model, `batch_size` at a time; outputs.npz (or `file_name`) written to out_dir.
    Returns the outputs by name (memory maps of files under WORK_DIR when the set took more than one batch).
    `first` is input_set.first(batch_size), already read: the whole set when it runs in one call. `run`: how
    one batch is run (a TFLite interpreter's), the signature when None."""
    run = run or (lambda batch: run_signature(tf, np, signature, batch))
    if input_set.in_one_call(batch_size):
        outputs = run(first)
        write_outputs(np, out_dir, outputs, file_name)
        return outputs
    work = os.path.join(out_dir, work_dir)
    shutil.rmtree(work, ignore_errors=True)  # what an earlier probe killed here left behind
    os.makedirs(work)
    maps, done = {}, 0
    for batch in input_set.batches(batch_size):
        count = len(next(iter(batch.values())))
        for name, array in run(batch).items():
            if array.ndim == 0 or array.shape[0] != count:
                raise ProbeFailure("model-run", "output %r is not one row per sample (shape %s for a batch of %d): "
                                   "make the golden with --batch-size %d to run the set as one batch"
                                   % (name, list(array.shape), count, input_set.rows))
            if name not in maps:  # files by number: an output's name is no path
                path = os.path.join(work, "%d.npy" % len(maps))
                maps[name] = (path, np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype,
                                                              shape=(input_set.rows,) + array.shape[1:]))
            maps[name][1][done:done + count] = array
        done += count
    files = {}
    for name, (path, array) in maps.items():
        array.flush()
        files[name] = path
    maps.clear()
    atomic_write(os.path.join(out_dir, file_name), lambda handle: _pack(files, handle))
    return {name: np.load(path, mmap_mode="r") for name, path in files.items()}


def first_batch_of(input_set, batch_size, outputs):
    """The outputs of the first batch: all of them when the set ran in one call."""
    if input_set.in_one_call(batch_size):
        return outputs
    return {name: array[:batch_size] for name, array in outputs.items()}  # (one row per sample: checked)


def _pack(files, handle):
    """The .npy files as an uncompressed .npz (what np.savez writes), copied a block at a time."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path in sorted(files.items()):
            with open(path, "rb") as source, archive.open(name + ".npy", "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 20)


def remove_work(out_dir):
    """Remove the streamed outputs' directories (the probe's last step)."""
    for work_dir in WORK_DIRS:
        shutil.rmtree(os.path.join(out_dir, work_dir), ignore_errors=True)
