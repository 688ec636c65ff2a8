"""Installed non-editable (a wheel), envcheck still finds and verifies its built-in golden."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from helpers import REPO


@pytest.mark.slow
def test_wheel_carries_the_builtin_golden_and_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("envcheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "envcheck/_builtin_golden/default/manifest.json" in names
    assert "envcheck/_builtin_golden/edge/model.tflite" in names
    assert "envcheck/probe/envcheck_probe/cli.py" in names
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # Run from elsewhere so that only the unpacked wheel can answer `import envcheck`.
    result = subprocess.run([sys.executable, "-c", "import envcheck, sys; from envcheck.cli import main; "
                             "print(envcheck.__file__); sys.exit(main(['golden', 'verify']))"],
                            cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert str(site) in result.stdout and "_builtin_golden" in result.stdout and "OK" in result.stdout
