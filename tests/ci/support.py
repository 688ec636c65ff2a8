"""Constants and helpers of the CI-integration tests (fixtures are in conftest.py)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from helpers import own_probes_filter

PREFIX = "envcheck-fixture"
REFERENCE = f"{PREFIX}/reference"    # matches the golden: exit 0
DRIFTING = f"{PREFIX}/tf-older"      # another TensorFlow: FAIL, exit 1
NO_TF = f"{PREFIX}/no-tf"            # cannot be checked: ERROR, exit 3


def copy_golden(golden: Path, destination: Path) -> Path:
    """The bundle where a pipeline expects it in its checkout, readable by any user (a container's too)."""
    shutil.copytree(golden, destination)
    for path in [destination, *destination.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination


def wait_for_no_probes(client, image_ids: set[str], since: float, grace_s: float = 120) -> list[str]:
    """Probe containers of these images created since `since` that are still there after `grace_s`.

    Other tests may probe the same images at the same time, and their containers go away when they end;
    a container envcheck left behind stays: so wait for the set to empty, and return what never left."""
    deadline = time.monotonic() + grace_s
    while True:
        left = []
        for container in client.containers.list(all=True, filters=own_probes_filter()):
            try:
                created = container.attrs["Created"]
                image = container.attrs["Image"]
            except KeyError:
                continue
            if image in image_ids and _timestamp(created) >= since - 1:
                left.append(container.name)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(2)


def _timestamp(created: str) -> float:
    from datetime import datetime

    # Docker writes nanoseconds: keep microseconds for fromisoformat.
    head, _, fraction = created.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]}+00:00").timestamp()
