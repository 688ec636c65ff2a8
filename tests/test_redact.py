"""Identifying values are hashed in shared reports; transports stay readable."""
from __future__ import annotations

import pytest

from envcheck.redact import redact_daemon_url, redact_target_info


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
