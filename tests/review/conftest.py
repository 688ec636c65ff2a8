"""Fixtures of the review's tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from envcheck.review import batch


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the files a review reads to index them (not the newest evidence, read again by load.py)."""
    names: list[str] = []
    original = batch.read_bytes

    def counting(path):
        names.append(Path(path).name)
        return original(path)
    monkeypatch.setattr(batch, "read_bytes", counting)
    return names
