"""The integrity digest table of a host target (targets/host.py, integrity_cache.py): the probe of this interpreter
leaves its table in the user's cache folder, and the next probe, given it, hashes nothing that did not change and
records what the first one did. Runs TensorFlow here twice."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

from envcheck.golden import builtin_golden_dir
from envcheck.model import Capture
from envcheck.targets import integrity_cache
from envcheck.targets.host import InterpreterTarget

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_tensorflow")]


def _table_file(outcome):
    return integrity_cache.table_file(f"python\0{os.path.realpath(outcome.target_info['python'])}")


def _probe(out):
    out.mkdir()
    outcome = InterpreterTarget.for_host(latency_budget=0).run(builtin_golden_dir(), out, timeout=600)
    assert isinstance(outcome, Capture), outcome
    assert not {integrity_cache.TABLE_IN, integrity_cache.TABLE_OUT} & {path.name for path in out.iterdir()}
    table = integrity_cache.read_table(_table_file(outcome))
    assert table is not None and table["files"]
    return outcome, table


def test_a_second_host_probe_takes_unchanged_files_from_the_table(tmp_path, monkeypatch):
    """The second probe reads the table: a row altered where it is kept, its stat still matching the file, is
    believed (what a table cannot see, docs/integrity.md); every other record is the first probe's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first, table = _probe(tmp_path / "first")
    numpy_init = importlib.util.find_spec("numpy").origin  # the host target is this interpreter
    table["files"][numpy_init][4] = "A" * integrity_cache.RECORD_DIGEST_LENGTH
    _table_file(first).write_text(json.dumps(table))

    second, _ = _probe(tmp_path / "second")

    before, after = first.fingerprint["integrity"]["python"], second.fingerprint["integrity"]["python"]
    assert after["numpy"]["modified"] == ["numpy/__init__.py"]
    assert {**after, "numpy": {**after["numpy"], "modified": []}} == before
