"""The pytest plugin (envcheck/pytest_plugin.py), run the way a team runs it: pytester starts pytest in a
subprocess on a test file of theirs, and the plugin probes real targets (this host against a golden made
here; the fixture image envcheck-fixture/tf-older, whose TensorFlow 2.20 is a FAIL against 2.21).

Each real probe takes 10–20 s: the slow tests share them (one run checks several targets and tests) and
time no latency (envcheck_latency_budget = 0). In CI a missing daemon, image or pytest-xdist fails these
tests; on a developer machine they are skipped with the command that sets them up.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import docker_with_images, require

from envcheck.golden import BundleFiles, load_golden, write_golden

pytest_plugins = ["pytester"]

DRIFTING_IMAGE = "envcheck-fixture/tf-older"
HEAVY = ("numpy", "docker", "pandas", "deepdiff", "rich", "jinja2", "jsonschema", "tensorflow", "envcheck.check")
ONE_FILE = """
def test_image_matches_golden(envcheck, envcheck_target):
    envcheck.check(envcheck_target).assert_ok()
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a subprocess, as CI runs it (xunit1: the family whose schema has per-test properties)."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "junit_family=xunit1", *args, timeout=600)


def reports_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("envcheck-*.json"))


def assertion_message(result: pytest.RunResult, test_id: str) -> list[str]:
    """The lines of the AssertionError pytest shows for `test_id`, without pytest's `E   ` prefix."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.strip("_ ") == test_id)
    first = next(i for i in range(start, len(lines)) if "AssertionError: " in lines[i])
    prefix = lines[first][:lines[first].index("AssertionError: ")]
    message = [lines[first][len(prefix) + len("AssertionError: "):]]
    for line in lines[first + 1:]:
        if not line.startswith("E"):
            break
        message.append(line[len(prefix):] if len(line) > len(prefix) else "")
    return message


# ------------------------------------------------------------------------------ without any probe

def test_the_plugin_is_registered_and_imports_nothing_heavy():
    """pytest loads it in every run of every project that installs envcheck: it must cost nothing there."""
    entry_points = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.name == "envcheck" and ep.value == "envcheck.pytest_plugin" for ep in entry_points)
    code = f"import sys, envcheck.pytest_plugin\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_suite_that_uses_no_envcheck_fixture_is_untouched(pytester):
    pytester.makepyfile(test_other="def test_other():\n    assert True\n", test_golden=ONE_FILE)
    result = run(pytester)
    # No target given: the envcheck test is skipped, saying how to give one; nothing is probed or written.
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.no_fnmatch_line("*= envcheck =*")
    run(pytester, "-rs").stdout.fnmatch_lines(["*no envcheck target: pass --envcheck-target SPEC*"])
    assert not (pytester.path / "reports").exists()
    run(pytester, "--help").stdout.fnmatch_lines(["*--envcheck-target=SPEC*", "*--envcheck-update-golden*"])


def test_bad_settings_are_usage_errors_before_anything_runs(pytester, tmp_path):
    pytester.makepyfile(test_golden=ONE_FILE)
    pytester.makeini("[pytest]\nenvcheck_latency_budget = -1\n")
    result = run(pytester, "--envcheck-target", "host")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*envcheck_latency_budget: must be a non-negative number of seconds, got '-1'*"])
    pytester.makeini("[pytest]\n")
    result = run(pytester, "--envcheck-update-golden", "--envcheck-target", "docker:x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--envcheck-update-golden needs --envcheck-golden DIR*"])
    # Never rebuilt from a target under test: it would then match itself.
    result = run(pytester, "--envcheck-update-golden", "--envcheck-golden", str(tmp_path), "--envcheck-target", "host")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the reference target host is also a target under test*"])


# ---------------------------------------------------------------------------------- real targets

@pytest.mark.slow
def test_a_passing_target_is_probed_once_and_reported(pytester, host_golden):
    """This host against a golden made here: IDENTICAL, the result's fields, the JUnit properties, one probe for
    two tests, the summary naming the report; settings from the ini file."""
    pytester.makeini(f"[pytest]\nenvcheck_golden = {host_golden}\nenvcheck_targets =\n    host\n"
                     "envcheck_latency_budget = 0\nenvcheck_reports_dir = kept\n")
    pytester.makepyfile(test_golden="""
        import json

        def test_image_matches_golden(envcheck, envcheck_target):
            result = envcheck.check(envcheck_target)
            result.assert_ok()
            assert result.verdict == "IDENTICAL" and result.spec == "host"
            assert {name: stats["max_ulp"] for name, stats in result.outputs.items()} == {"class_probs": 0, "embedding": 0}
            assert result.fingerprint_diff == [] and result.findings == [] and result.hints == []
            assert json.loads(result.report_path.read_text())["targets"][0]["verdict"] == "IDENTICAL"

        def test_the_same_target_again(envcheck, envcheck_target):
            envcheck.check(envcheck_target).assert_ok(fail_on="warn")
    """)
    result = run(pytester, "--junitxml", "junit.xml")
    result.assert_outcomes(passed=2)
    (report,) = reports_in(pytester.path / "kept")
    result.stdout.fnmatch_lines(["*= envcheck =*", f"IDENTICAL  host  report: {report}"])
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    properties = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    assert properties == [{"envcheck_target": "host", "envcheck_verdict": "IDENTICAL", "envcheck_report": str(report)}] * 2


@pytest.fixture(scope="module")
def drifting_image() -> str:
    """The fixture image with TensorFlow 2.20 (fails loudly in CI when the daemon or the image is missing)."""
    docker_with_images(DRIFTING_IMAGE).close()
    return DRIFTING_IMAGE


@pytest.mark.docker
@pytest.mark.slow
def test_two_xdist_workers_share_one_probe_per_target_and_a_drift_reads_like_the_ci_log(
        pytester, host_golden, drifting_image):
    require(importlib.util.find_spec("xdist") is not None, "pytest-xdist (pip install -e '.[test]')")
    drifting = f"docker:{drifting_image}"
    pytester.makepyfile(test_golden=ONE_FILE + """
