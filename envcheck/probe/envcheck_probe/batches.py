"""The golden pass in batches: each batch of samples through the signature, each output streamed to a
.npy file on disk as it comes, then packed into outputs.npz. Memory holds a batch and its outputs, never
the whole set (the outputs come back as read-only memory maps). A set no larger than one batch runs as
one call, exactly as before batching existed."""
import json
import os
import shutil
import zipfile

from .capture import OUTPUTS_FILE, write_outputs
from .errors import ProbeFailure
from .files import atomic_write
from .inputs import BATCH_SIZE
from .model import run_signature

WORK_DIR = ".envcheck-batches"
"""Beside the capture while the probe runs; removed before it ends (the capture's files are flat)."""


def golden_batch_size(bundle_dir):
    """The batch size the golden was made with (its manifest's `batch_size`), else the default."""
    try:
        with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as handle:
            value = json.load(handle).get("batch_size")
    except (OSError, ValueError, AttributeError):
        return BATCH_SIZE
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else BATCH_SIZE


def run_batched(tf, np, signature, input_set, batch_size, out_dir):
    """Every sample through the model, `batch_size` at a time; outputs.npz written to out_dir. Returns the
    outputs by name (memory maps of files under WORK_DIR when the set took more than one batch)."""
    if input_set.rows <= batch_size:
        outputs = run_signature(tf, np, signature, input_set.whole())
        write_outputs(np, out_dir, outputs)
        return outputs
    work = os.path.join(out_dir, WORK_DIR)
    os.makedirs(work, exist_ok=True)
    maps, done = {}, 0
    for batch in input_set.batches(batch_size):
        count = len(next(iter(batch.values())))
        for name, array in run_signature(tf, np, signature, batch).items():
            if array.ndim == 0 or array.shape[0] != count:
                raise ProbeFailure("model-run", "output %r is not one row per sample (shape %s for a batch of %d): "
                                   "make the golden with --batch-size %d to run the set as one batch"
                                   % (name, list(array.shape), count, input_set.rows))
            if name not in maps:
                maps[name] = np.lib.format.open_memmap(os.path.join(work, name + ".npy"), mode="w+",
                                                       dtype=array.dtype, shape=(input_set.rows,) + array.shape[1:])
            maps[name][done:done + count] = array
        done += count
    for array in maps.values():
        array.flush()
    del maps
    names = sorted(name[:-4] for name in os.listdir(work) if name.endswith(".npy"))
    atomic_write(os.path.join(out_dir, OUTPUTS_FILE), lambda handle: _pack(work, names, handle))
    return {name: np.load(os.path.join(work, name + ".npy"), mmap_mode="r") for name in names}


def _pack(work, names, handle):
    """The .npy files as an uncompressed .npz (what np.savez writes), copied a block at a time."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in names:
            with open(os.path.join(work, name + ".npy"), "rb") as source, \
                    archive.open(name + ".npy", "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1 << 20)


def remove_work(out_dir):
    """Remove the streamed outputs' directory (the probe's last step)."""
    shutil.rmtree(os.path.join(out_dir, WORK_DIR), ignore_errors=True)
