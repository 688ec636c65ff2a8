"""Task-level acceptance on real captures: a real probe of the real built-in model, then k of its 28
samples perturbed and `envcheck compare` run under a policy's `[acceptance]`. Below min_consistency (or
min_top1_agreement) the target FAILs; above both it is a WARN that says why, in every report."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from envcheck.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_tensorflow")]


@pytest.fixture(scope="module")
def real_capture(tmp_path_factory, host_golden) -> Path:
    """One probe of this environment against its own golden (read-only: tests copy its outputs)."""
    from envcheck.cli import main

    capture_dir = tmp_path_factory.mktemp("capture") / "capture"
    assert main(["probe", "--golden", str(host_golden), "--out", str(capture_dir)]) == ExitCode.OK
    return capture_dir


def _perturbed(real_capture: Path, tmp_path: Path, edit) -> Path:
    """A copy of the real capture whose outputs `edit` changes in place."""
    import shutil

    copy = tmp_path / "capture"
    shutil.copytree(real_capture, copy)
    with np.load(copy / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    edit(outputs)
    np.savez(copy / "outputs.npz", **outputs)
    return copy


def _drift_embedding(samples: list[int]):
    def edit(outputs):
        outputs["embedding"][samples] *= np.float32(1.02)
    return edit


def _flip_class(sample: int):
    def edit(outputs):
        probs = outputs["class_probs"][sample]
        first, second = np.argsort(probs)[-2:][::-1]
        probs[[first, second]] = probs[[second, first]]
    return edit


def _policy(tmp_path: Path, **acceptance: float) -> str:
    path = tmp_path / "policy.toml"
    path.write_text("[acceptance]\n" + "".join(f"{key} = {value}\n" for key, value in acceptance.items()))
    return str(path)


def _compare(run_cli, capture: Path, golden: Path, *extra: str):
    code, out, _, report = run_cli("compare", str(capture), "--golden", str(golden), *extra)
    return code, out, report["targets"][0]


def test_the_same_capture_is_identical_and_every_sample_consistent(run_cli, real_capture, host_golden):
    code, _, target = _compare(run_cli, real_capture, host_golden)
    assert (code, target["verdict"]) == (ExitCode.OK, "IDENTICAL")
    for output in target["outputs"].values():
        assert output["samples"] == 28 and output["samples_beyond"] == 0 and output["consistency"] == 1.0


def test_one_drifted_sample_fails_by_default_and_names_the_sample(run_cli, real_capture, host_golden, tmp_path):
    code, out, target = _compare(run_cli, _perturbed(real_capture, tmp_path, _drift_embedding([9])), host_golden)
    embedding = target["outputs"]["embedding"]
    assert (code, target["verdict"], embedding["status"]) == (ExitCode.DRIFT, "FAIL", "drift")
    assert embedding["samples_beyond"] == 1 and embedding["consistency"] == pytest.approx(27 / 28)
    assert embedding["worst_samples"][0][0] == 9 and len(embedding["worst_samples"]) == 1
    assert "1 of 28 samples beyond" in out


@pytest.mark.parametrize("drifted, verdict", [
    pytest.param([4], "WARN", id="1-of-28-above-95-percent"),
    pytest.param([4, 11], "FAIL", id="2-of-28-below-95-percent"),
])
def test_min_consistency_decides_between_warn_and_fail(run_cli, real_capture, host_golden, tmp_path, drifted,
                                                        verdict):
    capture = _perturbed(real_capture, tmp_path, _drift_embedding(drifted))
    code, out, target = _compare(run_cli, capture, host_golden, "--policy", _policy(tmp_path, min_consistency=0.95),
                                 "--html", str(tmp_path / "report.html"), "--markdown", str(tmp_path / "report.md"))
    embedding = target["outputs"]["embedding"]
    assert target["verdict"] == verdict
    if verdict == "WARN":
        assert code == ExitCode.OK and embedding["status"] == "accepted"
        assert embedding["reason"].startswith("3.57 % of samples beyond tolerance (1 of 28); consistency 96.43 % ≥ 95 %")
        assert "accepted" in out and "consistency 96.43 %" in (tmp_path / "report.md").read_text()
        assert "samples per largest |error|" in (tmp_path / "report.html").read_text()
    else:
        assert code == ExitCode.DRIFT and embedding["status"] == "drift"


@pytest.mark.parametrize("min_top1, verdict", [(0.95, "WARN"), (0.99, "FAIL")])
def test_a_changed_decision_is_accepted_only_within_min_top1_agreement(run_cli, real_capture, host_golden, tmp_path,
                                                                        min_top1, verdict):
    capture = _perturbed(real_capture, tmp_path, _flip_class(0))
    policy = _policy(tmp_path, min_consistency=0.95, min_top1_agreement=min_top1)
    code, _, target = _compare(run_cli, capture, host_golden, "--policy", policy)
    probs = target["outputs"]["class_probs"]
    assert probs["top1_agreement_all"] == pytest.approx(27 / 28) and probs["samples_beyond"] == 1
    assert target["verdict"] == verdict and code == (ExitCode.OK if verdict == "WARN" else ExitCode.DRIFT)


def test_fail_on_warn_fails_an_accepted_drift(run_cli, real_capture, host_golden, tmp_path):
    capture = _perturbed(real_capture, tmp_path, _drift_embedding([4]))
    code, _, target = _compare(run_cli, capture, host_golden, "--policy", _policy(tmp_path, min_consistency=0.9),
                               "--fail-on", "warn", "--junit", str(tmp_path / "junit.xml"))
    assert (code, target["verdict"]) == (ExitCode.DRIFT, "WARN")
    junit = (tmp_path / "junit.xml").read_text()
    outputs = re.search(r'<testcase [^>]*name="outputs"[^>]*>(.*?)</testcase>', junit, re.S)
    assert outputs and "<failure" in outputs.group(1) and "embedding: 3.57 % of samples beyond" in outputs.group(1)
