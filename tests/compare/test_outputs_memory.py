"""Bounded memory: comparing an output costs a small multiple of its size, the chunked statistics equal
a direct computation over the whole arrays, and an .npz that would inflate to gigabytes is refused
before anything is decompressed."""
from __future__ import annotations

import dataclasses
import io
import struct
import tracemalloc
import zipfile
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from envcheck import capture
from envcheck.capture import NpzError, read_npz
from envcheck.compare import outputs
from envcheck.compare.outputs import ULP_EDGES, _ulp_distance, compare_output
from envcheck.model import Tolerance

# ----------------------------------------------------------------------------- peak memory


def test_comparing_a_100_mb_output_peaks_below_four_times_its_size():
    rng = np.random.default_rng(11)
    golden = rng.standard_normal(25_000_000, dtype=np.float32)
    actual = golden.copy()
    actual.view(np.int32)[::3] += 2  # every third element two ULP further from zero
    tracemalloc.start()  # NumPy reports its buffers to tracemalloc
    try:
        result = compare_output("big", golden, actual, Tolerance())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * golden.nbytes, f"peak {peak / golden.nbytes:.2f}× the output's size"
    assert result.status == "noise" and result.max_ulp == 2 and result.p99_ulp == 2.0
    assert result.changed_fraction == pytest.approx(1 / 3, abs=1e-6)
    assert dict(result.ulp_histogram)["2–3"] == actual[::3].size


# ---------------------------------------------------- chunked statistics = direct statistics

FLOATS = {np.float16: st.floats(width=16, allow_nan=False),
          np.float32: st.floats(width=32, allow_nan=False),
          np.float64: st.floats(-1e300, 1e300)}  # (no overflow of actual − golden in float64)


@st.composite
def output_pairs(draw):
    dtype = draw(st.sampled_from(sorted(FLOATS, key=str)))
    shape = (draw(st.integers(1, 12)), draw(st.integers(1, 6)))
    golden = draw(hnp.arrays(dtype, shape, elements=FLOATS[dtype]))
    if draw(st.booleans()):  # a few ULP away: the noise band
        other = golden
        for _ in range(draw(st.integers(1, 3))):
            other = np.nextafter(other, draw(st.sampled_from([np.inf, -np.inf])), dtype=dtype)
    else:
        other = draw(hnp.arrays(dtype, shape, elements=FLOATS[dtype]))
    moved = draw(hnp.arrays(np.bool_, shape))
    actual = np.where(moved & np.isfinite(golden), other, golden).astype(dtype)
    return golden, actual


def _direct(golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance) -> dict:
    """The statistics over whole arrays, one expression each (what the module computed before chunking)."""
    finite = np.isfinite(golden)
    tiny = np.finfo(golden.dtype).tiny
    ref = np.where(np.abs(golden) < tiny, 0, golden)[finite].astype(np.float64)
    got = np.where(np.abs(actual) < tiny, 0, actual)[finite].astype(np.float64)
    err, mag = np.abs(got - ref), np.abs(ref)
    scale = float(mag.max()) if mag.size else 0.0
    rel = err[mag > 0] / mag[mag > 0]
    ulp = _ulp_distance(golden[finite], actual[finite])
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(err == 0, 0.0, err / (scale + mag))
    allowed = tolerance.atol * scale + tolerance.rtol * mag
    found = {"max_abs": float(err.max()), "mean_abs": float(np.mean(err)), "p99_abs": float(np.percentile(err, 99)),
             "max_rel": float(rel.max()) if rel.size else None,
             "p99_rel": float(np.percentile(rel, 99)) if rel.size else None,
             "max_ulp": int(ulp.max()), "p99_ulp": float(np.percentile(ulp, 99)),
             "changed_fraction": float(np.mean(golden != actual)), "min_passing_tolerance": float(needed.max()),
             "ulp_histogram": tuple(int(n) for n in np.histogram(ulp, bins=ULP_EDGES)[0])}
    if np.any(err > allowed):
        worst = int(np.argmax(err - allowed))
        found["beyond"] = (f"beyond tolerance: {int(np.sum(err > allowed))} of {err.size} elements, worst |err| "
                           f"{err[worst]:.3g} > allowed {allowed[worst]:.3g}")
    return found


