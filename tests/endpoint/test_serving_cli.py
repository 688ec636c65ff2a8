"""`envcheck check` with --repeat and --concurrency against real servers: the session's three KServe replicas
behind Debian's nginx (tests/endpoint/conftest.py, nginx.py) and the session's KServe server. Through the CLI,
the JSON report and the terminal, as a CI job reads them."""
from __future__ import annotations

import json

import pytest
from nginx import REPLICA_HEADER, load_balancer

from envcheck.compare.serving import LOAD_OVER_BUDGET, REPLICAS_DISAGREE

EDGE = ("--golden", "builtin:edge")
REPEAT = "6"


def check(run_cli, *argv: str):
    """(exit code, stdout, stderr, the one target's report record)."""
    code, out, err, document = run_cli("check", *EDGE, *argv)
    assert "Traceback" not in out + err
    return code, out, err, (document["targets"][0] if document else None)


def findings(target: dict, code: str) -> list[dict]:
    return [finding for finding in target["findings"] if finding["code"] == code]


@pytest.fixture
def balancer(replicas, tmp_path):
    """nginx in front of two replicas, as the test names them by role and weight: its port."""
    def start(*roles: tuple[str, int]):
        return load_balancer(tmp_path / "nginx", [(replicas[role], weight) for role, weight in roles])
    return start


def test_an_odd_replica_behind_nginx_is_a_finding_naming_both_sets_their_counts_and_the_replica(
        run_cli, replicas, balancer):
    odd = f"127.0.0.1:{replicas['odd']}"
    with balancer(("usual", 2), ("odd", 1)) as port:
        code, out, err, target = check(run_cli, "--target", f"v2+http://127.0.0.1:{port}/m", "--repeat", REPEAT,
                                       "--replica-header", REPLICA_HEADER)
    assert code in (0, 1) and target["verdict"] != "ERROR", (out, err)  # judged: a warn finding, not exit 3
    record = target["target"]["replicas"]
    assert [answer_set["count"] for answer_set in record["answer_sets"]] == [4, 2]
    assert record["odd_replicas"] == [odd] and record["header"] == REPLICA_HEADER
    (finding,) = findings(target, REPLICAS_DISAGREE)
    assert f"2 distinct answer sets in {REPEAT} repetitions" in finding["message"]
    assert "4× " in finding["message"] and "2× " in finding["message"] and f"odd replica: {odd}" in finding["message"]
    assert REPLICAS_DISAGREE in out and f"odd replica: {odd}" in out  # the terminal says it too


def test_two_replicas_started_alike_give_no_replica_finding(run_cli, balancer):
    with balancer(("usual", 1), ("alike", 1)) as port:
        code, out, err, target = check(run_cli, "--target", f"v2+http://127.0.0.1:{port}/m", "--repeat", REPEAT,
                                       "--replica-header", REPLICA_HEADER)
    assert code in (0, 1) and target["verdict"] != "ERROR", (out, err)  # judged: a warn finding, not exit 3
    assert target["target"]["replicas"]["distinct"] == 1 and findings(target, REPLICAS_DISAGREE) == []
    assert REPLICAS_DISAGREE not in out


def test_a_load_run_records_percentiles_and_a_tiny_p99_budget_fails(run_cli, kserve, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[latency]\np99_ms = 0.001\n")
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "m"), "--concurrency", "2",
                                   "--requests", "20", "--policy", str(policy))
    load = target["target"]["load"]
    assert load["concurrency"] == 2 and load["answered"] == 20 and load["failed"] == 0, load
    assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"]
    assert code == 1 and target["verdict"] == "FAIL", out
    (finding,) = findings(target, LOAD_OVER_BUDGET)
    assert finding["severity"] == "fail" and "over the budget of 0.001 ms" in finding["message"]
    assert LOAD_OVER_BUDGET in out


def test_a_generous_p99_budget_passes_and_the_report_keeps_the_record(run_cli, kserve, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[latency]\np99_ms = 600000\n")
    code, out, _, target = check(run_cli, "--target", kserve.spec("v2", "m"), "--concurrency", "1",
                                 "--requests", "3", "--policy", str(policy))
    assert code == 0 and findings(target, LOAD_OVER_BUDGET) == [], out
    assert json.dumps(target["target"]["load"])  # plain JSON: a report read back judges it alike
