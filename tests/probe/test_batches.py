"""The golden inputs read a batch at a time (envcheck_probe/inputs.py) and the pass in batches with its
outputs streamed to disk (batches.py): the same arrays as reading and running them whole, bounded memory,
a clear ProbeFailure for a set that cannot be streamed."""
from __future__ import annotations

import json
import tracemalloc
import zipfile

import numpy as np
import pytest



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
        assert np.array_equal(inputs.first(None)[name], array) and np.array_equal(inputs.first(50)[name], array)
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


@pytest.mark.parametrize("arrays", [
    pytest.param({"a": np.arange(6.0).reshape(3, 2), "table": np.ones((4, 2))}, id="no-shared-count"),
    pytest.param({"a": np.arange(3.0), "scale": np.float32(2.0)}, id="a-scalar"),
])
def test_inputs_without_one_sample_count_run_whole(probe, tmp_path, arrays):
    np.savez(tmp_path / "inputs.npz", **arrays)
    inputs = probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))
    assert inputs.rows is None and inputs.in_one_call(1)
    for name, array in arrays.items():
        assert np.array_equal(inputs.first(1)[name], array) and inputs.first(1)[name].shape == np.shape(array)


@pytest.mark.parametrize("arrays, says", [
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


@pytest.mark.parametrize("manifest, size", [({"batch_size": 7}, 7), ({}, None), ({"batch_size": 0}, None),
                                            ({"batch_size": True}, None), (None, None)])
def test_the_batch_size_is_the_goldens_and_an_older_golden_runs_whole(probe, tmp_path, manifest, size):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert probe.batches.golden_batch_size(str(tmp_path)) == size


def test_the_first_batch_of_a_set_run_in_one_call_is_every_output_as_it_is(probe, tmp_path):
    np.savez(tmp_path / "inputs.npz", x=np.zeros((4, 2)))
    inputs = probe.inputs.InputSet(np, str(tmp_path / "inputs.npz"))
    outputs = {"loss": np.float32(0.5), "rows": np.zeros((4, 3))}  # a scalar output is kept whole
    assert probe.batches.first_batch_of(inputs, None, outputs) is outputs
    assert probe.batches.first_batch_of(inputs, 8, outputs) is outputs
    assert probe.batches.first_batch_of(inputs, 2, {"rows": outputs["rows"]})["rows"].shape == (2, 3)


@pytest.mark.parametrize("first, again, spread", [
    pytest.param(np.array([1.0, 2.0], np.float32), np.array([1.0, 2.5], np.float32), 0.5, id="float"),
    pytest.param(np.array([1, 2]), np.array([1, 3]), 1.0, id="integer"),
    pytest.param(np.array(["a", "b"], dtype=object), np.array(["a", "b"], dtype=object), 0.0, id="strings-equal"),
    pytest.param(np.array(["a", "b"], dtype=object), np.array(["a", "c"], dtype=object), 1.0, id="strings-differ"),
    pytest.param(np.array([0x3F80, 0x4000], np.uint16).view("V2"), np.array([0x3F80, 0x4040], np.uint16).view("V2"),
                 1.0, id="bfloat16-raw"),  # 1.0 and 2.0 against 1.0 and 3.0
    pytest.param(np.zeros(2, np.float32), np.zeros(3, np.float32), None, id="shape"),
    pytest.param(np.float32(1.5), np.float32(1.5), 0.0, id="scalar"),
])
def test_the_repeat_compares_values_not_pointers_and_bfloat16_by_its_bits(probe, first, again, spread):
    assert probe.repeat._spread(np, np.asarray(first), again) == spread


@pytest.mark.parametrize("inputs, samples", [
    pytest.param({"a": np.zeros((5, 2)), "b": np.zeros(5)}, 5, id="shared"),
    pytest.param({"a": np.zeros((5, 2)), "table": np.zeros((9, 2))}, None, id="a-table-beside-the-samples"),
    pytest.param({"a": np.zeros((5, 2)), "scale": np.float32(2.0)}, None, id="a-scalar"),
])
def test_calibration_cuts_single_samples_only_from_a_set_with_one_sample_count(probe, inputs, samples):
    assert probe.inputs.sample_count(inputs) == samples
    if samples is None:  # slicing a table to one row would be another model input, not a perturbation
        with pytest.raises(ValueError, match="no sample count"):
            probe.calibrate._one_sample_at_a_time(None, np, None, inputs, samples)
