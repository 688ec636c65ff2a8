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
    # Paths through someone's home, in every kind of field that holds paths (and one already redacted).
    fingerprint["env"] = {**fingerprint.get("env", {}), "LD_LIBRARY_PATH": "/usr/lib:/home/alice/cuda/lib64",
                          "LD_PRELOAD": "/home/alice/hook.so /usr/lib/libjemalloc.so.2"}
    fingerprint["native_libraries"] = {"loaded": {"libcudnn": {"kind": "cuda", "version": "9",
                                                               "path": "/Users/alice/venv/lib/libcudnn.so.9"}}}
    fingerprint["integrity"] = {"mode": "numerics", "python": {"numpy": {"modified": ["numpy/home/alice.py"]}},
                                "system": {"status": "ok", "unowned": ["/home/alice/lib/libhotfix.so"],
                                           "modified": ["/media/alice/usb/libm.so.6"]},
                                "startup": {"pth": [{"name": "a.pth", "path": "/home/alice/venv/site/a.pth",
                                                     "lines": ["import a"]}],
                                            "sitecustomize": {"path": "/net/build-host-3/py/sitecustomize.py"},
                                            "usercustomize": {"path": "/home/alice/.local/lib/usercustomize.py"},
                                            "ld_so_preload": [{"name": "x.so", "path": "/var/home/alice/x.so"}],
                                            "ld_preload": [{"name": "hook.so", "path": "/home/alice/hook.so"}],
                                            "pythonstartup": {"path": "/home/sha256:0123456789abcdef/.pythonrc"},
                                            "pythonpath": ["/home/alice/src", "/run/media/alice/disk"]}}
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
    assert "alice" not in child.stdout.replace("numpy/home/alice.py", "") and "build-host-3" not in child.stdout
    assert "pid" not in by_kit["fingerprint"]["host"]


# The kit's copy of the --site rule (the host tool never imports the probe, so it cannot share envcheck's).
KIT_SITE_NAMES = """
import json, sys
sys.path.insert(0, sys.argv[1])
from envcheck_probe.kit import _site_name
answers = []
for text in json.load(sys.stdin):
    try:
        answers.append(_site_name(text))
    except Exception as error:
        answers.append(None)
json.dump(answers, sys.stdout)
"""


def test_the_kit_reads_a_site_name_exactly_as_envcheck_does(kit):
    """Two copies of one rule across the host/probe boundary, held equal here."""
    import argparse

    from envcheck.cli import _site_name

    names = ["line-7", "  padded  ", "", "   ", "x" * 200, "x" * 201, "tab\there", "esc\x1b[2J", "上海-3", "a\nb"]
    expected = []
    for text in names:
        try:
            expected.append(_site_name(text))
        except argparse.ArgumentTypeError:
            expected.append(None)
    child = subprocess.run([sys.executable, "-c", KIT_SITE_NAMES, str(kit)], input=json.dumps(names),
                           capture_output=True, text=True, check=True)
    assert json.loads(child.stdout) == expected
    assert expected.count(None) == 6  # the rule refuses: empty, blank, too long, tab, ESC, newline
