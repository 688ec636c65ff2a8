"""Fingerprint differences: deepdiff paths, the severity policy, policy files, hints."""
from __future__ import annotations

import copy

import pytest

from envcheck.compare.explain import hints_for
from envcheck.compare.fingerprint import diff_fingerprints
from envcheck.compare.policy import build_policy, load_policy_file
from envcheck.errors import PolicyError

GOLDEN = {
    "host": {"hostname": "line-7", "pid": 100},
    "python": {"version": "3.11.7", "executable": "/usr/bin/python3"},
    "cpu": {"tf_flags": ["avx", "avx2", "avx512f"], "flags": ["avx", "avx2", "avx512f", "sse4_2"]},
    "packages": {"numpy": "2.4.6", "tensorflow-cpu": "2.21.0", "requests": "2.32.0"},
    "tensorflow": {"version": "2.21.0", "onednn_enabled": True, "build_info": {"is_cuda_build": False}},
    "env": {},
}


def _changed(**paths) -> dict:
    target = copy.deepcopy(GOLDEN)
    for path, value in paths.items():
        node = target
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return target


@pytest.mark.parametrize("change, path, severity", [
    pytest.param({"tensorflow__version": "2.20.0"}, "tensorflow.version", "fail", id="tf-version"),
    pytest.param({"tensorflow__build_info": {"is_cuda_build": True}}, "tensorflow.build_info.is_cuda_build", "fail",
                 id="build-info"),
    pytest.param({"packages__numpy": "1.26.4"}, "packages.numpy", "warn", id="numpy"),
    pytest.param({"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}}, "env.TF_ENABLE_ONEDNN_OPTS", "warn", id="onednn-env"),
    pytest.param({"packages__requests": "2.31.0"}, "packages.requests", "info", id="unrelated-package"),
    pytest.param({"python__version": "3.11.9"}, "python.version", "warn", id="python-patch"),
])
def test_default_severities(change, path, severity):
    (difference,) = diff_fingerprints(GOLDEN, _changed(**change), build_policy())
    assert (difference.path, difference.severity) == (path, severity)


def test_identity_fields_are_ignored_and_list_order_is_not_drift():
    target = _changed(host={"hostname": "line-9", "pid": 4242}, python__executable="/opt/venv/bin/python")
    target["cpu"]["flags"] = list(reversed(GOLDEN["cpu"]["flags"]))
    assert diff_fingerprints(GOLDEN, target, build_policy()) == ()


def test_lost_cpu_flag_is_named_with_its_value():
    target = _changed(cpu={"tf_flags": ["avx", "avx2"], "flags": ["avx", "avx2", "sse4_2"]})
    differences = diff_fingerprints(GOLDEN, target, build_policy())
    tf_flag = next(d for d in differences if d.path.startswith("cpu.tf_flags"))
    assert tf_flag.severity == "warn" and tf_flag.golden == "avx512f" and tf_flag.target is None
    assert any("instruction sets differ" in h for h in hints_for(differences, ()))


def test_policy_file_overrides_defaults(tmp_path):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[severity]\n"env.TF_ENABLE_ONEDNN_OPTS" = "fail"\n"packages.numpy" = "ignore"\n')
    policy = build_policy(load_policy_file(policy_file))
    target = _changed(env={"TF_ENABLE_ONEDNN_OPTS": "0"}, packages__numpy="1.26.4")
    assert [(d.path, d.severity) for d in diff_fingerprints(GOLDEN, target, policy)] == [
        ("env.TF_ENABLE_ONEDNN_OPTS", "fail")]


@pytest.mark.parametrize("text, says", [
    pytest.param('[severity]\n"x" = "loud"\n', "expected one of", id="bad-severity"),
    pytest.param("[tolerance]\natol = -1\n", "non-negative", id="negative-atol"),
    pytest.param("[tolerance\n", "not valid TOML", id="bad-toml"),
])
def test_bad_policy_file_is_a_clear_error(tmp_path, text, says):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(text)
    with pytest.raises(PolicyError, match=says):
        build_policy(load_policy_file(policy_file))


def test_hint_names_onednn_variable_with_values():
    differences = diff_fingerprints(GOLDEN, _changed(env={"TF_ENABLE_ONEDNN_OPTS": "0"}), build_policy())
    (hint,) = hints_for(differences, ())
    assert "TF_ENABLE_ONEDNN_OPTS differs (unset → 0)" in hint and "15 ULP" in hint
