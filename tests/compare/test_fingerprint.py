"""Fingerprint differences: deepdiff paths, the severity policy, policy files, hints."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

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
    assert tf_flag.path == "cpu.tf_flags" and tf_flag.severity == "warn"
    assert tf_flag.missing == ("avx512f",) and tf_flag.extra == () and tf_flag.change == "missing avx512f"
    assert any("instruction sets differ (cpu.tf_flags: missing avx512f)" in h for h in hints_for(differences, ()))


def test_sets_differ_once_per_field_with_missing_and_extra():
    """Intel with AMX against AMD without: one line per field, never `cpu.flags[25] avx_vnni → clzero`."""
    intel = ["avx", "avx2", "avx512f", "avx_vnni", "amx_tile", "cpuid_fault"]
    amd = ["avx", "avx2", "avx512f", "clzero", "extd_apicid"]
    target = _changed(cpu={"tf_flags": ["avx", "avx2", "avx512f"], "flags": amd})
    golden = copy.deepcopy(GOLDEN)
    golden["cpu"] = {"tf_flags": ["avx", "avx2", "avx512f", "avx_vnni", "amx_tile"], "flags": intel}
    differences = {d.path: d for d in diff_fingerprints(golden, target, build_policy())}
    assert set(differences) == {"cpu.tf_flags", "cpu.flags"}
    flags = differences["cpu.flags"]
    assert flags.missing == ("amx_tile", "avx_vnni", "cpuid_fault") and flags.extra == ("clzero", "extd_apicid")
    assert flags.change == "missing amx_tile, avx_vnni, cpuid_fault; extra clzero, extd_apicid"
    assert differences["cpu.tf_flags"].change == "missing amx_tile, avx_vnni"


def test_a_set_of_records_is_compared_as_a_set():
    devices = [{"name": "/physical_device:CPU:0", "type": "CPU"}, {"name": "/physical_device:GPU:0", "type": "GPU"}]
    golden = _changed(tensorflow={"version": "2.21.0", "devices": devices})
    same = _changed(tensorflow={"version": "2.21.0", "devices": list(reversed(devices))})
    lost = _changed(tensorflow={"version": "2.21.0", "devices": devices[:1]})
    assert diff_fingerprints(golden, same, build_policy()) == ()
    (difference,) = diff_fingerprints(golden, lost, build_policy())
    assert difference.path == "tensorflow.devices"
    assert difference.missing == ("name=/physical_device:GPU:0, type=GPU",) and difference.extra == ()


def test_a_set_field_absent_on_one_side_lists_every_item():
    target = copy.deepcopy(GOLDEN)
    del target["cpu"]["tf_flags"]
    differences = {d.path: d for d in diff_fingerprints(GOLDEN, target, build_policy())}
    assert differences["cpu.tf_flags"].missing == ("avx", "avx2", "avx512f")
    assert differences["cpu.tf_flags"].target is None
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
    assert "TF_ENABLE_ONEDNN_OPTS differs (absent → 0)" in hint and "15 ULP" in hint


def _measured(max_ulp: int, p99_ulp: float, p99_rel: float = 1e-7):
    from envcheck.model import OutputComparison, Tolerance
    return OutputComparison(name="embedding", status="noise", reason=None, tolerance=Tolerance(), max_ulp=max_ulp,
                            p99_ulp=p99_ulp, p99_rel=p99_rel, max_rel=p99_rel)


@pytest.mark.parametrize("measured, says", [
    pytest.param(_measured(9, 2), None, id="explained"),
    pytest.param(_measured(647, 40), "embedding max 647 ULP is more than this alone explains (~15 ULP): something else "
                 "differs too", id="more-than-explained"),
    pytest.param(_measured(647, 3), "only the largest errors exceed it, typically elements near zero", id="near-zero"),
])
def test_a_hint_checks_itself_against_the_measured_drift(measured, says):
    differences = diff_fingerprints(GOLDEN, _changed(env={"TF_ENABLE_ONEDNN_OPTS": "0"}), build_policy())
    (hint,) = hints_for(differences, (measured,))
    assert ("Measured:" not in hint) if says is None else (says in hint)


def test_a_relative_bound_checks_itself_too():
    differences = diff_fingerprints(GOLDEN, _changed(tensorflow__version="2.20.0"), build_policy())
    (hint,) = hints_for(differences, (_measured(10**6, 10**5, p99_rel=3e-3),))
    assert "p99 relative error 0.003 is more than this alone explains (~1e-06)" in hint


def test_deepdiff_is_imported_without_pandas_which_stays_importable():
    """import_deepdiff keeps pandas and pydantic out of a check (CPU beside its probes) and leaves no trace."""
    code = ("import sys\n"
            "from envcheck.compare.fingerprint import import_deepdiff\n"
            "diff = import_deepdiff()({'a': [1, 2]}, {'a': [2, 1, 3]}, ignore_order=True, view='tree')\n"
            "assert not {'pandas', 'polars', 'pydantic'} & set(sys.modules), sorted(sys.modules)\n"
            "assert list(diff) == ['iterable_item_added'], diff\n"
            "import pandas, pydantic\n"
            "print('ok', pandas.DataFrame({'x': [1]}).shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and done.stdout.strip() == "ok (1, 1)", done.stderr[-2000:]