def test_the_same_targets_again(envcheck, envcheck_target):
    envcheck.check(envcheck_target).assert_ok()
""")
    result = run(pytester, "-n", "2", "--envcheck-golden", str(host_golden), "--envcheck-target", "host",
                 "--envcheck-target", drifting, "--envcheck-reports-dir", "kept", "-o", "envcheck_latency_budget=0")
    result.assert_outcomes(passed=2, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # Four tests, two workers, one probe (one report) per target.
    paths = reports_in(pytester.path / "kept")
    reports = {json.loads(path.read_text())["targets"][0]["spec"]: path for path in paths}
    assert len(paths) == 2 and sorted(reports) == [drifting, "host"], paths
    result.stdout.fnmatch_lines_random([f"FAIL       {drifting}  report: {reports[drifting]}",
                                        f"IDENTICAL  host  report: {reports['host']}"])

    # Word for word; only the numbers the CPU decides (and this host's Python) come from the report.
    entry = json.loads(reports[drifting].read_text())["targets"][0]
    outputs = entry["outputs"]
    assert {stats["status"] for stats in outputs.values()} == {"noise"}, outputs
    worst = max(outputs, key=lambda name: outputs[name]["max_ulp"])
    summary = ", ".join(f"{name}: noise (max {stats['max_ulp']} ULP)" for name, stats in outputs.items())
    info = sum(d["severity"] == "info" for d in entry["fingerprint_diff"])
    # Findings depend on this host against the image (start-up code the host's Python has or lacks, e.g. Debian's
    # sitecustomize in the image): read from the report, written as the log writes them.
    findings = entry["findings"]
    counted = f", {len(findings)} finding{'s' if len(findings) > 1 else ''}" if findings else ""
    finding_lines = [line for f in findings for line in (f"      finding {f['severity']} {f['code']}: {f['message']}",
                                                          f"        → {f['hint']}")]
    py = platform.python_version()
    clang = "Clang 18.1.8 → Ubuntu Clang 18.1.8 (++20240731024944+3b5b5c1ec4a3-1~exp1~20240731145000.144)"
    golden = load_golden(host_golden)
    expected = [
        f"envcheck: {drifting} is FAIL (fail_on='fail' fails FAIL and ERROR)",
        f"envcheck · golden {golden.path} ({golden.sha256[:12]}) · 1 FAIL",
        f"FAIL  {drifting} — outputs: {summary} · fingerprint: 4 fail, 1 warn, {info} info{counted} · latency: not measured",
        *finding_lines,
        f"      {worst}: noise · max {outputs[worst]['max_ulp']} ULP (p99 NUM) · max abs NUM (p99 NUM) · max rel NUM "
        "(p99 NUM) · NUM% changed · 0 of 28 samples beyond (consistency 100 %) · worst samples WORST · NUM× calibrated "
        "noise · would pass at tol NUM (policy atol 1e-05, rtol 1e-05)",
        "      where: WHERE",  # the golden has a layer record: where TensorFlow 2.20 first parts from 2.21
        "      fail packages.tensorflow-cpu: 2.21.0 → 2.20.0",
        f"      fail tensorflow.compiler_version: {clang}",
        "      fail tensorflow.git_version: v2.21.0-rc1-5-ga481b10260d → v2.20.0-rc0-4-g72fbba3d20f",
        "      fail tensorflow.version: 2.21.0 → 2.20.0",
        f"      warn python.version: {py} → 3.11.2",
        f"      {info} info-level differences (see the JSON report)",
        "      hint: The TensorFlow build differs (packages.tensorflow-cpu: 2.21.0 → 2.20.0): kernels and defaults "
        "change between releases; expect ~1e-6 relative, more when a default changes. Pin the image to the golden's version.",
        f"      hint: TensorFlow was built differently (tensorflow.compiler_version: {clang}): compiler, CUDA or cuDNN "
        "of the build changed.",
        f"      hint: Python differs ({py} → 3.11.2): no numeric effect by itself; it selects other wheels.",
        f"report: {reports[drifting]}",
    ]
    for test_id in (f"test_image_matches_golden[{drifting}]", f"test_the_same_targets_again[{drifting}]"):
        message = assertion_message(result, test_id)
        assert len(message) == len(expected), "\n".join(message)
        for line, want in zip(message, expected, strict=True):
            pattern = re.escape(want).replace("NUM", r"[0-9][0-9.e+-]*").replace(
                "WORST", r"#[0-9]+ \([0-9.e+-]+\)(, #[0-9]+ \([0-9.e+-]+\))*").replace(
                "WHERE", r"(first divergence at|every layer matches).+")
            assert re.fullmatch(pattern, line), f"\n{line}\n{want}"


@pytest.mark.slow
def test_update_golden_rebuilds_from_the_reference_target_only_and_fails_the_run(pytester, host_golden):
    """A team's golden whose expected outputs are off (and whose policy is its own): rebuilt from the reference
    target (this host), policy and description kept, the target under test never probed, the run failed."""
    made_here = load_golden(host_golden)
    team_golden = pytester.path / "golden"
    policy = {"tolerance": {"atol": 2e-5, "rtol": 1e-5}}
    off = BundleFiles(model_dir=made_here.path / "model", inputs_npz=made_here.path / "inputs.npz",
                      expected={name: value + np.float32(1e-3) for name, value in made_here.expected.items()},
                      fingerprint=made_here.fingerprint)
    write_golden(team_golden, {"description": "vision team golden", "policy": policy, "latency": made_here.latency},
                 files=off)
    before = load_golden(team_golden).sha256
    pytester.makepyfile(test_golden=ONE_FILE)
    result = run(pytester, "--envcheck-golden", "golden", "--envcheck-target", f"docker:{DRIFTING_IMAGE}",
                 "--envcheck-reports-dir", "kept", "--envcheck-update-golden")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    rebuilt = load_golden(team_golden)  # verified against its manifest
    result.stdout.fnmatch_lines([
        "*envcheck: --envcheck-update-golden rebuilt the golden from its reference target host; nothing is "
        "checked in this run: rerun without it*",
        f"golden {team_golden} rebuilt from reference target host (sha256 {before[:12]} → {rebuilt.sha256[:12]}); "
        "nothing was checked: rerun without --envcheck-update-golden"])
    assert rebuilt.policy == policy and rebuilt.manifest["description"] == "vision team golden"
    assert sorted(rebuilt.expected) == sorted(made_here.expected)
    for name, value in made_here.expected.items():  # this host computes the same bits every time
        assert np.array_equal(rebuilt.expected[name], value), name
    # Measured again in the reference target (default budget); no record the team golden lacked is added.
    assert rebuilt.latency is not None
    assert {"calibration", "layers", "determinism", "tflite"}.isdisjoint(rebuilt.manifest)
    assert not reports_in(pytester.path / "kept")  # the target under test was never probed


def test_a_builtin_golden_is_named_as_the_cli_names_it(pytester):
    """`--envcheck-golden builtin:edge` is the built-in edge golden, not a folder named so in the cwd."""
    pytester.makepyfile(test_golden="""
def test_golden(envcheck):
    from envcheck.check import load_pinned_golden

    assert envcheck.settings.golden == "builtin:edge"
    assert load_pinned_golden(envcheck.settings.golden).path.name == "edge"
""")
    run(pytester, "--envcheck-golden", "builtin:edge").assert_outcomes(passed=1)


def test_update_golden_refuses_a_builtin_golden(pytester):
    pytester.makepyfile(test_golden=ONE_FILE)
    result = run(pytester, "--envcheck-golden", "builtin:edge", "--envcheck-update-golden")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--envcheck-update-golden needs --envcheck-golden DIR*"])
