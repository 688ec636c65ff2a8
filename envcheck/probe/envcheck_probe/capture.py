"""The capture the probe leaves in its output directory: its constants, and writing capture.json."""
import json
import os

from .files import atomic_write

# The host side mirrors these in envcheck/capture.py (it must not import the probe);
# tests/test_layering.py checks that they agree.
CAPTURE_SCHEMA = "envcheck.capture/1"
PROBE_VERSION = "1"
CAPTURE_FILE = "capture.json"
OUTPUTS_FILE = "outputs.npz"


def write_capture(out_dir, capture):
    """Replace capture.json atomically: a reader sees the previous stage's capture or this one."""
    data = json.dumps(capture, indent=1, sort_keys=True, default=str).encode("utf-8")
    atomic_write(os.path.join(out_dir, CAPTURE_FILE), lambda handle: handle.write(data))


def write_outputs(np, out_dir, outputs, file_name=OUTPUTS_FILE):
    """The model's outputs as outputs.npz (or another .npz), written atomically."""
    atomic_write(os.path.join(out_dir, file_name), lambda handle: np.savez(handle, **outputs))
