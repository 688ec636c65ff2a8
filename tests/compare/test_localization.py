"""compare/localization.py on layer records built here (no TensorFlow): first divergence, origins, jumps,
fused_only, and records it cannot use."""
from __future__ import annotations

import base64
import hashlib

import numpy as np
import pytest

from envcheck.compare.localization import localize


def tensor(key: str, values, inputs=(), op: str = "AddV2", opaque: int = 0) -> dict:
    array = np.asarray(values, dtype=np.float32)
    return {"key": key, "op": op, "dtype": "float32", "shape": list(array.shape),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(), "nonfinite": 0,
            "min": float(array.min()), "max": float(array.max()), "mean": float(array.mean()), "std": float(array.std()),
            "sample": base64.b64encode(array.astype("<f4").tobytes()).decode(), "inputs": list(inputs),
            "opaque_inputs": opaque}


def record(*tensors: dict, outputs=None) -> dict:
    return {"schema": "envcheck.layers/1", "status": "ok", "mode": "unfused", "samples": 4, "complete": True,
            "tensors": list(tensors), "outputs": outputs or {"y": tensors[-1]["key"]}}


ONE = np.float32(1.0)
ULP = float(np.spacing(ONE))


def chain(b_shift: float = 0.0, c_shift: float = 0.0) -> dict:
    """a → b (a MatMul) → c (the output): b and c moved by the given number of ULP at 1."""
    return record(tensor("a:0", [1.0, 0.5]),
                  tensor("b:0", [1.0 + b_shift * ULP, 0.5], inputs=["a:0"], op="MatMul"),
                  tensor("c:0", [1.0 + c_shift * ULP, 0.25], inputs=["b:0"]))


def test_the_first_divergent_tensor_is_the_origin_and_the_growth_is_measured():
    where = localize(chain(), chain(b_shift=1, c_shift=8), outputs_drift=True)
    assert where["status"] == "ok" and where["divergent"] == 2
    assert where["first_divergence"]["key"] == "b:0" and where["first_divergence"]["error_ulp"] == 1.0
    assert [o["key"] for o in where["origins"]] == ["b:0"] and where["origin_ops"] == {"MatMul": 1}
    assert where["largest_jump"]["key"] == "c:0" and where["largest_jump"]["factor"] == 8.0
    assert where["growth_to_output"] == {"output": "y", "key": "c:0", "error_ulp": 8.0, "factor": 8.0}
    assert where["summary"] == "first divergence at `b:0` (MatMul), 1 ULP, grows ×8 to the output"
    assert [row[2] for row in where["layers"]] == [0, 1.0, 8.0] and [row[3] for row in where["layers"]] == [False, True, False]


def test_an_op_with_opaque_inputs_is_never_an_origin():
    mine = record(tensor("a:0", [1.0]), tensor("loop:0", [1.0], op="TensorListStack", opaque=1))
    theirs = record(tensor("a:0", [1.0]), tensor("loop:0", [1.0 + ULP], op="TensorListStack", opaque=1))
    where = localize(mine, theirs, outputs_drift=True)
    assert where["first_divergence"]["key"] == "loop:0" and where["origins"] == []


def test_every_layer_equal_but_the_outputs_drift_is_fused_only():
    where = localize(chain(), chain(), outputs_drift=True)
    assert where["fused_only"] is True and where["status"] == "ok" and "fused kernel" in where["summary"]
    same = localize(chain(), chain(), outputs_drift=False)
    assert same["status"] == "identical" and same["fused_only"] is False


def test_a_difference_outside_the_kept_elements_still_diverges():
    mine, theirs = chain(), chain()
    theirs["tensors"][1]["sha256"] = "0" * 64  # the bytes differ where no element was kept
    where = localize(mine, theirs, outputs_drift=True)
    assert where["first_divergence"]["key"] == "b:0" and where["first_divergence"]["error_ulp"] == 0
    assert "outside the elements kept" in where["summary"]


def test_unmatched_tensors_lower_the_coverage():
    theirs = chain()
    theirs["tensors"][2]["shape"] = [3]
    where = localize(chain(), theirs, outputs_drift=False)
    assert where["coverage"] == {"matched": 2, "reference": 3, "target": 3, "complete": True}


@pytest.mark.parametrize("edit, says", [
    (lambda r: r.update(samples=8), "different samples"),
    (lambda r: r.update(tensors=[tensor("other:0", [1.0])]), "no tensor of one record matches"),
    (lambda r: r.update(status="unsupported", reason="no inliner here"), "no inliner here"),
    (lambda r: r.update(schema="envcheck.layers/9"), "newer envcheck"),
    (lambda r: r["tensors"][0].update(shape="wide"), "$.tensors[0].shape"),
    (lambda r: r["tensors"][1].pop("sha256"), "sha256"),
    (lambda r: r.update(tensors=None), "$.tensors"),
])
def test_a_record_that_cannot_be_used_is_unsupported_never_an_exception(edit, says):
    theirs = chain()
    edit(theirs)
    where = localize(chain(), theirs, outputs_drift=True)
    assert where["status"] == "unsupported" and says in where["reason"], where


def test_no_record_at_all_is_unsupported_naming_the_side():
    assert "the target has no layer record" in localize(chain(), None, outputs_drift=False)["reason"]
    assert "the golden has no layer record" in localize([], chain(), outputs_drift=False)["reason"]


def test_nan_appearing_is_named_never_a_number_of_ulp():
    theirs = chain()
    theirs["tensors"][1].update(sha256="1" * 64, nonfinite=3)
    where = localize(chain(), theirs, outputs_drift=True)
    first = where["first_divergence"]
    assert first["key"] == "b:0" and first["nonfinite"] is True and first["error_ulp"] is None
    assert "NaN/Inf elements appear or vanish" in where["summary"]


def test_absurd_statistics_never_put_nan_or_infinity_in_a_report():
    import json
    theirs = chain(b_shift=1)
    theirs["tensors"][1]["max"] = 1e308
    theirs["tensors"][1]["min"] = -1e308
    json.dumps(localize(chain(), theirs, outputs_drift=True), allow_nan=False)
