"""The harness's own guard: infrastructure that is missing skips a test on a developer's machine and fails it in
CI (CI=true), for a missing Python module as for anything else, so a green CI run means every test really ran."""
from __future__ import annotations

import pytest

import helpers

pytestmark = [pytest.mark.control]

NO_SUCH_MODULE = "envcheck_test_no_such_module"


@pytest.mark.parametrize("in_ci, outcome", [pytest.param(True, pytest.fail.Exception, id="ci-fails"),
                                            pytest.param(False, pytest.skip.Exception, id="locally-skips")])
def test_a_missing_module_fails_in_ci_and_skips_locally(monkeypatch, in_ci, outcome):
    monkeypatch.setattr(helpers, "IN_CI", in_ci)
    with pytest.raises(outcome) as caught:
        helpers.require_module(NO_SUCH_MODULE)
    assert NO_SUCH_MODULE in str(caught.value) and "missing test infrastructure" in str(caught.value)


def test_a_present_module_is_returned():
    import json
    assert helpers.require_module("json") is json


def test_no_test_skips_a_missing_module_by_itself():
    """`pytest.importorskip` skips in CI too: every test goes through require_module instead."""
    offenders = [str(path.relative_to(helpers.REPO)) for path in (helpers.REPO / "tests").rglob("*.py")
                 if "importorskip(" in path.read_text() and path.name != "test_helpers.py"]
    assert offenders == []
