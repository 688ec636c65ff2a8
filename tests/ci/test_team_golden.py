"""The team golden made in a Docker image carries a calibration measured there: every perturbation ran in
the probe container (child probes in a network-less, non-root container), none was skipped."""
from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_golden_made_in_an_image_is_calibrated_inside_it(team_golden):
    bundle, _ = team_golden
    calibration = json.loads((bundle / "manifest.json").read_text())["calibration"]
    skipped = {name: entry["skipped"] for name, entry in calibration["perturbations"].items() if "skipped" in entry}
    assert not skipped
    assert {"repeat", "per-sample", "fresh-process", "intra-op-threads-1", "remapper-off"} <= set(
        calibration["perturbations"])
    assert calibration["deterministic"] is True
    assert set(calibration["outputs"]) == {"class_probs", "embedding"}
