"""Targets: places the probe runs in. Each returns a Capture or a TargetFailure, never raises for
a target that merely failed; parse_target builds one from a spec string."""
from __future__ import annotations

import sys

from envcheck.errors import UsageError
from envcheck.targets.base import Target

SPEC_HELP = "host | python:PATH | docker:IMAGE"


def parse_target(spec: str, **docker_options) -> Target:
    """Build the target a spec names. Docker is imported only when a docker: spec asks for it."""
    kind, _, rest = spec.partition(":")
    if spec == "host":
        from envcheck.targets.host import InterpreterTarget
        return InterpreterTarget.for_host()
    if kind == "python" and rest:
        from envcheck.targets.host import InterpreterTarget
        return InterpreterTarget(spec=spec, python=rest)
    if kind == "docker" and rest:
        from envcheck.targets.docker import DockerTarget
        return DockerTarget(spec=spec, image=rest, **docker_options)
    raise UsageError(f"unknown target {spec!r}; expected {SPEC_HELP}")


def cancel_running() -> None:
    """Stop every probe still running, of every target kind in use (Ctrl-C)."""
    from envcheck.targets.base import CANCELLED
    from envcheck.targets.process import cancel_children

    CANCELLED.set()
    cancel_children()
    if "envcheck.targets.docker" in sys.modules:  # never import docker just to cancel nothing
        sys.modules["envcheck.targets.docker"].cancel_containers()
