"""Fixtures of the on-site kit's tests: a kit built once per module, and running it as a box would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.cli import main


def build_kit(out: Path, *options: str) -> Path:
    """`envcheck kit build OPTIONS --out OUT`, in-process; the kit's path."""
    assert main(["kit", "build", *options, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """The kit of the built-in golden."""
    return build_kit(tmp_path_factory.mktemp("kit") / "envcheck-kit.pyz")


def run_kit(kit: Path, *argv: str, python: str = sys.executable, cwd: Path, env: dict | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """`PYTHON KIT ARGV` in `cwd`, as a technician runs it (bytes: stdout may be the capture)."""
    return subprocess.run([python, str(kit), *argv], cwd=cwd, env=env, capture_output=True, timeout=timeout)


def golden_made_in(image: str, out: Path) -> Path:
    """The built-in model as a golden made IN `image` (docker:), uncalibrated: that image is IDENTICAL to it."""
    made = subprocess.run([sys.executable, "-m", "envcheck", "golden", "create", "--builtin", "--target",
                           f"docker:{image}", "--out", str(out), "--no-calibrate"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    return out


def verdicts(run_cli, *argv: str) -> tuple[int, str, dict, dict | None]:
    """(exit code, verdict, each output's status, the error's kind) of a one-target report."""
    code, _, err, report = run_cli(*argv)
    assert report is not None, err
    (target,) = report["targets"]
    statuses = {name: output.get("status") for name, output in (target.get("outputs") or {}).items()}
    return code, target["verdict"], statuses, (target.get("error") or {}).get("kind")


def same_as_check(run_cli, capture: Path, golden: str, image: str) -> tuple:
    """`verdicts` of `envcheck compare CAPTURE`, asserted equal to those of `envcheck check` on the image it came from."""
    compared = verdicts(run_cli, "compare", str(capture), "--golden", golden)
    checked = verdicts(run_cli, "check", "--golden", golden, "--target", f"docker:envcheck-fixture/{image}")
    assert compared == checked
    return compared
