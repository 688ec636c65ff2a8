"""Targets: places the probe runs in. Each returns a Capture or a TargetFailure, never raises for
a target that merely failed; parse_target builds one from a spec string."""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import uuid
from collections.abc import Sequence

from envcheck.errors import UsageError
from envcheck.targets.base import Target
from envcheck.targets.probe_app import DEFAULT_LATENCY_BUDGET_S

SPEC_HELP = "host | python:PATH | docker:IMAGE | v2+http://HOST:PORT/MODEL | tfserving+http://HOST:8501/MODEL[@VERSION]"
DAEMON_SCHEMES = ("unix", "tcp", "ssh")
PROBE_LABEL = "envcheck.probe"
"""Every probe container carries it: `envcheck gc` removes only containers that do (targets/gc.py)."""
RUN_LABEL = "envcheck.run"
"""Every probe container carries this run's id under it: cleanup and tests touch only their own run's."""
RUN_ID_VARIABLE = "ENVCHECK_RUN_ID"
_PROCESS_RUN_ID = uuid.uuid4().hex


def run_id() -> str:
    """This run's id: one per envcheck process, or ENVCHECK_RUN_ID (tests name their run; a CI job may)."""
    return os.environ.get(RUN_ID_VARIABLE) or _PROCESS_RUN_ID

# Docker's reference grammar: [registry[:port]/]name[/name…][:tag][@sha256:digest], names lower case.
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = re.compile(rf"^(?:{_HOST}(?:\.{_HOST})*(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
                             r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")


def check_docker_host(url: str) -> str:
    """A daemon URL as the Docker SDK takes it (unix://PATH, tcp://HOST:PORT, ssh://[USER@]HOST[:PORT]), checked
    before anything runs; UsageError naming what is wrong (a bad port surfaced mid-fleet as an internal error)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in DAEMON_SCHEMES:
        raise UsageError(f"{url!r}: a Docker daemon URL starts with {', '.join(s + '://' for s in DAEMON_SCHEMES)}")
    if parts.scheme == "unix":
        if not (parts.path or parts.netloc):
            raise UsageError(f"{url!r}: names no socket path")
        return url
    try:
        parts.port  # noqa: B018 - reading it is the check: urllib raises for a port out of range
    except ValueError:
        raise UsageError(f"{url!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise UsageError(f"{url!r}: names no host")
    return url


def parse_target(spec: str, latency_budget: float = DEFAULT_LATENCY_BUDGET_S, layers: bool | None = None,
                 endpoint_auth=None, **docker_options) -> Target:
    """Build the target a spec names, its probe timing batch-1 calls for `latency_budget` seconds
    (0: none) and recording layers as `layers` says (None: when the golden has a layer record). Docker is
    imported only when a docker: spec asks for it."""
    kind, _, rest = spec.partition(":")
    if spec == "host":
        from envcheck.targets.host import InterpreterTarget
        return dataclasses.replace(InterpreterTarget.for_host(latency_budget=latency_budget), layers=layers)
    if kind == "python" and rest:
        from envcheck.targets.host import InterpreterTarget
        return InterpreterTarget(spec=spec, python=rest, latency_budget=latency_budget, layers=layers)
    if kind == "docker" and rest:
        if not IMAGE_REFERENCE.match(rest):
            raise UsageError(f"docker:{rest}: not a valid image reference (names are lower case: "
                             "[registry/]name[:tag][@sha256:digest], or an image id)")
        from envcheck.targets.docker import DockerTarget
        return DockerTarget(spec=spec, image=rest, latency_budget=latency_budget, layers=layers, **docker_options)
    if "+" in kind and rest.startswith("//"):  # a serving endpoint: v2+http://…, tfserving+https://…
        from envcheck.targets.endpoint import EndpointTarget
        return EndpointTarget.from_spec(spec, auth=endpoint_auth)
    raise UsageError(f"unknown target {spec!r}; expected {SPEC_HELP}")


def measured_alongside(targets: Sequence[Target], concurrent_probes: int) -> list[Target]:
    """`targets`, each told how many probes the run has going at once (its own and other sites'): the
    context their latency is measured in, part of a cached capture's key (targets/cache.py)."""
    return [dataclasses.replace(target, concurrent_probes=concurrent_probes)  # type: ignore[type-var]
            if hasattr(target, "concurrent_probes") else target for target in targets]


def cancel_running() -> None:
    """Stop every probe still running, of every target kind in use (Ctrl-C)."""
    from envcheck.targets.base import CANCELLED
    from envcheck.targets.process import cancel_children

    CANCELLED.set()
    cancel_children()
    if "envcheck.targets.docker" in sys.modules:  # never import docker just to cancel nothing
        sys.modules["envcheck.targets.docker"].cancel_containers()
