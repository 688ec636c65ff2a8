"""The capture cache cannot be fooled: an entry is served only under the key it was made for, never through a
link, and two writers of one key never abort a run. No Docker needed: entries are made from a recorded capture."""
from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import numpy
import pytest

from envcheck.capture import CAPTURE_SCHEMA
from envcheck.targets import cache
from envcheck.targets.base import probe_running
from envcheck.targets.docker import DockerTarget, normalise_endpoint

FACTS = cache.MachineFacts(cpu_model="Some CPU", cpu_flags=("avx2", "sse4_2"), nvidia_kernel_module=None,
                           nvidia_userspace_libraries=())
KEY = cache.CacheKey(endpoint="unix:///var/run/docker.sock", daemon_id="AAAA", daemon={"Name": "box"},
                     machine=FACTS, image_id="sha256:" + "1" * 64, golden_sha256="2" * 64, probe_sha256="3" * 64,
                     run={"network_mode": "none"}, latency_context={"concurrent_probes": 1})
OTHER = dataclasses.replace(KEY, image_id="sha256:" + "9" * 64)


@pytest.fixture
def capture_dir(tmp_path) -> Path:
    """A capture as a probe leaves it: capture.json and outputs.npz."""
    folder = tmp_path / "capture"
    folder.mkdir()
    (folder / "capture.json").write_text(json.dumps({
        "schema": CAPTURE_SCHEMA, "probe_version": "1", "started": "2026-11-26T11:18:52Z", "status": "ok",
        "stage": "run-model", "fingerprint": {"python": {"version": "3.11.7"}}, "timings": {"total_s": 2.0},
        "outputs": {}, "error": None}))
    numpy.savez(folder / "outputs.npz", y=numpy.arange(4, dtype=numpy.float32))
    return folder


@pytest.fixture
def cache_dir(tmp_path, capture_dir) -> Path:
    folder = tmp_path / "cache"
    cache.store(folder, KEY, capture_dir, {})
    assert cache.load(folder, KEY, "docker:x", {}) is not None  # the genuine entry is served
    return folder


def _entry(cache_dir: Path, key: cache.CacheKey) -> Path:
    return cache_dir / key.digest()


def test_an_entry_copied_under_another_key_is_not_served(cache_dir):
    shutil.copytree(_entry(cache_dir, KEY), _entry(cache_dir, OTHER))
    assert cache.load(cache_dir, OTHER, "docker:x", {}) is None
    assert not _entry(cache_dir, OTHER).exists()  # removed: the next store writes a genuine one


def test_an_entry_whose_record_names_the_key_asked_but_not_its_parts_is_not_served(cache_dir):
    forged = _entry(cache_dir, OTHER)
    shutil.copytree(_entry(cache_dir, KEY), forged)
    record = json.loads((forged / cache.ENTRY_FILE).read_text())
    record["key"] = OTHER.digest()  # the parts still say KEY's image
    (forged / cache.ENTRY_FILE).write_text(json.dumps(record))
    assert cache.load(cache_dir, OTHER, "docker:x", {}) is None


def test_an_entry_linked_under_another_key_is_not_followed(cache_dir):
    _entry(cache_dir, OTHER).symlink_to(_entry(cache_dir, KEY))
    assert cache.load(cache_dir, OTHER, "docker:x", {}) is None
    assert not _entry(cache_dir, OTHER).is_symlink()
    assert cache.load(cache_dir, KEY, "docker:x", {}) is not None  # what the link pointed to is left alone


def test_an_entry_holding_a_link_is_not_served(cache_dir, tmp_path):
    entry = _entry(cache_dir, KEY)
    elsewhere = tmp_path / "elsewhere.npz"
    shutil.copyfile(entry / "outputs.npz", elsewhere)
    (entry / "outputs.npz").unlink()
    (entry / "outputs.npz").symlink_to(elsewhere)  # same bytes, same sha256: only the link betrays it
    assert cache.load(cache_dir, KEY, "docker:x", {}) is None
    assert elsewhere.exists()


def test_an_entry_with_a_file_it_does_not_list_is_not_served(cache_dir, capture_dir):
    entry = _entry(cache_dir, KEY)
    (entry / "tflite-outputs.npz").write_bytes((capture_dir / "outputs.npz").read_bytes())
    assert cache.load(cache_dir, KEY, "docker:x", {}) is None


