"""A layer record only when it can tell something (issue 24, item 1), without TensorFlow: the digest rule the
golden's manifest and the probe share, the probe's decision (layers.layers_to_record), the golden writer's
`expected_digests`, the options that pass a mode through, and localisation of a skipped record. The real runs
(a golden made here, checked here and under a drift knob) are in tests/test_layer_trigger_runs.py."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from envcheck.cli import build_parser
from envcheck.compare.localization import localize
from envcheck.errors import GoldenError
from envcheck.golden import expected_digests, load_golden, output_digest, reseal
from envcheck.targets.probe_app import probe_arguments

ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran-order": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "strided": np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2],
    "scalar": np.array(1.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float16),
    "bool": np.array([[True, False]]),
    "int64-big-endian": np.arange(4, dtype=">i8"),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_the_host_and_the_probe_digest_an_output_alike(probe, name):
    array = ARRAYS[name]
    assert output_digest(array) == probe.layers.output_digest(np, array) is not None


def test_the_digest_is_of_dtype_shape_and_c_order_bytes_as_documented():
    array = ARRAYS["fortran-order"]
    by_hand = hashlib.sha256(b"<f4|3,4|" + np.ascontiguousarray(array).tobytes()).hexdigest()
    assert output_digest(array) == by_hand
    # Same bytes, another shape or dtype: another digest.
    assert output_digest(array.reshape(4, 3)) != by_hand
    assert output_digest(np.ascontiguousarray(array).view(np.int32)) != by_hand


def test_a_memory_map_is_digested_as_the_array_it_maps(probe, tmp_path):
    """The probe's batched outputs are memory maps of .npy files (batches.py): the digest is of their values."""
    path = tmp_path / "0.npy"
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(5, 2))
    mapped[:] = np.arange(10, dtype=np.float32).reshape(5, 2)
    mapped.flush()
    again = np.load(path, mmap_mode="r")
    assert probe.layers.output_digest(np, again) == output_digest(np.arange(10, dtype=np.float32).reshape(5, 2))


def _bundle(tmp_path, layers_status="ok", digests=None):
    manifest = {"batch_size": 4, "layers": {"file": "layers.json", "status": layers_status}}
    if digests is not None:
        manifest["expected_digests"] = digests
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return str(tmp_path)


OUTPUTS = {"class_probs": np.full((4, 3), 0.25, dtype=np.float32), "embedding": np.ones((4, 8), dtype=np.float32)}


def _digests(outputs):
    return {name: output_digest(array) for name, array in outputs.items()}


def test_auto_skips_when_every_output_is_bitwise_the_golden_s(probe, tmp_path):
    bundle = _bundle(tmp_path, digests=_digests(OUTPUTS))
    trigger, skipped = probe.layers.layers_to_record("auto", bundle, np, OUTPUTS)
    assert trigger is None
    assert skipped == {"schema": "envcheck.layers/1", "status": "skipped",
                       "reason": "every output bitwise equal to the golden's"}


@pytest.mark.parametrize("change", [
    pytest.param(lambda o: {**o, "embedding": np.nextafter(o["embedding"], np.float32(2))}, id="one-ulp"),
    pytest.param(lambda o: {**o, "embedding": o["embedding"].astype(np.float64)}, id="dtype"),
    pytest.param(lambda o: {"class_probs": o["class_probs"]}, id="an-output-missing"),
])
def test_auto_records_when_an_output_differs(probe, tmp_path, change):
    bundle = _bundle(tmp_path, digests=_digests(OUTPUTS))
    assert probe.layers.layers_to_record("auto", bundle, np, change(OUTPUTS)) == ("outputs-differ", None)


def test_auto_records_as_before_for_a_golden_without_digests(probe, tmp_path):
    assert probe.layers.layers_to_record("auto", _bundle(tmp_path), np, OUTPUTS) == ("golden-without-digests", None)


