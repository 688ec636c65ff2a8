"""Fixtures of probe tests: the probe imported from the zipapp targets run, and a fake NVML built from a record
(the plain helpers and GPU_FIXTURES are in gpu_fixtures.py, which tests import)."""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import zipimport
from pathlib import Path

import pytest

from envcheck.targets.probe_app import PROBE_PACKAGE, probe_app_path, probe_sources
from helpers import require

from .gpu_fixtures import build_fake_nvml, load_record


@pytest.fixture(scope="session")
def probe():
    """The probe's package, imported from the very zipapp targets run, with every module loaded:
    `probe.nvml.nvml_fingerprint`, `probe.gpu.gpu_fingerprint`, … (tests may import it; the tool may not)."""
    if PROBE_PACKAGE not in sys.modules:
        spec = zipimport.zipimporter(str(probe_app_path())).find_spec(PROBE_PACKAGE)
        package = importlib.util.module_from_spec(spec)
        sys.modules[PROBE_PACKAGE] = package
        spec.loader.exec_module(package)
    for path in probe_sources():
        if path.stem not in ("__init__", "__main__"):
            importlib.import_module(f"{PROBE_PACKAGE}.{path.stem}")
    return sys.modules[PROBE_PACKAGE]


@pytest.fixture(scope="session")
def fake_nvml(tmp_path_factory):
    """fake_nvml(name) -> directory holding a libnvidia-ml.so.1 that answers fixtures/gpu/nvml/<name>.json."""
    require(shutil.which("gcc") is not None, "gcc (to build the fake libnvidia-ml.so.1)")
    built = {}

    def build(name: str) -> Path:
        if name not in built:
            built[name] = build_fake_nvml(load_record(name), tmp_path_factory.mktemp(f"nvml-{name}"))
        return built[name]
    return build


@pytest.fixture(scope="session")
def fake_nvml_from(tmp_path_factory):
    """fake_nvml_from(record, label) -> a fake libnvidia-ml.so.1 for a record changed in a test."""
    require(shutil.which("gcc") is not None, "gcc (to build the fake libnvidia-ml.so.1)")

    def build(record: dict, label: str) -> Path:
        return build_fake_nvml(record, tmp_path_factory.mktemp(f"nvml-{label}")) / "libnvidia-ml.so.1"
    return build
