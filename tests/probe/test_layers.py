"""The probe's layer record (envcheck_probe/layers.py) in a real TensorFlow: fetching the tensors in groups (how
a large model is recorded in bounded memory) records the very same bytes, and the record is small."""
from __future__ import annotations

import json
import subprocess
import sys

from envcheck.golden import builtin_golden_dir
from envcheck.targets.probe_app import probe_app_path

RECORD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from envcheck_probe import layers
from envcheck_probe.model import import_tensorflow, load_signature
tf, np = import_tensorflow()
_, signature = load_signature(tf, sys.argv[2] + "/model")
with np.load(sys.argv[2] + "/inputs.npz") as data:
    inputs = {name: data[name] for name in data.files}
records = []
for limit in (layers.MAX_FETCH_BYTES, 4096):  # one call; then groups of at most 4 KB of tensors
    layers.MAX_FETCH_BYTES = limit
    records.append(layers.layer_record(tf, np, signature, inputs))
print(json.dumps(records))
"""


def test_fetching_in_groups_records_the_same_bytes_as_one_call(needs_tensorflow):
    result = subprocess.run([sys.executable, "-c", RECORD, str(probe_app_path()), str(builtin_golden_dir())],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    whole, grouped = json.loads(result.stdout)
    assert whole["status"] == grouped["status"] == "ok" and whole["complete"] and grouped["complete"]
    assert [t["key"] for t in whole["tensors"]] == [t["key"] for t in grouped["tensors"]]
    assert [t["sha256"] for t in whole["tensors"]] == [t["sha256"] for t in grouped["tensors"]]
    assert whole["samples"] == 4 and all(t["shape"][0] == 4 for t in whole["tensors"] if t["op"] == "Conv2D")
    assert max(len(json.dumps(t)) for t in whole["tensors"]) <= 2048