def test_auto_records_nothing_for_a_golden_without_a_layer_record(probe, tmp_path):
    bundle = _bundle(tmp_path, layers_status="unsupported", digests={"class_probs": "0" * 64})
    assert probe.layers.layers_to_record("auto", bundle, np, OUTPUTS) == (None, None)


def test_always_and_never_decide_alone(probe, tmp_path):
    bundle = _bundle(tmp_path, digests=_digests(OUTPUTS))
    assert probe.layers.layers_to_record("always", bundle, np, OUTPUTS) == ("always", None)
    assert probe.layers.layers_to_record("never", _bundle(tmp_path), np, OUTPUTS) == (None, None)


@pytest.mark.parametrize("argv, mode", [([], "auto"), (["--layers", "always"], "always"), (["--layers"], "always"),
                                        (["--layers", "never"], "never"), (["--no-layers"], "never")])
def test_the_probe_s_command_line_takes_a_mode(probe, monkeypatch, argv, mode):
    seen = {}
    monkeypatch.setattr(probe.cli, "probe", lambda *a, **options: seen.update(options) or 0)
    monkeypatch.setattr(probe.cli, "keep_stdout_clean", lambda: None)
    assert probe.cli.main(["--bundle", "b", "--out", "/tmp", *argv]) == 0
    assert seen["layers"] == mode


@pytest.mark.parametrize("layers, flags", [(None, []), (True, ["--layers", "always"]), (False, ["--layers", "never"])])
def test_the_host_passes_the_mode_through(probe, monkeypatch, layers, flags):
    arguments = probe_arguments(0.0, layers=layers)
    assert arguments == ["--latency-budget", "0.0", *flags]
    seen = {}
    monkeypatch.setattr(probe.cli, "probe", lambda *a, **options: seen.update(options) or 0)
    monkeypatch.setattr(probe.cli, "keep_stdout_clean", lambda: None)
    probe.cli.main(["--bundle", "b", "--out", "/tmp", *arguments])
    assert seen["layers"] == {None: "auto", True: "always", False: "never"}[layers]


@pytest.mark.parametrize("command, argv, layers", [
    ("check", [], None), ("check", ["--layers", "always"], True), ("check", ["--layers", "never"], False),
    ("check", ["--no-layers"], False), ("probe", ["--out", "x"], True), ("probe", ["--out", "x", "--layers", "auto"], None),
])
def test_check_and_probe_options(command, argv, layers):
    assert build_parser().parse_args([command, *argv]).layers is layers


def test_a_bad_mode_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["check", "--layers", "sometimes"])
    assert stopped.value.code == 2
    assert "expected auto, always or never, got 'sometimes'" in capsys.readouterr().err


def test_every_seal_writes_digests_that_follow_expected_npz(golden_copy):
    """The built-in golden (made before digests) gains them at its next seal, and they are expected.npz's."""
    old = load_golden(golden_copy)
    assert "expected_digests" not in old.manifest  # an old bundle still loads
    resealed = reseal(old, description="resealed")
    assert resealed.manifest["expected_digests"] == expected_digests(resealed.expected)
    assert set(resealed.manifest["expected_digests"]) == set(resealed.expected)


def test_digests_that_do_not_follow_expected_npz_are_refused(golden_copy):
    resealed = reseal(load_golden(golden_copy))
    manifest = dict(resealed.manifest, expected_digests={name: "0" * 64 for name in resealed.expected})
    (golden_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match=r"expected_digests: do not match expected.npz"):
        load_golden(golden_copy)


def test_a_skipped_record_localises_nothing_and_says_why():
    reference = {"schema": "envcheck.layers/1", "status": "ok", "samples": 4, "tensors": []}
    skipped = {"schema": "envcheck.layers/1", "status": "skipped", "reason": "every output bitwise equal to the golden's"}
    where = localize(reference, skipped, outputs_drift=False)
    assert where == {"status": "unsupported", "reason": "the target recorded no layers: every output bitwise equal "
                                                        "to the golden's (--layers always records them)"}
