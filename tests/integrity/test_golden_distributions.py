"""A golden names more distributions to check (`[integrity] distributions` in its policy): the probe's integrity child
reads them from the bundle's manifest and checks them beside the numerics ones (stages.py IntegrityCheck,
integrity.py chosen_names). Runs the real child process on a fake install; no TensorFlow."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .test_probe_integrity import _install


@pytest.fixture
def site(probe, tmp_path) -> Path:
    """A site folder shadowing every numerics distribution (so the child hashes none of this machine's real ones)
    and holding `other-dist`, which no numerics check looks at."""
    folder = tmp_path / "site"
    for name in probe.integrity.NUMERICS_DISTRIBUTIONS:
        module = name.replace("-", "_")
        _install(folder, name, {f"{module}/__init__.py": b""})
    _install(folder, "other-dist", {"other_dist/__init__.py": b"X = 1\n"})
    return folder


def _bundle(tmp_path: Path, policy: dict | None) -> str:
    bundle = tmp_path / "golden"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"schema": "envcheck.golden/1", **({"policy": policy} if policy
                                                                                         else {})}))
    return str(bundle)


def _checked(probe, site: Path, bundle: str) -> dict:
    """fingerprint.integrity.python as the probe's IntegrityCheck records it, `site` first on the child's path."""
    environ = {**os.environ, "PYTHONPATH": str(site)}
    check = probe.stages.IntegrityCheck("numerics", environ, deadline_s=60, bundle_dir=bundle)
    capture = {"fingerprint": {}, "timings": {}}
    check.finish(capture, lambda name: time.time())
    record = capture["fingerprint"]["integrity"]
    assert "error" not in record, record
    return record["python"]


def test_a_distribution_the_golden_names_is_checked(probe, site, tmp_path):
    (site / "other_dist" / "__init__.py").write_bytes(b"X = 2\n")  # edited by hand after install
    named = _checked(probe, site, _bundle(tmp_path, {"integrity": {"distributions": ["Other_Dist"]}}))
    assert named["other-dist"]["modified"] == ["other_dist/__init__.py"] and named["other-dist"]["checked"] == 2
    assert "numpy" in named  # beside the numerics ones, not instead of them


@pytest.mark.parametrize("policy", [None, {"tolerance": {"atol": 1e-5}}], ids=["no-policy", "policy-without-it"])
def test_a_distribution_no_one_names_is_not_checked(probe, site, tmp_path, policy):
    checked = _checked(probe, site, _bundle(tmp_path, policy))
    assert "other-dist" not in checked and "numpy" in checked


def test_a_policy_file_cannot_name_them(tmp_path):
    """The probe reads the names from the golden in each target: a --policy file, read on the host, would change
    nothing, so it is refused (exit 2) saying where they go, never ignored."""
    from envcheck.compare.policy import load_policy_file
    from envcheck.errors import UsageError

    path = tmp_path / "policy.toml"
    path.write_text('[integrity]\ndistributions = ["pyyaml"]\n')
    with pytest.raises(UsageError, match=r"`\[integrity\]` is read by the probe from the golden's own policy"):
        load_policy_file(path)
