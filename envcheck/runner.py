"""Run the probe in many targets, concurrently, and stoppably (Ctrl-C, SIGTERM).

A failing target is a TargetFailure in the list, never an exception that stops the others.
"""
from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from envcheck.model import Capture, TargetFailure
from envcheck.targets import cancel_running
from envcheck.targets.base import Target

T = TypeVar("T")
WAKE_S = 0.25
"""Longest wait between two looks for a pending signal while probes run."""


class ProgressListener(Protocol):
    """Told when each target starts and ends (the CLI shows it; tests record it)."""

    def started(self, index: int, spec: str) -> None:
        """Target number `index` (in the order given) begins probing."""

    def finished(self, index: int, spec: str, outcome: Capture | TargetFailure) -> None:
        """Target number `index` ended with `outcome`."""


def run_target(target: Target, bundle_dir: Path, timeout: float, site: str | None = None) -> Capture | TargetFailure:
    """Probe one target in a fresh temporary directory and tag its outcome with `site`."""
    with tempfile.TemporaryDirectory(prefix="envcheck-capture-") as out_dir:
        outcome = target.run(Path(bundle_dir), Path(out_dir), timeout)
    return dataclasses.replace(outcome, site=site)


def run_targets(targets: Sequence[Target], bundle_dir: Path, *, timeout: float, jobs: int = 1,
                site: str | None = None, progress: ProgressListener | None = None) -> list[Capture | TargetFailure]:
    """Outcomes in the order of `targets`; up to `jobs` run at once."""
    def one(index: int, target: Target) -> Capture | TargetFailure:
        if progress:
            progress.started(index, target.spec)
        outcome = run_target(target, bundle_dir, timeout, site)
        if progress:
            progress.finished(index, target.spec, outcome)
        return outcome

    return run_interruptibly([partial(one, index, target) for index, target in enumerate(targets)], jobs)


def run_probe_into(target: Target, bundle_dir: Path, out_dir: Path, timeout: float) -> Capture | TargetFailure:
    """One probe whose capture stays in `out_dir` (envcheck probe keeps it), stoppable like the others."""
    (outcome,) = run_interruptibly([partial(target.run, Path(bundle_dir), Path(out_dir), timeout)], 1)
    return outcome


def run_interruptibly(calls: Sequence[Callable[[], T]], jobs: int) -> list[T]:
    """Results of `calls` in their order, up to `jobs` at once in worker threads; Ctrl-C or SIGTERM stops
    every probe still running (each worker then cleans up after its own: containers removed)."""
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(call) for call in calls]
        # NOTE: the kernel may deliver Ctrl-C or SIGTERM to a worker thread; Python then runs the handler
        # only when the main thread next runs, so it must not sleep until the probes end: it wakes often.
        while wait(futures, timeout=WAKE_S).not_done:
            pass
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        cancel_running()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

