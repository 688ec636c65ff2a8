"""The endpoint tests' servers: one KServe server for the session (several models on it: the golden's, the
same architecture with other weights, a renamed input, a lossy JSON writer, a token-guarded one), and three
replicas of the golden's model for the replica tests (two started alike, one odd), also one per session: each
is a TensorFlow process, dear on two cores."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # servers.py, for S2's tests too

from servers import Server, running, start_kserve

from envcheck.golden import builtin_golden_dir

TOKEN = "s3cret-endpoint-token-1234"
"""What the guarded model accepts; a test sends another and checks neither is written anywhere."""
# The odd replica computes differently on every machine: both replicas set TF_ENABLE_ONEDNN_OPTS explicitly, the
# usual one to 1 and the odd one to 0, so one runs oneDNN's kernels and the other Eigen's whatever this CPU's
# default is (setting only the odd replica to 0 would change nothing on a CPU where oneDNN is off by default).
USUAL = {"TF_ENABLE_ONEDNN_OPTS": "1"}
ODD = {"TF_ENABLE_ONEDNN_OPTS": "0"}


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


@pytest.fixture(scope="session")
def replicas(tmp_path_factory, edge_model) -> Iterator[dict[str, int]]:
    """Three replicas serving the edge golden's model as `m`: two started alike, one odd; their ports by role."""
    folder = tmp_path_factory.mktemp("replicas")
    model = [{"name": "m", "dir": str(edge_model), "version": "1"}]
    with contextlib.ExitStack() as stack:
        yield {role: stack.enter_context(running(start_kserve(model, folder, environment))).port
               for role, environment in (("usual", USUAL), ("alike", USUAL), ("odd", ODD))}
