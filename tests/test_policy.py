"""Policy strictness: a typo, a wrong type or a bad value in a --policy file is a usage error (exit 2)
naming the key and the nearest valid one; a golden's own bad policy is a broken bundle (exit 3)."""
from __future__ import annotations

import json

import pytest

from envcheck.capture import save_capture_dir
from envcheck.compare.policy import build_policy, load_policy_file
from envcheck.errors import ExitCode, PolicyError, UsageError
from envcheck.golden import load_golden
from envcheck.model import Capture, Tolerance

BAD_POLICIES = [
    pytest.param("[tolerence]\natol = 1e-3\n", "`[tolerence]`: did you mean `[tolerance]`?", id="table-typo"),
    pytest.param("[tolerance]\natoll = 1e-3\n", "`[tolerance] atoll`: did you mean `[tolerance] atol`?",
                 id="key-typo"),
    pytest.param("[tolerance.output.embedding]\natol = 1e-2\n", "`[tolerance.output]`: did you mean "
                 "`[tolerance.outputs]`?", id="outputs-typo"),
    pytest.param("[tolerance.outputs.embedding]\nclasification = false\n",
                 "`[tolerance.outputs.embedding] clasification`: did you mean `[tolerance.outputs.embedding] "
                 "classification`?", id="classification-typo"),
    pytest.param("[colours]\nred = 1\n", "`[colours]`: unknown key (known here: `acceptance`, `integrity`, `latency`, `severity`, `tolerance`)",
                 id="unknown-table"),
    pytest.param('[tolerance.outputs.embedding]\nclassification = "false"\n',
                 '`[tolerance.outputs.embedding] classification` must be true or false, got "false" (a string)',
                 id="classification-string"),
    pytest.param('[tolerance]\natol = "1e-5"\n', '`[tolerance] atol` must be a number, got "1e-5" (a string)',
                 id="tolerance-string"),
    pytest.param("[tolerance]\nrtol = true\n", "`[tolerance] rtol` must be a number, got true", id="tolerance-bool"),
    pytest.param("[tolerance]\natol = -1e-5\n", "`[tolerance] atol` must be a non-negative number, got -1e-05",
                 id="negative-atol"),
    pytest.param("[tolerance.outputs.e]\nrtol = -1\n", "`[tolerance.outputs.e] rtol` must be a non-negative number",
                 id="negative-output-rtol"),
    pytest.param("[tolerance]\natol = nan\n", "`[tolerance] atol` must be a non-negative number, got NaN",
                 id="nan-atol"),
    pytest.param('[severity]\n"env.TF_ENABLE_ONEDNN_OPTS" = "loud"\n',
                 '`[severity] "env.TF_ENABLE_ONEDNN_OPTS"` = "loud"; expected one of fail, ignore, info, warn',
                 id="unknown-severity"),
    pytest.param('[severity]\n"packages.numpy" = 1\n', '`[severity] "packages.numpy"` = 1; expected one of',
                 id="severity-not-string"),
    pytest.param('[severity]\n"packages.numpy" = ["warn"]\n', "expected one of", id="severity-array"),
    pytest.param("tolerance = 5\n", "`tolerance` must be a table, got 5", id="tolerance-not-table"),
    pytest.param("[tolerance]\natoll = 1\nrtoll = 2\n", "(and 1 more)", id="two-problems"),
    pytest.param("[tolerance\n", "not valid TOML", id="bad-toml"),
    pytest.param("[acceptance]\nmin_consistency = 99.9\n",
                 "`[acceptance] min_consistency` must be a share between 0 and 1, got 99.9", id="percent-not-share"),
    pytest.param("[acceptance]\nmin_top1_agreement = -0.1\n", "must be a share between 0 and 1, got -0.1",
                 id="negative-share"),
    pytest.param("[acceptance]\nmin_consistency = nan\n", "must be a share between 0 and 1, got NaN",
                 id="nan-share"),
    pytest.param("[acceptence]\nmin_consistency = 0.9\n", "did you mean `[acceptance]`?", id="acceptance-typo"),
]


@pytest.mark.parametrize("text, says", BAD_POLICIES)
def test_bad_policy_file_is_a_usage_error_naming_the_key(tmp_path, text, says):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)