def _same(found, expected) -> bool:
    """Equal, NaN included (np.percentile interpolates between two infinite errors to NaN)."""
    return found == expected or (found is not None and expected is not None and np.isnan(found) and np.isnan(expected))


@settings(max_examples=100, deadline=None)
@given(pair=output_pairs(), chunk=st.integers(1, 9),
       tolerance=st.sampled_from([Tolerance(), Tolerance(0, 0), Tolerance(1e-2, 1e-2)]))
def test_chunked_statistics_equal_the_direct_ones(pair, chunk, tolerance):
    golden, actual = pair
    whole = compare_output("o", golden, actual, tolerance, classification=True)
    with mock.patch.object(outputs, "CHUNK_ELEMENTS", chunk):  # many chunks; p99 by radix selection
        chunked = compare_output("o", golden, actual, tolerance, classification=True)
    if whole.status in ("identical", "mismatch"):  # (an Inf that moved is a mismatch, counted by chunks too)
        assert chunked == whole
        return
    expected = _direct(golden, actual, tolerance)
    for result in (whole, chunked):
        for field in ("max_abs", "p99_abs", "max_rel", "p99_rel", "max_ulp", "p99_ulp", "changed_fraction",
                      "min_passing_tolerance"):
            assert _same(getattr(result, field), expected[field]), field
        assert result.mean_abs == pytest.approx(expected["mean_abs"], rel=1e-12)
        assert tuple(count for _, count in result.ulp_histogram) == expected["ulp_histogram"]
        assert ("beyond" in expected) == ("beyond tolerance" in (result.reason or ""))
        assert expected.get("beyond", "") in (result.reason or "")
    # Everything else (top-1 agreement, reasons, status) agrees between one chunk and many.
    assert _fields(dataclasses.replace(chunked, mean_abs=whole.mean_abs)) == _fields(whole)


@settings(max_examples=100, deadline=None)
@given(pair=output_pairs(), chunk=st.integers(1, 9), tolerance=st.sampled_from([Tolerance(), Tolerance(1e-2, 1e-2)]))
def test_per_sample_evidence_equals_the_direct_one(pair, chunk, tolerance):
    golden, actual = pair
    with mock.patch.object(outputs, "CHUNK_ELEMENTS", chunk):  # chunks cut samples anywhere
        result = compare_output("o", golden, actual, tolerance, classification=False)
    if result.status in ("identical", "mismatch"):
        return
    finite = np.isfinite(golden)
    tiny = np.finfo(golden.dtype).tiny
    ref = np.where(np.abs(golden) < tiny, 0, golden).astype(np.float64)
    got = np.where(np.abs(actual) < tiny, 0, actual).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # (non-finite golden elements are masked out)
        err = np.where(finite, np.abs(got - ref), 0.0)
    scale = float(np.abs(ref[finite]).max())
    beyond = (err > tolerance.atol * scale + tolerance.rtol * np.abs(ref)) & finite
    per_sample = err.max(axis=1)
    assert result.samples == golden.shape[0]
    assert result.samples_beyond == int(beyond.any(axis=1).sum())
    assert result.consistency == pytest.approx(1 - beyond.any(axis=1).mean())
    moved = [(int(i), float(per_sample[i])) for i in np.flatnonzero(per_sample > 0)]
    assert result.worst_samples == tuple(sorted(moved, key=lambda pair: (-pair[1], pair[0]))[:5])
    counts = dict(result.sample_error_histogram)
    assert sum(counts.values()) == golden.shape[0] and counts.get("0", 0) == int(np.sum(per_sample == 0))


def _fields(result) -> dict:
    return {name: "NaN" if isinstance(value, float) and np.isnan(value) else value
            for name, value in dataclasses.asdict(result).items()}


def test_p99_by_radix_selection_meets_np_percentile_on_ties_and_powers_of_two():
    golden = np.ones(5000, np.float32)
    actual = golden.copy()
    actual[:4000] = np.float32(1.5)  # 80 % share one error value, the rest are exact
    actual[4000:4100] = np.float32(3.0)
    with mock.patch.object(outputs, "CHUNK_ELEMENTS", 64):
        result = compare_output("o", golden, actual, Tolerance())
    err = np.abs(actual.astype(np.float64) - 1.0)
    assert result.p99_abs == float(np.percentile(err, 99)) and result.p99_rel == result.p99_abs
    assert result.p99_ulp == float(np.percentile(_ulp_distance(golden, actual), 99))


