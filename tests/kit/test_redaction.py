"""The kit redacts on the box exactly as `envcheck probe` redacts on the host (envcheck/redact.py): the same
registry paths hashed with the same salt, the same values dropped. The kit has no envcheck to import, so it
follows the rules kit.json carries; this differential test holds the two paths equal."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from envcheck.golden import load_golden
from envcheck.redact import redact_for_sending

# The kit's own function, imported from the kit file (as the box imports it) in a child interpreter.
KIT_REDACTS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from envcheck_probe.kit_capture import redacted
task = json.load(sys.stdin)
json.dump(redacted(task["document"], task["rules"]), sys.stdout)
"""


def _fingerprint() -> dict:
    """The golden's fingerprint with every kind of value the rules touch, raw as a probe records them."""
    fingerprint = json.loads(json.dumps(load_golden().fingerprint))
    fingerprint["host"] = {**fingerprint.get("host", {}), "hostname": "line-7-box", "pid": 4242, "uid": 0}
    fingerprint["python"] = {**fingerprint.get("python", {}), "executable": "/opt/venv/bin/python3"}
    fingerprint["gpu"] = {"gpus": [{"uuid": "GPU-1234", "serial": "0324", "pci_bus_id": "00000000:3B:00.0",
                                    "name": "NVIDIA A2", "unsupported": {"uuid": "why not"}},
                                   {"uuid": "sha256:already", "serial": 17}]}
    return fingerprint


@pytest.mark.parametrize("salt", [None, "our-own-salt"])
def test_the_kit_redacts_exactly_as_envcheck_probe_does(kit, salt, monkeypatch):
    if salt is None:
        monkeypatch.delenv("ENVCHECK_REDACTION_SALT", raising=False)
    else:
        monkeypatch.setenv("ENVCHECK_REDACTION_SALT", salt)
    with zipfile.ZipFile(kit) as archive:
        rules = json.loads(archive.read("kit.json"))["redaction"]
    fingerprint = _fingerprint()
    document = {"fingerprint": fingerprint, "target": {"spec": "kit", "info": {"kind": "kit", "python": "/usr/bin/python3"}}}
    child = subprocess.run([sys.executable, "-c", KIT_REDACTS, str(kit)], input=json.dumps({"document": document,
                           "rules": rules}), capture_output=True, text=True, check=True)
    by_kit = json.loads(child.stdout)
    expected_fingerprint, expected_info = redact_for_sending(fingerprint, {"kind": "kit", "python": "/usr/bin/python3"})
    assert by_kit["fingerprint"] == expected_fingerprint
    assert by_kit["target"]["info"] == expected_info
    assert "line-7-box" not in child.stdout and "GPU-1234" not in child.stdout and "/opt/venv" not in child.stdout
    assert "pid" not in by_kit["fingerprint"]["host"]
