"""Replica consistency against real servers: two KServe replicas of the edge golden's model behind Debian's nginx.

The odd replica computes differently on every machine: both replicas set TF_ENABLE_ONEDNN_OPTS explicitly, the
usual one to 1 and the odd one to 0, so one runs oneDNN's kernels and the other Eigen's whatever this CPU's
default is (TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX: setting
only the odd replica to 0 would change nothing elsewhere). nginx's weights 2:1 make its round robin give the
usual replica 4 of every 6 requests, so the odd one is a strict minority and can be named.
"""
from __future__ import annotations

import numpy as np
import pytest
from nginx import REPLICA_HEADER, load_balancer

from envcheck.compare.serving import REPLICAS_DISAGREE as CODE
from envcheck.compare.serving import replica_findings
from envcheck.targets.endpoint_client import Auth, parse_endpoint_spec
from envcheck.targets.replicas import check_replicas

REPEAT = 6
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def golden_set(edge_model) -> list[dict[str, np.ndarray]]:
    """The edge golden's inputs, in one request."""
    with np.load(edge_model.parent / "inputs.npz") as inputs:
        return [{name: inputs[name] for name in inputs.files}]


def _check(port: int, golden_set, header: str | None):
    spec = parse_endpoint_spec(f"v2+http://127.0.0.1:{port}/m")
    result = check_replicas(spec, Auth(), golden_set, REPEAT, header, timeout=TIMEOUT_S)
    return result, replica_findings(result.record())


def test_an_odd_replica_behind_nginx_gives_two_answer_sets_counted_and_named(replicas, golden_set, tmp_path):
    usual, odd = f"127.0.0.1:{replicas['usual']}", f"127.0.0.1:{replicas['odd']}"
    with load_balancer(tmp_path / "nginx", [(replicas["usual"], 2), (replicas["odd"], 1)]) as port:
        result, findings = _check(port, golden_set, REPLICA_HEADER)
    assert [(found.count, found.replicas) for found in result.answer_sets] == [(4, (usual,)), (2, (odd,))]
    assert result.odd_replicas == (odd,)
    assert any(each.max_abs > 0 for each in result.spread)  # oneDNN against Eigen: not bitwise equal
    (finding,) = findings
    assert finding.code == CODE and finding.severity == "warn"
    assert f"2 distinct answer sets in {REPEAT} repetitions" in finding.message
    assert "4× " in finding.message and "2× " in finding.message and f"odd replica: {odd}" in finding.message


def test_without_the_header_the_two_sets_are_still_counted(replicas, golden_set, tmp_path):
    with load_balancer(tmp_path / "nginx", [(replicas["usual"], 2), (replicas["odd"], 1)]) as port:
        result, findings = _check(port, golden_set, None)
    assert [(found.count, found.replicas) for found in result.answer_sets] == [(4, ()), (2, ())]
    (finding,) = findings
    assert "--replica-header" in finding.hint


def test_two_replicas_started_alike_give_one_answer_set(replicas, golden_set, tmp_path):
    with load_balancer(tmp_path / "nginx", [(replicas["usual"], 1), (replicas["alike"], 1)]) as port:
        result, findings = _check(port, golden_set, REPLICA_HEADER)
    (only,) = result.answer_sets
    assert only.count == REPEAT and only.replicas == tuple(sorted(
        f"127.0.0.1:{replicas[role]}" for role in ("usual", "alike")))  # both answered, alike
    assert findings == () and result.spread == ()