def test_a_dangling_link_in_the_cache_is_no_crash(tmp_path, capture_dir):
    folder = tmp_path / "cache"
    folder.mkdir()
    _entry(folder, KEY).symlink_to(tmp_path / "gone")
    assert cache.load(folder, KEY, "docker:x", {}) is None
    _entry(folder, OTHER).symlink_to(tmp_path / "gone-too")
    cache.store(folder, OTHER, capture_dir, {})  # a link where the entry goes is replaced, never written through
    assert cache.load(folder, OTHER, "docker:x", {}) is not None
    assert not (tmp_path / "gone-too").exists()


def test_two_stores_of_one_key_at_once_do_not_abort(tmp_path, capture_dir, monkeypatch):
    """The race made certain: another writer's entry appears between this writer's clean-up and its rename."""
    folder = tmp_path / "cache"
    rename = Path.rename

    def racing_rename(self, target):
        if Path(target).name == KEY.digest() and not Path(target).exists():
            shutil.copytree(capture_dir, target)  # the other writer got there first
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", racing_rename)
    cache.store(folder, KEY, capture_dir, {})
    assert [p.name for p in folder.iterdir()] == [KEY.digest()]  # no staging folder left


def test_many_threads_storing_one_key_leave_one_servable_entry(tmp_path, capture_dir):
    folder = tmp_path / "cache"
    errors: list[BaseException] = []

    def store() -> None:
        try:
            for _ in range(10):
                cache.store(folder, KEY, capture_dir, {})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.load(folder, KEY, "docker:x", {}) is not None


@pytest.mark.parametrize("change", [
    pytest.param({"endpoint": "tcp://edge-2:2375"}, id="endpoint"),
    pytest.param({"daemon_id": "BBBB"}, id="daemon-id"),
    pytest.param({"machine": dataclasses.replace(FACTS, cpu_flags=("sse4_2",))}, id="cpu-flags"),
    pytest.param({"machine": dataclasses.replace(FACTS, nvidia_userspace_libraries=("libcuda.so.550.54.15",))},
                 id="userspace-driver"),
    pytest.param({"latency_context": {"concurrent_probes": 3}}, id="measured-under-load"),
])
def test_each_fact_the_capture_depends_on_changes_the_key(cache_dir, change):
    changed = dataclasses.replace(KEY, **change)
    assert changed.digest() != KEY.digest()
    assert cache.load(cache_dir, changed, "docker:x", {}) is None


def test_machine_facts_name_the_userspace_driver_beside_the_kernel_module():
    facts = cache.machine_facts(
        "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: sse avx2 avx\n",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n",
        ["/usr/lib/x86_64-linux-gnu/libcuda.so.555.42.02", "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
         "/usr/lib64/libnvidia-ml.so.555.42.02", "/usr/lib/libc.so.6"])
    assert facts.cpu_model == "AMD EPYC 7B13" and facts.cpu_flags == ("avx", "avx2", "sse")
    assert facts.nvidia_kernel_module is not None and "550.54.15" in facts.nvidia_kernel_module
    assert facts.nvidia_userspace_libraries == ("libcuda.so.555.42.02", "libnvidia-ml.so.555.42.02")


@pytest.mark.parametrize("written, environment, expected", [
    pytest.param(None, None, "unix:///var/run/docker.sock", id="default-socket"),
    pytest.param(None, "tcp://Edge-17", "tcp://edge-17:2375", id="docker-host-variable"),
    pytest.param("unix:///var/run//docker.sock", None, "unix:///var/run/docker.sock", id="socket-path"),
    pytest.param("tcp://EDGE-17:2375/", None, "tcp://edge-17:2375", id="tcp-spelling"),
    pytest.param("ssh://ops@Edge-17", None, "ssh://ops@edge-17:22", id="ssh-default-port"),
])
def test_the_endpoint_is_normalised(monkeypatch, written, environment, expected):
    if environment is None:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
    else:
        monkeypatch.setenv("DOCKER_HOST", environment)
    assert normalise_endpoint(written) == expected


def test_probes_running_at_once_are_counted():
    with probe_running() as first:
        with probe_running() as second:
            pass
        with probe_running():
            pass
    with probe_running() as alone:
        pass
    assert (first.peak, second.peak, alone.peak) == (2, 2, 1)


def test_a_capture_is_keyed_by_the_load_it_was_measured_under():
    target = DockerTarget(spec="docker:x", image="x", concurrent_probes=2)
    assert target._latency_context(1) == {"concurrent_probes": 2}  # what the run declared
    assert target._latency_context(3) == {"concurrent_probes": 3}  # more than declared was seen
    assert dataclasses.replace(target, latency_budget=0)._latency_context(3) is None  # no latency measured
