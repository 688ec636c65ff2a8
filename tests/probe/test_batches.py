"""The golden inputs read a batch at a time (envcheck_probe/inputs.py) and the pass in batches with its
outputs streamed to disk (batches.py): the same arrays as reading and running them whole, bounded memory,
a clear ProbeFailure for a set that cannot be streamed."""
from __future__ import annotations

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from envcheck.targets.probe_app import DEFAULT_BATCH_SIZE


def test_the_host_side_default_batch_size_is_the_probes(probe):
    assert probe.inputs.BATCH_SIZE == DEFAULT_BATCH_SIZE


@pytest.mark.parametrize("compressed", [False, True])
def test_batches_are_the_arrays_cut_in_order(probe, tmp_path, compressed):
    rng = np.random.default_rng(1)
    arrays = {"image": rng.normal(size=(23, 4, 3)).astype(np.float32), "ids": np.arange(23, dtype=np.int64),
              "text": np.array([f"row {i}" for i in range(23)])}
    (np.savez_compressed if compressed else np.savez)(tmp_path / "inputs.npz", **arrays)
    inputs = probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))
    batches = list(inputs.batches(5))
    assert inputs.rows == 23 and [len(b["ids"]) for b in batches] == [5, 5, 5, 5, 3]
    for name, array in arrays.items():
        assert np.array_equal(np.concatenate([b[name] for b in batches]), array)
        assert np.array_equal(inputs.whole()[name], array) and np.array_equal(inputs.first(7)[name], array[:7])
    limited = probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"), limit=6)
    assert limited.rows == 6 and np.array_equal(limited.whole()["ids"], arrays["ids"][:6])


def test_reading_in_batches_holds_a_batch_not_the_set(probe, tmp_path):
    np.savez(tmp_path / "inputs.npz", x=np.ones((2000, 1000), np.float32))  # 8 MB
    inputs = probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))
    tracemalloc.start()
    try:
        total = sum(float(batch["x"].sum()) for batch in inputs.batches(100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 2_000_000 and peak < 4 * 100 * 1000 * 4  # a few batches of 400 KB, never the 8 MB


@pytest.mark.parametrize("arrays, says", [
    pytest.param({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, "do not have one sample count", id="counts"),
    pytest.param({"a": np.zeros(())}, "do not have one sample count", id="scalar"),
    pytest.param({"a": np.array([None, 1], dtype=object)}, "never unpickled", id="objects"),
    pytest.param({"a": np.asfortranarray(np.zeros((3, 2)))}, "Fortran order", id="fortran"),
])
def test_a_set_that_cannot_be_streamed_is_a_clear_failure(probe, tmp_path, arrays, says):
    np.savez(tmp_path / "inputs.npz", **arrays)
    with pytest.raises(probe.errors.ProbeFailure) as caught:
        probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))
    assert caught.value.kind == "inputs" and says in caught.value.message


def test_a_zip_that_is_no_npz_is_a_clear_failure(probe, tmp_path):
    with zipfile.ZipFile(tmp_path / "inputs.npz", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(probe.errors.ProbeFailure, match="no .npy array"):
        probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))


@pytest.mark.parametrize("manifest, size", [({"batch_size": 7}, 7), ({}, DEFAULT_BATCH_SIZE),
                                            ({"batch_size": 0}, DEFAULT_BATCH_SIZE), (None, DEFAULT_BATCH_SIZE)])
def test_the_batch_size_is_the_goldens(probe, tmp_path, manifest, size):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert probe.batches.golden_batch_size(str(tmp_path)) == size
