"""Findings about installed files and start-up code (compare/findings.py), their registry severities
(fields.INTEGRITY_FINDINGS) and the hint when they are all that differs (compare/explain.py). No probe runs."""
from __future__ import annotations

import pytest

from envcheck.compare.explain import hints_for
from envcheck.compare.findings import find_problems
from envcheck.compare.policy import Policy
from envcheck.compare.severity import resolve_findings
from envcheck.model import FingerprintDifference, OutputComparison, Tolerance

CLEAN = {"version": "2.21.0", "checked": 10, "modified": [], "missing": [], "unowned": []}
PTH = {"name": "hotfix.pth", "path": "/site/hotfix.pth", "owner": None, "sha256": "ab" * 32, "lines": ["import hotfix"]}
SETUPTOOLS_PTH = {"name": "distutils-precedence.pth", "path": "/site/distutils-precedence.pth", "owner": "setuptools",
                  "sha256": "cd" * 32, "lines": ["import os"]}


def _fingerprint(python=None, system=None, startup=None) -> dict:
    return {"integrity": {"mode": "numerics", "python": python or {"numpy": CLEAN},
                          "system": system or {"status": "ok", "checked": 3, "modified": [], "unowned": []},
                          "startup": {"pth": [], "ld_so_preload": [], "ld_preload": [], "pythonpath": [],
                                      "sitecustomize": None, "usercustomize": None, "pythonstartup": None,
                                      **(startup or {})}}}


def _integrity(findings):
    return [(f.code, f.severity) for f in findings]


def test_a_clean_target_has_no_finding():
    assert find_problems(_fingerprint(), _fingerprint()) == ()


@pytest.mark.parametrize("distribution, severity", [
    pytest.param("tensorflow-cpu", "fail", id="tensorflow-fails"),
    pytest.param("numpy", "fail", id="numpy-fails"),
    pytest.param("keras", "warn", id="others-warn"),
])
def test_a_modified_file_is_named_at_its_registry_severity(distribution, severity):
    target = _fingerprint(python={distribution: {**CLEAN, "modified": ["pkg/ops.py"]}})
    (finding,) = find_problems(target, _fingerprint())
    assert (finding.code, finding.severity) == ("installed-file-modified", severity)
    assert "pkg/ops.py" in finding.message and distribution in finding.message and "likely cause" in finding.hint


def test_what_the_golden_shows_too_is_no_finding():
    hotfixed = _fingerprint(python={"numpy": {**CLEAN, "modified": ["numpy/a.py"], "unowned": ["numpy/x.so"]}},
                            system={"status": "ok", "checked": 3, "modified": [], "unowned": ["/opt/libx.so"]},
                            startup={"pth": [PTH]})
    assert find_problems(hotfixed, hotfixed) == ()
    assert _integrity(find_problems(hotfixed, _fingerprint())) == [
        ("installed-file-modified", "fail"), ("installed-file-unowned", "warn"), ("system-library-unowned", "warn"),
        ("startup-code", "warn")]


def test_many_files_are_named_up_to_five():
    paths = [f"numpy/f{i}.py" for i in range(8)]
    (finding,) = find_problems(_fingerprint(python={"numpy": {**CLEAN, "missing": paths}}), _fingerprint())
    assert finding.code == "installed-file-missing" and "numpy/f4.py and 3 more" in finding.message


def test_against_a_golden_without_a_record_only_code_no_package_installed_is_named():
    """The built-in golden predates the record: setuptools' own .pth is no finding, a hand-made one is."""
    target = _fingerprint(startup={"pth": [SETUPTOOLS_PTH, PTH], "pythonpath": ["/opt/hotfix"]})
    (finding,) = find_problems(target, {})
    assert finding.code == "startup-code" and "/site/hotfix.pth" in finding.message
    assert "import hotfix" in finding.message and "installed by no package" in finding.message


def test_start_up_code_absent_from_the_golden_is_named_each():
    preload = {"name": "libhotfix.so.1", "path": "/usr/local/lib/libhotfix.so.1", "owner": None, "sha256": "ef" * 32}
    target = _fingerprint(startup={"pth": [SETUPTOOLS_PTH], "ld_so_preload": [preload], "pythonpath": ["/opt/hotfix"]})
    golden = _fingerprint(startup={"pth": [{**SETUPTOOLS_PTH, "path": "/venv/distutils-precedence.pth"}]})
    messages = [f.message for f in find_problems(target, golden)]
    # The same .pth elsewhere is the same code; PYTHONPATH is recorded but names no finding (a runner's own).
    assert len(messages) == 1
    assert "/usr/local/lib/libhotfix.so.1" in messages[0] and "/etc/ld.so.preload" in messages[0]


def test_a_policy_rule_decides_the_severity_once():
    target = _fingerprint(python={"tensorflow-cpu": {**CLEAN, "modified": ["tensorflow/x.py"]}})
    policy = Policy(user_rules=(("finding.installed-file-modified", "warn"),))
    (finding,) = resolve_findings(find_problems(target, _fingerprint()), policy)
    assert finding.severity == "warn"


def _drift() -> OutputComparison:
    return OutputComparison(name="embedding", status="drift", reason=None, tolerance=Tolerance(), shape=(2, 3),
                            max_abs=1e-3, max_rel=1e-2, max_ulp=9000, p99_rel=1e-3, p99_ulp=8000)


def test_when_outputs_drift_and_only_a_file_differs_the_hint_names_it_as_the_likely_cause():
    diff = FingerprintDifference(path="integrity.python.numpy.modified", golden=[], target=["numpy/a.py"],
                                 severity="info", missing=(), extra=("numpy/a.py",))
    (hint,) = [h for h in hints_for([diff], [_drift()]) if "installed files" in h]
    assert "numpy/a.py" in hint and "likely cause" in hint
    pth = FingerprintDifference(path="integrity.startup.pth", golden=[], target=[PTH], severity="info")
    assert any("/site/hotfix.pth" in h and "likely cause" in h for h in hints_for([pth], [_drift()]))


def test_with_another_difference_the_file_is_not_called_the_only_cause():
    file = FingerprintDifference(path="integrity.python.numpy.modified", golden=[], target=["numpy/a.py"],
                                 severity="info", missing=(), extra=("numpy/a.py",))
    onednn = FingerprintDifference(path="env.TF_ENABLE_ONEDNN_OPTS", golden=None, target="0", severity="warn")
    assert not any("only difference" in h for h in hints_for([file, onednn], [_drift()]))
