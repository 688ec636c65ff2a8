"""`envcheck gc`: remove the probe containers a killed run left behind (SIGKILL, a lost machine).

Only containers with envcheck's probe label are touched, and only those older than the age given, so the
probes of a run still going (on this daemon, from another runner) and every other tool's containers stay.
"""
from __future__ import annotations

import contextlib
import datetime
import re

import docker.errors
import requests.exceptions

from envcheck.errors import TargetUnavailable
from envcheck.redact import redact_daemon_url
from envcheck.targets import PROBE_LABEL, RUN_LABEL
from envcheck.targets.docker import close_client, connect, describe_error

# Docker's `Created`: RFC 3339 with nanoseconds (2026-12-07T15:46:24.123456789Z); Python reads microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def remove_leftovers(docker_host: str | None, older_than_s: float, run: str | None = None) -> list[str]:
    """Remove every container labelled envcheck.probe created more than `older_than_s` seconds ago on the
    daemon at `docker_host` (None: DOCKER_HOST or the default socket), only run `run`'s when given (its
    envcheck.run label); the names of those removed."""
    try:
        client = connect(docker_host)
    except (requests.exceptions.RequestException, docker.errors.DockerException) as error:
        where = redact_daemon_url(docker_host) or "DOCKER_HOST / the default socket"
        raise TargetUnavailable(f"cannot reach the Docker daemon at {where}: "
                                f"{describe_error(error, docker_host)}") from error
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        removed = []
        labels = [PROBE_LABEL, *([f"{RUN_LABEL}={run}"] if run else [])]
        for container in client.containers.list(all=True, filters={"label": labels}):
            if (now - created_at(container.attrs.get("Created", ""))).total_seconds() <= older_than_s:
                continue
            with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile by its own run
                container.remove(force=True)
                removed.append(container.name)
        return removed
    finally:
        close_client(client)


def created_at(stamp: str) -> datetime.datetime:
    """A container's creation time; an unreadable stamp counts as now (never removed for being old)."""
    try:
        return datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", stamp).replace("Z", "+00:00"))
    except ValueError:
        return datetime.datetime.now(datetime.timezone.utc)
