"""Latency of a served model under load: closed-loop clients, percentiles, errors, against a P99 budget.

`--concurrency N` threads each hold their own connection and send one request, wait for its answer, send the
next (a closed loop: the offered load follows the server, so an overloaded server shows as latency, not as an
ever-growing queue in the client), for a bounded `--duration S` or until `--requests K` were sent in all.
The result is P50/P95/P99 of the answered requests (numpy's percentiles), the rate achieved, and the errors by
kind. It is judged against the policy's `[latency] p99_ms` budget, not against the golden's in-process latency,
which measures one process without a network, a server or other clients.

`run_load` measures, and `LoadResult.record()` is what the capture keeps in its target info (`load`);
compare/serving.py judges that record with the policy's budget. Progress: a live line on a terminal, a plain
line a second in CI.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envcheck import console
from envcheck.errors import EnvcheckError, UsageError
from envcheck.targets.endpoint_client import Auth, EndpointClient, EndpointSpec, open_client

PERCENTILES = (50, 95, 99)
PLAIN_EVERY_S = 1.0

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What N closed-loop clients measured."""

    concurrency: int
    wall_s: float
    """From the first request sent to the last answer."""
    latencies_s: tuple[float, ...] = field(repr=False)
    """Each answered request's round trip, in the order they finished."""
    errors: dict[str, int]
    """Failed requests by kind (the client's error kind, e.g. `timeout`, `http-503`)."""

    @property
    def answered(self) -> int:
        """How many requests were answered."""
        return len(self.latencies_s)

    @property
    def rate_per_s(self) -> float:
        """Answered requests per second over the run."""
        return self.answered / self.wall_s if self.wall_s > 0 else 0.0

    def percentiles_ms(self) -> dict[str, float | None]:
        """p50_ms, p95_ms, p99_ms of the answered requests (None each when nothing was answered)."""
        if not self.latencies_s:
            return {f"p{p}_ms": None for p in PERCENTILES}
        values = np.percentile(np.asarray(self.latencies_s) * 1e3, PERCENTILES)
        return {f"p{p}_ms": float(value) for p, value in zip(PERCENTILES, values, strict=True)}

    def record(self) -> dict[str, Any]:
        """The JSON record kept in the capture's target info (`load`), judged by compare/serving.py."""
        return {"concurrency": self.concurrency, "wall_s": self.wall_s, "answered": self.answered,
                "rate_per_s": self.rate_per_s, **self.percentiles_ms(),
                "errors": dict(sorted(self.errors.items())), "failed": sum(self.errors.values())}