# ------------------------------------------------------------------------------- zip bombs

def _npz_of_zeros(count: int) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros(count, np.float32))
    return buffer.getvalue()


def _declaring(data: bytes, size: int) -> bytes:
    """`data` (a one-member zip) with the member's uncompressed size in the central directory set to
    `size`: what zipfile believes it would inflate to."""
    at = data.rindex(b"PK\x01\x02") + 24
    return data[:at] + struct.pack("<I", size) + data[at + 4:]


def test_an_npz_declaring_gigabytes_is_refused_without_inflating_it(tmp_path):
    (tmp_path / "inputs.npz").write_bytes(_declaring(_npz_of_zeros(350_000), 1_500_000_000))
    assert (tmp_path / "inputs.npz").stat().st_size < 10_000
    with mock.patch.object(np, "load", side_effect=AssertionError("np.load must not be reached")), \
            pytest.raises(NpzError, match=r"member 'x\.npy' inflates to 1\.5 GB \(ratio \d+:1\): refused as a zip bomb"):
        read_npz(tmp_path / "inputs.npz")


def test_a_real_high_ratio_member_is_refused_past_the_floor(tmp_path, monkeypatch):
    (tmp_path / "outputs.npz").write_bytes(_npz_of_zeros(5_000_000))  # 20 MB of zeros, deflated ~1000:1
    assert read_npz(tmp_path / "outputs.npz")["x"].size == 5_000_000  # below the floor: harmless, read
    monkeypatch.setattr(capture, "NPZ_RATIO_FLOOR", 1 << 20)
    with pytest.raises(NpzError, match=r"inflates to 20 MB \(ratio \d{3,4}:1\): refused as a zip bomb"):
        read_npz(tmp_path / "outputs.npz")


def test_the_total_inflated_size_limit_comes_from_the_environment(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    np.savez(buffer, a=np.arange(1000, dtype=np.int64), b=np.arange(1000, dtype=np.int64))  # stored, 1:1
    (tmp_path / "x.npz").write_bytes(buffer.getvalue())
    assert set(read_npz(tmp_path / "x.npz")) == {"a", "b"}
    monkeypatch.setenv("ENVCHECK_MAX_NPZ_BYTES", "10000")
    with pytest.raises(NpzError, match=r"inflates to 16\.\d kB, more than the 10 kB allowed \(ENVCHECK_MAX_NPZ_BYTES"):
        read_npz(tmp_path / "x.npz")
    monkeypatch.setenv("ENVCHECK_MAX_NPZ_BYTES", "lots")
    with pytest.raises(NpzError, match="ENVCHECK_MAX_NPZ_BYTES='lots' is not a byte count"):
        read_npz(tmp_path / "x.npz")


def test_a_refused_outputs_npz_is_a_failed_target_naming_the_file(tmp_path):
    import json

    from envcheck.model import TargetFailure
    from envcheck.targets.exits import ChildExit, read_outcome

    (tmp_path / "capture.json").write_text(json.dumps({"schema": "envcheck.capture/1", "status": "ok",
                                                        "stage": "done", "fingerprint": {}, "error": None}))
    (tmp_path / "outputs.npz").write_bytes(_declaring(_npz_of_zeros(350_000), 3_000_000_000))
    outcome = read_outcome(tmp_path, "host", ChildExit(returncode=0))
    assert isinstance(outcome, TargetFailure) and outcome.kind == "no-outputs"
    assert "outputs.npz" in outcome.message and "refused as a zip bomb" in outcome.message


def test_zip_members_are_checked_from_the_directory_only():
    """The guard reads ZipInfo sizes: a declared size is the most zipfile will ever inflate."""
    data = _declaring(_npz_of_zeros(1000), 10)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (member,) = archive.infolist()
        assert member.file_size == 10
        with pytest.raises(zipfile.BadZipFile), archive.open(member) as handle:
            handle.read()  # stops at 10 bytes, then the CRC no longer matches
