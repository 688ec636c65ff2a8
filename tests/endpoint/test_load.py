"""The load generator against a real KServe server of the edge golden's model: four closed-loop clients for
about three seconds, percentiles in order, no errors, and the policy's P99 budget judged both ways."""
from __future__ import annotations

import numpy as np
import pytest

from envcheck.compare.serving import LOAD_OVER_BUDGET as CODE
from envcheck.compare.serving import judge_load
from envcheck.targets.endpoint_client import Auth, parse_endpoint_spec
from envcheck.targets.load import run_load


@pytest.fixture(scope="module")
def load_record(kserve, edge_model) -> dict:
    """Four clients for three seconds against the session's KServe server (model `m`), one golden sample per
    request."""
    with np.load(edge_model.parent / "inputs.npz") as inputs:
        one_sample = {name: inputs[name][:1] for name in inputs.files}
    spec = parse_endpoint_spec(kserve.spec("v2", "m"))
    return run_load(spec, Auth(), one_sample, concurrency=4, duration_s=3.0, timeout=60).record()


def test_four_clients_for_three_seconds_answer_with_ordered_percentiles_and_no_errors(load_record):
    assert load_record["concurrency"] == 4 and load_record["errors"] == {} and load_record["failed"] == 0
    assert load_record["answered"] >= 4 and load_record["rate_per_s"] > 0
    assert 0 < load_record["p50_ms"] <= load_record["p95_ms"] <= load_record["p99_ms"]
    assert 3.0 <= load_record["wall_s"] < 3.0 + 60  # the bound, plus at most the requests still in flight


def test_a_tiny_p99_budget_fails_and_a_generous_one_passes(load_record):
    (finding,) = judge_load(load_record, 0.001)
    assert finding.code == CODE and finding.severity == "fail" and "over the budget of 0.001 ms" in finding.message
    assert judge_load(load_record, 60000) == ()

