"""`check`'s replica and load options, and the policy's P99 budget, without a server: what the options build,
the one-line usage errors (exit 2) of options that do not fit, and `[latency] p99_ms` read and refused. The
runs against real servers are tests/endpoint/test_serving_cli.py."""
from __future__ import annotations

import numpy as np
import pytest

from envcheck.cli import main
from envcheck.compare.outputs import _ulp_distance
from envcheck.compare.policy import PolicyFileError, build_policy, validate_policy
from envcheck.errors import UsageError
from envcheck.targets.endpoint import EndpointTarget, ServingChecks, with_serving_checks
from envcheck.ulp import ulp_distance

ENDPOINT = "v2+http://127.0.0.1:9/m"


def usage_code(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of a `check` that may exit through argparse or return its code."""
    try:
        code = main(["check", *argv])
    except SystemExit as stopped:
        code = stopped.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


@pytest.mark.parametrize("argv, says", [
    pytest.param(["--repeat", "1"], "--repeat", id="repeat-one"),
    pytest.param(["--repeat", "x"], "--repeat", id="repeat-not-a-number"),
    pytest.param(["--concurrency", "0", "--requests", "3"], "--concurrency", id="concurrency-zero"),
    pytest.param(["--concurrency", "2", "--duration", "0"], "--duration", id="duration-zero"),
    pytest.param(["--concurrency", "2", "--requests", "0"], "--requests", id="requests-zero"),
])
def test_values_out_of_range_are_usage_errors(capsys, argv, says):
    code, err = usage_code(capsys, "--target", ENDPOINT, *argv)
    assert code == 2 and says in err


@pytest.mark.parametrize("argv, says", [
    pytest.param(["--concurrency", "4"], "--concurrency needs a bound", id="unbounded"),
    pytest.param(["--requests", "4"], "give --concurrency N too", id="bound-alone"),
    pytest.param(["--replica-header", "X-Replica"], "give --repeat R too", id="header-alone"),
])
def test_options_that_do_not_fit_together_are_one_line_usage_errors(capsys, argv, says):
    code, err = usage_code(capsys, "--target", ENDPOINT, *argv)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv", [["--repeat", "3"], ["--concurrency", "2", "--requests", "4"]])
def test_serving_options_without_an_endpoint_target_are_a_usage_error(capsys, argv):
    code, err = usage_code(capsys, "--target", "host", *argv)
    assert code == 2 and "apply to endpoint targets only" in err and len(err.strip().splitlines()) == 1, err


def test_the_options_reach_every_endpoint_target_and_no_other():
    checks = ServingChecks.from_options(repeat=6, replica_header="X-Replica", concurrency=2, requests=20)
    endpoint = EndpointTarget.from_spec(ENDPOINT)
    other = object()
    given = with_serving_checks([endpoint, other], checks)
    assert given[0].serving == ServingChecks(6, "X-Replica", 2, None, 20) and given[1] is other
    assert ServingChecks.from_options() is None and with_serving_checks([other], None) == [other]
    with pytest.raises(UsageError, match="endpoint targets only"):
        with_serving_checks([other], checks)


def test_the_p99_budget_is_read_from_the_policy():
    assert build_policy({}).latency_p99_ms is None
    assert build_policy({"latency": {"p99_ms": 250}}).latency_p99_ms == 250.0
    # A layer replaces exactly the keys it sets: the budget survives a layer that sets the ratios only.
    assert build_policy({"latency": {"p99_ms": 40.5}}, {"latency": {"warn_ratio": 2}}).latency_p99_ms == 40.5


@pytest.mark.parametrize("value, says", [(0, "above 0 ms"), (-5, "above 0 ms"), (float("nan"), "above 0 ms"),
                                         ("fast", "number")])
def test_a_p99_budget_that_is_no_positive_number_is_refused_naming_the_key(value, says):
    with pytest.raises(PolicyFileError) as refused:
        validate_policy({"latency": {"p99_ms": value}}, "policy.toml")
    assert "`[latency] p99_ms`" in str(refused.value) and says in str(refused.value)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_the_shared_ulp_ruler_measures_as_the_output_comparison_does(dtype):
    """envcheck/ulp.py is the one ULP mapping (the replica spread's and the comparison's): same distances."""
    rng = np.random.default_rng(7)
    golden = np.concatenate([rng.normal(size=200), [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]]).astype(dtype)
    actual = np.concatenate([rng.normal(size=200), [-0.0, 0.0, -1e-30, 1e-30, np.inf, 1.0]]).astype(dtype)
    with np.errstate(all="ignore"):
        assert np.array_equal(ulp_distance(golden, actual), _ulp_distance(golden, actual))
    assert ulp_distance(np.arange(3), np.arange(3)) is None
