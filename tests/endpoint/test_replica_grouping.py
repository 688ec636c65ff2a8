"""The replica check's grouping and judging, on plain arrays (no server): digests, counts, spread, odd replicas.
The real servers behind nginx are tests/endpoint/test_replicas.py."""
from __future__ import annotations

import numpy as np
import pytest

from envcheck.compare.serving import REPLICAS_DISAGREE as CODE
from envcheck.compare.serving import replica_findings
from envcheck.targets.replicas import answer_digest, group_answers, spread


def _answer(values, *, extra=None):
    outputs = {"probabilities": np.asarray(values, dtype=np.float32)}
    if extra is not None:
        outputs["classes"] = np.asarray(extra, dtype=np.int64)
    return outputs


def _moved(values, ulp):
    """`values` moved `ulp` float32 steps along the number line, exactly (all BASE values are positive or the
    step stays inside one sign)."""
    array = np.asarray(values, dtype=np.float32)
    sign = np.where(array < 0, -1, 1).astype(np.int32)
    return (array.view(np.int32) + sign * np.int32(ulp)).view(np.float32)


BASE = [[0.25, 0.5, 0.125], [1.0, -2.0, 3.0]]


def test_one_answer_set_when_every_repetition_agrees_bitwise():
    result = group_answers([(_answer(BASE), "a"), (_answer(BASE), "b"), (_answer(BASE), "a")], "X-Replica")
    assert [(s.count, s.replicas) for s in result.answer_sets] == [(3, ("a", "b"))]
    assert result.spread == () and result.odd_replicas == ()
    assert replica_findings(result.record()) == ()


def test_two_answer_sets_counted_and_the_minority_replica_named_odd():
    odd = _moved(BASE, 3)
    result = group_answers([(_answer(BASE), "10.0.0.1:80"), (_answer(odd), "10.0.0.2:80"),
                            (_answer(BASE), "10.0.0.1:80"), (_answer(BASE), "10.0.0.1:80")], "X-Replica")
    assert [(s.count, s.repetitions, s.replicas) for s in result.answer_sets] == [
        (3, (0, 2, 3), ("10.0.0.1:80",)), (1, (1,), ("10.0.0.2:80",))]
    assert result.odd_replicas == ("10.0.0.2:80",)
    assert [s.digest for s in result.answer_sets] == [answer_digest(_answer(BASE)), answer_digest(_answer(odd))]
    (found,) = result.spread
    assert found.output == "probabilities" and found.max_ulp == 3
    assert found.max_abs == pytest.approx(float(np.max(np.abs(odd.astype(np.float64) - np.asarray(BASE)))))
    (finding,) = replica_findings(result.record())
    assert finding.code == CODE and finding.severity == "warn"
    assert "2 distinct answer sets in 4 repetitions" in finding.message
    assert "3× " in finding.message and "1× " in finding.message
    assert "odd replica: 10.0.0.2:80" in finding.message and "3 ULP" in finding.message


def test_a_tie_names_no_replica_odd_but_says_which_gave_which():
    result = group_answers([(_answer(BASE), "a"), (_answer(_moved(BASE, 1)), "b")], "X-Replica")
    assert result.odd_replicas == ()
    (finding,) = replica_findings(result.record())
    assert "(from a)" in finding.message and "(from b)" in finding.message
    assert "no set has a majority" in finding.message


def test_without_a_header_the_sets_are_counted_and_the_hint_says_how_to_name_replicas():
    result = group_answers([(_answer(BASE), None), (_answer(_moved(BASE, 1)), None), (_answer(BASE), None)], None)
    assert [s.count for s in result.answer_sets] == [2, 1] and all(s.replicas == () for s in result.answer_sets)
    (finding,) = replica_findings(result.record())
    assert "--replica-header" in finding.hint and "odd replica" not in finding.message


def test_the_spread_is_the_largest_difference_over_every_pair_of_sets():
    sets = [_answer(BASE), _answer(_moved(BASE, 2)), _answer(_moved(BASE, -5))]
    (found,) = spread(sets)
    assert found.max_ulp == 7  # +2 against −5: the widest pair, not either one against the first


def test_ulp_distance_crosses_zero_on_one_line():
    below, above = np.array([-0.0], np.float32), np.array([np.float32(1e-45)], np.float32)  # −0, first subnormal
    (found,) = spread([{"y": below}, {"y": above}])
    assert found.max_ulp == 1


def test_a_non_float_output_has_an_absolute_spread_and_no_ulp():
    (probabilities, classes) = spread([_answer(BASE, extra=[1, 2]), _answer(_moved(BASE, 1), extra=[1, 4])])
    assert classes.output == "classes" and classes.max_abs == 2 and classes.max_ulp is None
    assert probabilities.max_ulp == 1


def test_the_digest_follows_golden_order_dtype_and_shape():
    values = np.arange(6, dtype=np.float32)
    assert answer_digest({"a": values, "b": values}) != answer_digest({"b": values, "a": values})
    assert answer_digest({"a": values}) != answer_digest({"a": values.reshape(2, 3)})
    assert answer_digest({"a": values}) != answer_digest({"a": values.astype(np.float64)})


def test_no_record_or_a_malformed_one_is_no_finding():
    assert replica_findings(None) == () and replica_findings({"answer_sets": "xyz"}) == ()
    assert replica_findings({"answer_sets": [1, 2]}) == ()
    (finding,) = replica_findings({"answer_sets": [{}, {"count": "x"}], "spread": [{"max_abs": "y"}]})
    assert finding.code == CODE  # a record of any shape is read, never a crash


@pytest.mark.parametrize("rule, expected", [(None, ["warn"]), ("fail", ["fail"]), ("ignore", [])])
def test_the_finding_goes_through_the_one_severity_pipeline(rule, expected):
    from envcheck.compare.policy import build_policy
    from envcheck.compare.severity import resolve_findings

    record = group_answers([(_answer(BASE), None), (_answer(_moved(BASE, 1)), None)], None).record()
    policy = build_policy({"severity": {f"finding.{CODE}": rule}} if rule else {})
    assert [finding.severity for finding in resolve_findings(replica_findings(record), policy)] == expected