def test_missing_policy_file_is_a_usage_error(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found") as caught:
        load_policy_file(tmp_path / "nowhere.toml")
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("layer", [
    {"tolerance": {"outputs": {"e": {"classification": "false"}}}},
    {"tolerance": {"atol": -1}},
    {"severity": {"x": "loud"}},
    {"tolerence": {}},
], ids=["classification-string", "negative", "severity", "typo"])
def test_build_policy_checks_every_layer(layer):
    with pytest.raises(PolicyError) as caught:
        build_policy({}, layer, source="golden manifest")
    assert str(caught.value).startswith("golden manifest: ") and caught.value.exit_code == ExitCode.USAGE


def test_valid_policy_keeps_its_meaning(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[tolerance]\natol = 1e-4\nrtol = 0\n\n[tolerance.outputs.embedding]\natol = 1e-2\n'
                    'classification = false\n\n[tolerance.outputs.class_probs]\nclassification = true\n\n'
                    '[severity]\n"env.TF_ENABLE_ONEDNN_OPTS" = "fail"\n"finding.gpu-architecture-differs" = "warn"\n')
    policy = build_policy({"severity": {"packages.numpy": "info"}}, load_policy_file(path))
    assert policy.default_tolerance == Tolerance(atol=1e-4, rtol=0.0)
    assert policy.tolerance_for("embedding") == Tolerance(atol=1e-2, rtol=0.0)  # rtol from [tolerance]
    assert policy.tolerance_for("class_probs") == Tolerance(atol=1e-4, rtol=0.0)
    assert policy.classification == {"embedding": False, "class_probs": True}
    assert policy.severity_for("env.TF_ENABLE_ONEDNN_OPTS") == "fail"
    assert policy.severity_for("packages.numpy") == "info"  # the earlier layer still applies
    assert policy.severity_for("finding.gpu-architecture-differs") == "warn"
    assert isinstance(policy.default_tolerance.rtol, float)


def test_integer_tolerances_are_numbers():
    assert build_policy({"tolerance": {"atol": 0, "rtol": 1}}).default_tolerance == Tolerance(atol=0.0, rtol=1.0)


# ------------------------------------------------------------------------------- via the CLI

@pytest.fixture
def identical_capture(tmp_path):
    """A capture directory whose outputs are the built-in golden's own: compares IDENTICAL."""
    golden = load_golden()
    capture = Capture(spec="host", fingerprint=golden.fingerprint, outputs=golden.expected, site="line-7")
    save_capture_dir(capture, tmp_path / "nothing", tmp_path / "capture", golden.sha256)
    return tmp_path / "capture"


def test_compare_with_a_policy_typo_exits_2_with_did_you_mean(tmp_path, run_cli, identical_capture):
    good = tmp_path / "good.toml"
    good.write_text("[tolerance]\natol = 1e-3\n")
    code, _, _, report = run_cli("compare", str(identical_capture), "--policy", str(good))
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"

    bad = tmp_path / "bad.toml"
    bad.write_text("[tolerence]\natol = 1e-3\n")
    code, _, err, report = run_cli("compare", str(identical_capture), "--policy", str(bad))
    assert code == ExitCode.USAGE and report is None
    assert "`[tolerence]`: did you mean `[tolerance]`?" in err and str(bad) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("text", ['[tolerance.outputs.class_probs]\nclassification = "false"\n',
                                  "[tolerance]\natol = -1\n", '[severity]\n"x" = "loud"\n'],
                         ids=["classification-string", "negative", "severity"])
def test_check_with_a_bad_policy_exits_2_before_probing(tmp_path, run_cli, text):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code, _, err, report = run_cli("check", "--target", f"python:{tmp_path / 'never-run'}", "--policy", str(bad))
    assert code == ExitCode.USAGE and report is None and str(bad) in err


def test_golden_manifest_policy_typo_exits_3(golden_copy, run_cli):
    manifest = json.loads((golden_copy / "manifest.json").read_text())
    manifest["policy"]["tolerance"]["output"] = manifest["policy"]["tolerance"].pop("outputs")
    (golden_copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err, _ = run_cli("golden", "verify", str(golden_copy))
    assert code == ExitCode.UNDECIDED
    assert "manifest.json" in err and "`[tolerance.output]`: did you mean `[tolerance.outputs]`?" in err


def test_a_golden_policy_may_name_distributions_to_verify_and_a_bad_name_is_refused():
    from envcheck.compare.policy import validate_policy

    validate_policy({"integrity": {"distributions": ["pyyaml", "Other_Dist"]}}, "golden manifest")
    for wrong in ({"distributions": ["bad name!"]}, {"distribution": ["pyyaml"]}):
        with pytest.raises(PolicyError):
            validate_policy({"integrity": wrong}, "golden manifest")
