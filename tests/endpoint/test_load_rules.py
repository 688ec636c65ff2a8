"""The load generator's rules on a plain in-process client (no server): bounds, error kinds, bugs, the P99 judge,
progress lines. The run against a real server is tests/endpoint/test_load.py."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from envcheck.compare.serving import LOAD_OVER_BUDGET as CODE
from envcheck.compare.serving import judge_load
from envcheck.errors import TargetUnavailable, UsageError
from envcheck.targets.endpoint_client import Auth, parse_endpoint_spec
from envcheck.targets.load import LoadProgress, LoadResult, run_load


class Unavailable(TargetUnavailable):
    kind = "endpoint-http-503"


class PlainClient:
    """Answers after `delay_s`; every `fail_every`-th request of the whole run fails with an HTTP 503, after which
    this client refuses to be used again (a broken connection), so a run that reused it would count other errors."""

    opened = 0
    sent = 0
    lock = threading.Lock()

    def __init__(self, delay_s: float, fail_every: int | None):
        self.delay_s, self.fail_every, self.broken = delay_s, fail_every, False
        with PlainClient.lock:
            PlainClient.opened += 1

    def infer(self, inputs):
        if self.broken:
            raise TargetUnavailable("reused a failed connection")
        time.sleep(self.delay_s)
        with PlainClient.lock:
            PlainClient.sent += 1
            number = PlainClient.sent
        if self.fail_every and number % self.fail_every == 0:
            self.broken = True
            raise Unavailable("503")

    def close(self):
        pass


def _connect(delay_s=0.002, fail_every=None):
    PlainClient.opened = PlainClient.sent = 0
    return lambda spec, **options: PlainClient(delay_s, fail_every)


def test_a_request_count_is_exact_across_concurrent_clients():
    result = run_load(None, None, {}, concurrency=4, requests=50, timeout=5, connect=_connect())
    assert result.answered == 50 and result.errors == {} and PlainClient.opened == 4
    record = result.record()
    assert record["p50_ms"] <= record["p95_ms"] <= record["p99_ms"] and record["rate_per_s"] > 0


def test_a_duration_bounds_the_run():
    started = time.monotonic()
    result = run_load(None, None, {}, concurrency=2, duration_s=0.3, timeout=5, connect=_connect(delay_s=0.01))
    assert 0.3 <= time.monotonic() - started < 2 and result.answered > 0


def test_errors_are_counted_by_kind_and_a_failed_connection_is_not_reused():
    result = run_load(None, None, {}, concurrency=2, requests=20, timeout=5, connect=_connect(fail_every=4))
    assert result.errors == {"endpoint-http-503": 5} and result.answered == 15
    assert result.record()["failed"] == 5


def test_a_bug_in_a_client_thread_stops_the_run_and_is_raised_not_counted_as_a_server_error():
    def broken(spec, **options):
        raise ZeroDivisionError("a bug")

    started = time.monotonic()
    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_load(None, None, {}, concurrency=3, duration_s=30, timeout=5, connect=broken)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("bounds", [{}, {"duration_s": 0}, {"requests": 0}], ids=["none", "zero-duration", "zero-count"])
def test_a_run_without_a_positive_bound_is_a_usage_error(bounds):
    with pytest.raises(UsageError):
        run_load(None, None, {}, concurrency=1, timeout=5, connect=_connect(), **bounds)


def test_zero_clients_is_a_usage_error():
    with pytest.raises(UsageError, match="--concurrency"):
        run_load(None, None, {}, concurrency=0, requests=1, timeout=5, connect=_connect())


def _record(latencies_ms, errors=None):
    return LoadResult(concurrency=4, wall_s=1.0, latencies_s=tuple(np.asarray(latencies_ms) / 1e3),
                      errors=errors or {}).record()


def test_the_p99_budget_passes_or_fails_on_the_measured_p99():
    record = _record(np.linspace(1, 100, 1000))
    assert judge_load(record, 60000) == ()
    (finding,) = judge_load(record, 0.001)
    assert finding.code == CODE and finding.severity == "fail"
    assert "over the budget of 0.001 ms" in finding.message and "4 concurrent clients" in finding.message


def test_no_budget_no_judgement_and_nothing_answered_fails_a_budget():
    assert judge_load(_record([5.0]), None) == () and judge_load(None, 10) == ()
    (finding,) = judge_load(_record([], errors={"endpoint-timeout": 3}), 10)
    assert "no request was answered" in finding.message and "3 failed" in finding.message


def test_a_malformed_record_is_read_never_a_crash():
    (finding,) = judge_load({"p99_ms": 5.0, "p50_ms": "x", "rate_per_s": None}, 1)
    assert finding.code == CODE


def test_percentiles_follow_numpy():
    values = np.random.default_rng(0).exponential(5.0, 997)
    got = LoadResult(concurrency=1, wall_s=1.0, latencies_s=tuple(values / 1e3), errors={}).percentiles_ms()
    assert [got["p50_ms"], got["p95_ms"], got["p99_ms"]] == pytest.approx(np.percentile(values, [50, 95, 99]))


def test_progress_off_a_terminal_is_a_plain_line_a_second(capsys):
    progress = LoadProgress("v2+http://127.0.0.1:1/m")
    assert not progress.live
    with progress:
        for tenth in range(25):
            progress.tick(answered=tenth * 10, failed=0, elapsed_s=tenth / 10)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("envcheck: v2+http://127.0.0.1:1/m: ") for line in lines)


def test_a_server_that_is_not_there_gives_errors_by_kind_through_the_real_client():
    with socket.socket() as closed:  # a port bound and never listened on: connections are refused
        closed.bind(("127.0.0.1", 0))
        spec = parse_endpoint_spec(f"v2+http://127.0.0.1:{closed.getsockname()[1]}/m")
        result = run_load(spec, Auth(), {"image": np.zeros((1, 2), np.float32)}, concurrency=2, requests=6, timeout=5)
    assert result.answered == 0 and result.errors == {"endpoint-unreachable": 6}
    (finding,) = judge_load(result.record(), 100)
    assert "no request was answered" in finding.message


@pytest.mark.parametrize("rule, expected", [(None, ["fail"]), ("warn", ["warn"]), ("ignore", [])])
def test_the_budget_finding_goes_through_the_one_severity_pipeline(rule, expected):
    from envcheck.compare.policy import build_policy
    from envcheck.compare.severity import resolve_findings

    policy = build_policy({"severity": {f"finding.{CODE}": rule}} if rule else {})
    found = resolve_findings(judge_load(_record([5.0, 9.0]), 1), policy)
    assert [finding.severity for finding in found] == expected


def test_rules_written_for_the_goldens_latency_leave_the_budget_alone():
    """`finding.latency-*` rules (latency-slower: against the golden's in-process latency) predate the budget:
    the budget, which the policy's owner set on purpose, is not silenced by them."""
    from envcheck.compare.policy import build_policy
    from envcheck.compare.severity import resolve_findings

    policy = build_policy({"severity": [["finding.latency-*", "ignore"]]})
    assert [f.code for f in resolve_findings(judge_load(_record([5.0]), 1), policy)] == [CODE]
