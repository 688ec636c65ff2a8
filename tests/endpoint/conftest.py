"""The endpoint tests' servers: one KServe server for the session (several models on it: the golden's, the
same architecture with other weights, a renamed input, a lossy JSON writer, a token-guarded one)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # servers.py, for S2's tests too

from servers import Server, start_kserve

from envcheck.golden import builtin_golden_dir

TOKEN = "s3cret-endpoint-token-1234"
"""What the guarded model accepts; a test sends another and checks neither is written anywhere."""


@pytest.fixture(scope="session")
def edge_model() -> Path:
    """The edge golden's SavedModel: the smaller built-in model."""
    return builtin_golden_dir("edge") / "model"


@pytest.fixture(scope="session")
def kserve(tmp_path_factory, edge_model) -> Server:
    """KServe serving, on one port: `m` (the edge golden's model, version 1), `other` (its weights × 1.05),
    `renamed` (input `image` served as `pixels`), `lossy` (TF Serving answers with 6 significant digits) and `guarded`
    (needs the bearer TOKEN)."""
    model = str(edge_model)
    server = start_kserve([{"name": "m", "dir": model, "version": "1"},
                           {"name": "other", "dir": model, "version": "1", "scale": 1.05},
                           {"name": "renamed", "dir": model, "version": "1", "rename": {"pixels": "image"}},
                           {"name": "lossy", "dir": model, "version": "1", "digits": 6},
                           {"name": "guarded", "dir": model, "version": "1", "token": TOKEN}],
                          tmp_path_factory.mktemp("kserve"))
    yield server
    server.stop()
