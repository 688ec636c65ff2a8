"""Identifying values are hashed in shared reports; transports stay readable."""
from __future__ import annotations

import pytest

from envcheck.redact import hash_identifier, redact_daemon_url, redact_fingerprint, redact_target_info


@pytest.mark.parametrize("url, scheme", [
    pytest.param("ssh://ops@edge-box-17", "ssh://", id="ssh"),
    pytest.param("tcp://10.1.2.3:2376", "tcp://", id="tcp"),
    pytest.param("https://docker.factory.example:2376", "https://", id="https"),
])
def test_remote_daemon_addresses_are_hashed_keeping_the_transport(url, scheme):
    hashed = redact_daemon_url(url)
    assert hashed.startswith(scheme + "sha256:") and url[len(scheme):] not in hashed
    assert redact_daemon_url(hashed) == hashed  # idempotent
    assert redact_daemon_url(url) == hashed  # stable: a fleet can still group by it


def test_local_socket_and_default_are_kept():
    assert redact_daemon_url("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"
    assert redact_daemon_url("default") == "default"


def test_target_info_is_redacted_in_a_copy():
    info = {"kind": "docker", "daemon": {"host": "ssh://ops@edge-box-17", "version": "28.2.2"}}
    shared = redact_target_info(info)
    assert "edge-box-17" not in str(shared) and shared["daemon"]["version"] == "28.2.2"
    assert info["daemon"]["host"] == "ssh://ops@edge-box-17"


def test_the_daemon_machines_name_is_hashed():
    shared = redact_target_info({"daemon": {"host": "unix:///var/run/docker.sock", "name": "edge-box-17"}})
    assert shared["daemon"]["name"].startswith("sha256:") and redact_target_info(shared) == shared


# ------------------------------------------------------------------ paths through someone's home (issue 27)

def _with_paths(home: str) -> dict:
    """A fingerprint whose path-holding fields (fields.py's holds_paths) lie under `home`, beside system paths."""
    return {
        "env": {"LD_LIBRARY_PATH": f"/usr/local/cuda/lib64:{home}/cuda/lib64", "LD_PRELOAD": f"{home}/hook.so",
                "OMP_NUM_THREADS": "4"},
        "native_libraries": {"loaded": {"libcudnn": {"kind": "cuda", "version": "9",
                                                     "path": f"{home}/venv/lib/libcudnn.so.9"},
                                        "libm": {"kind": "math", "version": "2.36",
                                                 "path": "/usr/lib/x86_64-linux-gnu/libm.so.6"}}},
        "integrity": {"mode": "numerics",
                      "python": {"numpy": {"version": "2.0", "checked": 3, "modified": ["numpy/home/x.py"],
                                           "missing": [], "unowned": []}},
                      "system": {"status": "ok", "checked": 2, "modified": [],
                                 "unowned": [f"{home}/venv/lib/libhotfix.so", "/opt/vendor/libx.so"]},
                      "startup": {"pth": [{"name": "hotfix.pth", "path": f"{home}/venv/site/hotfix.pth", "owner": None,
                                           "sha256": "ab" * 32, "lines": ["import hotfix"]}],
                                  "sitecustomize": None,
                                  "usercustomize": {"name": "usercustomize", "owner": None, "sha256": "cd" * 32,
                                                    "path": f"{home}/.local/lib/python3.11/usercustomize.py"},
                                  "ld_so_preload": [], "ld_preload": [{"name": "hook.so", "path": f"{home}/hook.so",
                                                                       "owner": None, "sha256": None}],
                                  "pythonstartup": {"path": f"{home}/.pythonrc", "sha256": None},
                                  "pythonpath": [f"{home}/src", "/srv/app"]}},
    }


@pytest.mark.parametrize("home", ["/home/alice", "/Users/alice", "/var/home/alice", "/media/alice/usb",
                                  "/run/media/alice/usb", "/net/alice"])
def test_a_shared_fingerprint_names_no_home_and_keeps_every_path_readable(home):
    shared = redact_fingerprint(_with_paths(home))
    text = str(shared)
    assert "alice" not in text
    folder = home.rsplit("/alice", 1)[0]
    token = f"{folder}/{hash_identifier('alice')}"
    startup = shared["integrity"]["startup"]
    # the folder after the home stays: a finding still names the file usefully
    assert startup["pth"][0]["path"] == home.replace(f"{folder}/alice", token) + "/venv/site/hotfix.pth"
    assert shared["env"]["LD_LIBRARY_PATH"] == "/usr/local/cuda/lib64:" + home.replace(f"{folder}/alice", token) \
        + "/cuda/lib64"
    # system and package paths, and paths relative to a site folder, are no person's
    assert shared["native_libraries"]["loaded"]["libm"]["path"] == "/usr/lib/x86_64-linux-gnu/libm.so.6"
    assert "/opt/vendor/libx.so" in shared["integrity"]["system"]["unowned"] and "/srv/app" in startup["pythonpath"]
    assert shared["integrity"]["python"]["numpy"]["modified"] == ["numpy/home/x.py"]
    assert redact_fingerprint(shared) == shared  # idempotent: a golden written redacted stays as it is


def test_roots_home_is_no_persons_and_stays():
    fingerprint = {"integrity": {"startup": {"pythonpath": ["/root/src"]}}}
    assert redact_fingerprint(fingerprint) == fingerprint


def test_the_same_path_compares_equal_and_a_new_file_is_named_after_the_home():
    """Golden and target are redacted alike (golden.py writes the golden redacted, build_report redacts an older one,
    evaluate the target): the same home path is no difference, a new file is named by what follows the home."""
    from envcheck.compare.evaluate import evaluate
    from envcheck.compare.policy import Policy
    from envcheck.model import Reference, TargetFailure

    golden = _with_paths("/home/alice")
    target = _with_paths("/home/alice")
    target["integrity"]["system"]["unowned"].append("/home/alice/venv/lib/libcudnn-hand-copied.so.9")
    reference = Reference(expected={}, fingerprint=redact_fingerprint(golden))
    result = evaluate(TargetFailure(spec="host", kind="probe-crashed", message="x", fingerprint=target), reference,
                      Policy())
    (finding,) = [f for f in result.findings if f.code == "system-library-unowned"]
    assert f"/home/{hash_identifier('alice')}/venv/lib/libcudnn-hand-copied.so.9" in finding.message
    assert "alice" not in str(result.fingerprint) and "alice" not in finding.message
    assert [f.code for f in result.findings] == ["system-library-unowned"]  # the golden's own files: no finding
