"""`--cpus N` reaches the probe container: Docker's CFS quota, seen from inside by the probe's latency
context and recorded from outside in target_info (real daemon, real reference fixture image).

In CI a missing daemon or image fails these tests; on a developer machine they are skipped with
the command that sets them up.
"""
from __future__ import annotations

import json

import pytest

from envcheck.errors import ExitCode
from envcheck.targets import parse_target
from envcheck.targets.docker import DockerTarget
from helpers import docker_with_images

IMAGE = "envcheck-fixture/reference"


def test_cpus_become_the_containers_nano_cpus_and_the_probes_budget_its_argument():
    target = parse_target(f"docker:{IMAGE}", latency_budget=0.25, cpus=0.5)
    assert isinstance(target, DockerTarget) and target.cpus == 0.5 and target.latency_budget == 0.25
    options = target._run_options()
    assert options["nano_cpus"] == 500_000_000
    assert "--latency-budget 0.25" in " ".join(options["command"])
    assert "nano_cpus" not in DockerTarget(spec="x", image=IMAGE)._run_options()


@pytest.fixture(scope="module")
def reference_image(own_probes):
    client = docker_with_images(IMAGE)
    yield IMAGE
    leftovers = [c.name for c in own_probes(client)]
    client.close()
    assert leftovers == [], f"probe containers left behind: {leftovers}"


@pytest.mark.docker
@pytest.mark.slow
def test_a_cpu_limit_reaches_the_container(run_cli, reference_image, tmp_path):
    out = tmp_path / "capture"
    code, _, err, _ = run_cli("probe", "--target", f"docker:{reference_image}", "--cpus", "0.5",
                              "--latency-budget", "0.3", "--out", str(out))
    assert code == ExitCode.OK, err
    document = json.loads((out / "capture.json").read_text())
    assert document["target"]["info"]["cpus_limit"] == 0.5
    latency = document["latency"]
    assert latency["budget_s"] == 0.3 and latency["calls"] >= 1, latency
    assert latency["context"]["cpu_quota_cpus"] == 0.5


@pytest.mark.docker
@pytest.mark.slow
def test_a_quota_against_a_golden_made_without_one_is_flagged_with_its_cause(run_cli, reference_image, tmp_path):
    """A factory box's `--cpus 0.25` reproduced: same image, same CPU class, a quarter of a CPU. The P50
    barely moves (a call fits in one scheduler period) but the mean does; the quota finding says why. The policy
    sets no fail ratio within reach, so the slowdown is a warning on any machine, however slow: WARN, exit 0."""
    golden = tmp_path / "golden"
    code, _, err, _ = run_cli("golden", "create", "--builtin", "--target", f"docker:{reference_image}",
                              "--out", str(golden), "--no-calibrate")
    assert code == ExitCode.OK, err
    reference = json.loads((golden / "manifest.json").read_text())["latency"]
    assert reference["p50_s"] > 0 and reference["hardware_class"]["kind"] == "cpu"
    policy = tmp_path / "policy.toml"
    policy.write_text("[latency]\nfail_ratio = 1000000\n")
    code, out, err, report = run_cli("check", "--golden", str(golden), "--target", f"docker:{reference_image}",
                                     "--cpus", "0.25", "--policy", str(policy), "--no-reports")
    target = report["targets"][0]
    latency = target["latency"]
    assert latency["status"] == "slower", latency["message"]
    assert latency["ratio_mean"] > 1.75 and latency["target"]["context"]["cpu_quota_cpus"] == 0.25
    codes = [f["code"] for f in target["findings"]]
    assert codes[:2] == ["latency-slower", "cpu-quota-below-threads"], codes
    assert "a CPU quota of 0.25 CPUs is below TensorFlow's" in target["findings"][0]["hint"]
    assert target["findings"][0]["severity"] == "warn"
    assert code == ExitCode.OK and target["verdict"] == "WARN"
    assert "latency" in out
