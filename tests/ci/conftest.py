"""Fixtures of the CI-integration tests: a real Docker daemon, the fixture images, and a team golden made
from the reference image on this machine (never the committed golden/default, made on another CPU).

In CI a missing daemon or image fails these tests; on a developer machine they are skipped with the command
that sets them up."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ci.support import DRIFTING, NO_TF, REFERENCE
from envcheck.golden import builtin_golden_dir, load_golden
from helpers import docker_with_images


@pytest.fixture(scope="session")
def docker_client():
    client = docker_with_images(REFERENCE, DRIFTING, NO_TF)
    yield client
    client.close()


@pytest.fixture(scope="session")
def team_golden(docker_client, tmp_path_factory) -> tuple[Path, str]:
    """(bundle, manifest sha256): the built-in model's golden made and calibrated in the reference image, as a
    team's is (the calibration's child probes run inside the network-less, non-root probe container)."""
    out = tmp_path_factory.mktemp("team-golden") / "vision"
    result = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--model",
                             str(builtin_golden_dir() / "model"), "--inputs", str(builtin_golden_dir() / "inputs.npz"),
                             "--target", f"docker:{REFERENCE}", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out, load_golden(out).sha256
