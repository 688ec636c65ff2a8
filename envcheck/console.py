"""The one console of every command: both standard streams, safe against readers that left and against data.

What it promises (tests/contract/ holds every command to it):
- A reader that left (`| head -1`), a stream closed before start (`>&-`, `2>&-`) or a full disk behind a
  redirect never changes the exit code: the stream falls silent (pointed at /dev/null, so the interpreter's
  last flush cannot fail either) and the run goes on. Worker threads print through the same guard.
- Every line printed with `say` or `warn` is neutralised (textsafe.for_terminal): control characters are
  shown, never obeyed, and a line never begins a CI workflow command (`::add-mask::`, `##vso[`).
- Closed standard descriptors are held open on /dev/null, so a file the run opens never becomes fd 1 or 2
  (then a stray print would land inside a report).
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any, TextIO, cast

from envcheck.textsafe import for_terminal

PREFIX = "envcheck: "
_LOCK = threading.RLock()


class GuardedStream(io.TextIOBase):
    """A standard stream that never raises: once a write or flush fails, it says nothing more."""

    def __init__(self, wrapped: TextIO | None):
        super().__init__()
        self.wrapped = wrapped
        self.gone = wrapped is None

    def write(self, text: str) -> int:
        """Write `text`, or nothing once the stream is gone; always "wrote it all"."""
        if not self.gone:
            with _LOCK:
                try:
                    assert self.wrapped is not None
                    self.wrapped.write(text)
                except (OSError, ValueError):  # a closed pipe, EIO, ENOSPC; ValueError: a closed file object
                    self._fall_silent()
        return len(text)

    def flush(self) -> None:
        """Flush, falling silent if that fails."""
        if not self.gone:
            with _LOCK:
                try:
                    assert self.wrapped is not None
                    self.wrapped.flush()
                except (OSError, ValueError):
                    self._fall_silent()

    def isatty(self) -> bool:
        """Whether the stream is an open terminal."""
        if self.gone:
            return False
        try:
            return bool(self.wrapped.isatty())  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        """The wrapped descriptor (rich asks it for the terminal size)."""
        if self.gone or self.wrapped is None:
            raise io.UnsupportedOperation("the stream is closed")
        return self.wrapped.fileno()

    def writable(self) -> bool:
        """Always: writes to a gone stream are dropped, not refused."""
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The wrapped stream's encoding."""
        return getattr(self.wrapped, "encoding", None) or "utf-8"

    def _fall_silent(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.wrapped.fileno())  # type: ignore[union-attr]
            os.close(devnull)


def hold_standard_descriptors() -> None:
    """Open /dev/null on any of fds 0-2 closed at start (os.open takes the lowest free number)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                opened = os.open(os.devnull, os.O_RDWR)
                if opened != fd:  # a lower one was free too and is now held; this one is next
                    os.close(opened)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """While a command runs, sys.stdout and sys.stderr are GuardedStreams (restored after)."""
    hold_standard_descriptors()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = GuardedStream(saved[0]), GuardedStream(saved[1])
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = saved


def neutral(text: Any) -> str:
    """`text` as lines fit for a terminal or CI log: each line neutralised on its own."""
    return "\n".join(for_terminal(line) for line in str(text).split("\n"))


def say(text: Any) -> None:
    """Lines on stdout (never wrapped: paths stay copyable)."""
    _write(sys.stdout, neutral(text))


def warn(message: Any) -> None:
    """`envcheck: message` on stderr."""
    _write(sys.stderr, PREFIX + neutral(message))


def _write(stream: TextIO | None, line: str) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):  # unguarded streams too (a library calling in directly)
        stream.write(line + "\n")
        stream.flush()


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is an open terminal (False for a closed or missing one)."""
    try:
        return stream is not None and bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


def rich_console(*, stderr: bool = False, **options: Any):
    """A rich Console on one of the guarded streams; a reader that left makes it quiet, never exit."""
    from rich.console import Console

    class QuietOnBrokenPipe(Console):
        # NOTE: rich's own handler raises SystemExit(1), which a CI gate would read as drift.
        def on_broken_pipe(self) -> None:
            self.quiet = True

    stream: Any = sys.stderr if stderr else sys.stdout
    return QuietOnBrokenPipe(file=cast(IO[str], stream if stream is not None else GuardedStream(None)), **options)


def show(renderable: Any) -> None:
    """A rich renderable on stdout. Text is data here, never markup (renderers build styled Text themselves)."""
    from rich.text import Text

    if isinstance(renderable, str):
        renderable = Text(neutral(renderable))
    with contextlib.suppress(OSError, ValueError):
        rich_console(soft_wrap=False).print(renderable)
