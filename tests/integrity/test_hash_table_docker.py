"""The integrity digest table for real (targets/integrity_cache.py): a Docker probe hands its table back to the
user's cache, and the next probe given a table finds an edited file as a probe without one does. The worst case
is made on purpose: the image with a hand-edited TensorFlow file (fixtures/images/integrity-edited-py) is probed
with the table of the reference image it was built from, as if the key were wrong."""
from __future__ import annotations

import shutil

import pytest
from helpers import docker_with_images

from envcheck.golden import builtin_golden_dir
from envcheck.model import Capture
from envcheck.targets import integrity_cache
from envcheck.targets.docker import DockerTarget

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PREFIX = "envcheck-fixture"
EDITED = "tensorflow/python/ops/gradients_util.py"


def _probe(name: str, out):
    target = DockerTarget(spec=f"docker:{PREFIX}/{name}", image=f"{PREFIX}/{name}", latency_budget=0)
    out.mkdir()
    outcome = target.run(builtin_golden_dir(), out, timeout=600)
    assert isinstance(outcome, Capture), outcome
    assert sorted(path.name for path in out.iterdir()) == ["capture.json", "outputs.npz"]  # the tables taken back
    return outcome


def _kept_table(name: str, outcome) -> tuple[str, dict]:
    identity = f"docker\0{outcome.target_info['daemon']['name']}\0{outcome.target_info['image']['id']}"
    table = integrity_cache.read_table(integrity_cache.table_file(identity))
    assert table is not None and table["files"], f"no table kept for {name}"
    return identity, table


def test_an_edited_file_is_found_with_the_table_of_the_image_it_was_edited_from(tmp_path, monkeypatch):
    docker_with_images(f"{PREFIX}/reference", f"{PREFIX}/integrity-edited-py").close()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reference = _probe("reference", tmp_path / "reference")
    reference_identity, reference_table = _kept_table("reference", reference)
    # Probed again with its own table, nothing changed: the probe leaves no table and the kept one stays as it was.
    kept = integrity_cache.table_file(reference_identity)
    before = (kept.read_bytes(), kept.stat().st_mtime_ns)
    again = _probe("reference", tmp_path / "again")
    assert again.fingerprint["integrity"]["python"] == reference.fingerprint["integrity"]["python"]
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == before
    # The reference's table under the edited image's key: its every row but the edited file's still matches.
    client = docker_with_images()
    edited_identity = (f"docker\0{reference.target_info['daemon']['name']}\0"
                       + client.images.get(f"{PREFIX}/integrity-edited-py").id)
    client.close()
    shutil.copy(integrity_cache.table_file(reference_identity), integrity_cache.table_file(edited_identity))

    edited = _probe("integrity-edited-py", tmp_path / "edited")

    python, clean = edited.fingerprint["integrity"]["python"], reference.fingerprint["integrity"]["python"]
    tensorflow = next(name for name in python if name.startswith("tensorflow"))
    assert python[tensorflow]["modified"] == [EDITED]
    # Everything else is the record of the reference, probed without a table.
    assert {**python, tensorflow: {**python[tensorflow], "modified": []}} == clean
    # Only the edited file was hashed again: every other row's stat matched (the same image layers).
    _, edited_table = _kept_table("integrity-edited-py", edited)
    assert edited_table["files"].keys() == reference_table["files"].keys()
    changed = [path for path, row in edited_table["files"].items() if reference_table["files"][path] != row]
    assert len(changed) == 1 and changed[0].endswith("/" + EDITED)
