"""The pytest plugin takes an endpoint target like any other (issue 26, item 6): a team's suite gates a running
service with `--envcheck-target v2+http://…`, against the session's real KServe server."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
def test_service_matches_golden(envcheck, envcheck_target):
    envcheck.check(envcheck_target).assert_ok()
"""


@pytest.mark.parametrize(("model", "outcome"), [("m", "passed"), ("other", "failed")])
def test_the_plugin_gates_a_serving_endpoint(pytester, kserve, model, outcome):
    pytester.makepyfile(test_service=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envcheck-golden", "builtin:edge",
                                           "--envcheck-target", kserve.spec("v2", model), timeout=600)
    result.assert_outcomes(**{outcome: 1})
    assert "Traceback" not in result.stdout.str()
    assert list((pytester.path / "reports").glob("envcheck-*.json")), "no report kept"
