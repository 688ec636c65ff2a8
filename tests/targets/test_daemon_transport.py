"""Docker daemons that cannot be used, on loopback sockets made by the test: no Docker needed.

A daemon that accepts the connection and never answers must cost no more than --timeout and be
told apart from one that refuses; a remote daemon's address never reaches a shared report raw.
"""
from __future__ import annotations

import json
import socket
import time

import pytest

from envcheck.errors import ExitCode

TARGET = "docker:envcheck-fixture/reference"


@pytest.fixture
def silent_daemon():
    """A TCP listener on loopback that completes the handshake (the kernel does) and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def refusing_daemon():
    """A loopback port that was just free: connecting to it is refused."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"tcp://127.0.0.1:{port}"


def test_daemon_that_never_answers_is_an_error_within_the_timeout(run_cli, silent_daemon):
    started = time.monotonic()
    code, _, err, report = run_cli("check", "--target", TARGET, "--docker-host", silent_daemon, "--timeout", "3")
    elapsed = time.monotonic() - started
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "daemon-timeout", error
    assert "did not answer within 3 s" in error["message"] and "Traceback" not in err
    assert elapsed < 15, f"took {elapsed:.1f} s for a 3 s timeout"


def test_daemon_that_refuses_is_told_apart(run_cli, refusing_daemon):
    code, _, _, report = run_cli("check", "--target", TARGET, "--docker-host", refusing_daemon, "--timeout", "10")
    error = report["targets"][0]["error"]
    assert code == ExitCode.UNDECIDED and error["kind"] == "daemon-unreachable", error


def test_remote_daemon_address_is_hashed_in_every_artefact(run_cli, silent_daemon, tmp_path):
    html, junit, markdown = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "r.md"
    code, out, err, report = run_cli("check", "--target", TARGET, "--docker-host", silent_daemon, "--timeout", "2",
                                     "--html", str(html), "--junit", str(junit), "--markdown", str(markdown))
    assert code == ExitCode.UNDECIDED
    raw = silent_daemon.removeprefix("tcp://")
    written = [p.read_text() for p in (html, junit, markdown, *(tmp_path / "kept").glob("*.json"))]
    for text in [json.dumps(report), out, *written]:
        assert raw not in text
    assert report["targets"][0]["error"]["message"].count("tcp://sha256:") == 1


def test_a_refused_tcp_daemon_is_named_as_envcheck_names_it_never_through_a_third_party_repr(run_cli,
                                                                                            refusing_daemon):
    """urllib3's text repeats the raw address (`HTTPConnectionPool(host='127.0.0.1', port=…)`): the message
    names the endpoint once, hashed as in every report, and says what happened in plain words."""
    code, out, err, report = run_cli("check", "--target", TARGET, "--docker-host", refusing_daemon, "--timeout", "10")
    message = report["targets"][0]["error"]["message"]
    raw_host, _, port = refusing_daemon.removeprefix("tcp://").partition(":")
    assert code == ExitCode.UNDECIDED and "connection refused" in message, message
    assert message.count("tcp://sha256:") == 1 and "ConnectionPool" not in message, message
    for text in (message, out, err):
        assert raw_host not in text and f":{port}" not in text, text