class _Budget:
    """The shared stopping rule: a deadline, a request count, or both; thread-safe."""

    def __init__(self, duration_s: float | None, requests: int | None):
        if duration_s is None and requests is None:
            raise UsageError("a load run needs a bound: --duration SECONDS or --requests COUNT")
        if (duration_s is not None and duration_s <= 0) or (requests is not None and requests < 1):
            raise UsageError("--duration must be above 0 seconds and --requests at least 1")
        self.deadline = None if duration_s is None else time.monotonic() + duration_s
        self.left = requests
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def stop(self) -> None:
        """No more requests from now on (the run was interrupted)."""
        self.stopped.set()

    def take(self) -> bool:
        """Whether one more request may be sent (and, for a count, that it is now counted as sent)."""
        if self.stopped.is_set():
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        if self.left is None:
            return True
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class _Tally:
    """Latencies and errors from every worker, thread-safe; what progress reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.bug: BaseException | None = None

    def answered(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def failed(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    def crashed(self, bug: BaseException) -> None:
        with self.lock:
            self.bug = self.bug or bug

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.latencies), sum(self.errors.values())


def run_load(spec: EndpointSpec, auth: Auth, inputs: Inputs, *, concurrency: int, duration_s: float | None = None,
             requests: int | None = None, timeout: float, expected_outputs: Mapping[str, str] | None = None,
             progress: LoadProgress | None = None, connect: Callable[..., EndpointClient] = open_client) -> LoadResult:
    """`concurrency` closed-loop clients sending `inputs` (one request's worth) until the bound is reached.
    A failed request is counted by kind and its client reconnects; the run goes on. `expected_outputs`: as
    open_client takes it (TF Serving's answers do not name a lone output)."""
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    budget, tally = _Budget(duration_s, requests), _Tally()

    def open_one() -> EndpointClient:
        return connect(spec, auth=auth, timeout=timeout, expected_outputs=expected_outputs)

    started = time.perf_counter()
    workers = [threading.Thread(target=_client_loop, args=(open_one, inputs, budget, tally),
                                name=f"envcheck-load-{index}", daemon=True) for index in range(concurrency)]
    for worker in workers:
        worker.start()
    _wait(workers, budget, tally, progress)
    if tally.bug is not None:
        raise tally.bug
    return LoadResult(concurrency=concurrency, wall_s=time.perf_counter() - started,
                      latencies_s=tuple(tally.latencies), errors=dict(tally.errors))


class LoadProgress:
    """Progress of a load run on stderr: a live rich line on a terminal, a plain line a second otherwise (CI)."""

    def __init__(self, label: str, stream: Any = None, live: bool | None = None):
        """`live`: None decides by the stream (a terminal, outside CI); False keeps to plain lines, e.g. under
        `check`'s own live display, which one more live line on the same terminal would garble."""
        self.label = label
        stream = stream if stream is not None else sys.stderr
        self.live = console.is_terminal(stream) and not os.environ.get("CI") if live is None else live
        self.last_plain = 0.0
        self._bar: Any = None

    def __enter__(self) -> LoadProgress:
        if self.live:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                                 TextColumn("{task.fields[state]}", markup=False), TimeElapsedColumn(),
                                 console=console.rich_console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(console.neutral(self.label), state="starting")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def tick(self, answered: int, failed: int, elapsed_s: float) -> None:
        """Called about ten times a second while the run lasts."""
        state = f"{answered} answered, {failed} failed, {answered / elapsed_s if elapsed_s else 0:.1f}/s"
        if self._bar is not None:
            self._bar.update(self._task, state=state)
        elif elapsed_s - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = elapsed_s
            console.warn(f"{self.label}: {state} ({elapsed_s:.0f} s)")


# ------------------------------------------------------------------------------------------- helpers

def _client_loop(open_one: Callable[[], EndpointClient], inputs: Inputs, budget: _Budget, tally: _Tally) -> None:
    """One closed-loop client on its own connection; after a failure it reconnects before the next request."""
    try:
        _send_until_done(open_one, inputs, budget, tally)
    except BaseException as bug:  # noqa: BLE001 - a bug, not the server's error: the run stops, run_load raises it
        tally.crashed(bug)
        budget.stop()


def _send_until_done(open_one: Callable[[], EndpointClient], inputs: Inputs, budget: _Budget, tally: _Tally) -> None:
    client: EndpointClient | None = None
    try:
        while budget.take():
            sent = time.perf_counter()
            try:
                client = client or open_one()
                client.infer(inputs)
            except (EnvcheckError, OSError) as error:  # the client's one-line errors; a bug keeps its traceback
                tally.failed(_error_kind(error))
                _close(client)
                client = None
                continue
            tally.answered(time.perf_counter() - sent)
    finally:
        _close(client)


def _error_kind(error: Exception) -> str:
    """The client's own kind for an EndpointError (`timeout`, `http-503`, …), else the exception's class name."""
    kind = getattr(error, "kind", None)
    return str(kind) if kind else type(error).__name__


def _close(client: EndpointClient | None) -> None:
    if client is not None:
        with contextlib.suppress(EnvcheckError, OSError):  # closing a broken connection may fail: nothing to do
            client.close()


def _wait(workers: list[threading.Thread], budget: _Budget, tally: _Tally, progress: LoadProgress | None) -> None:
    """Until every client is done; Ctrl-C or SIGTERM here stops them all from sending more."""
    started = time.monotonic()
    try:
        for worker in workers:
            while worker.is_alive():
                worker.join(0.1)
                if progress is not None:
                    progress.tick(*tally.counts(), time.monotonic() - started)
    except BaseException:
        budget.stop()
        raise
