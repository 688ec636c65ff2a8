"""Small file helpers: atomic writes, content hashes, and reading a TOML file (policy, fleet inventory)."""
from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The TOML file as a table; `error` with one line naming the file (`what` it is) when it cannot be read."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as failure:
        raise error(f"{path}: cannot read the {what} ({failure.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as failure:
        raise error(f"{path}: not valid TOML ({failure})") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target and rename: a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; a report or bundle is meant to be read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically (see atomic_write_bytes)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def report_file_name(now_ns: int | None = None, suffix: str = "") -> str:
    """`envcheck-20261207T154433.123456Z{suffix}.json`: a report's name, from ONE read of the clock.

    The names sort as the reports were made (`fleet status` takes the last): the microseconds are cut from
    the same instant as the seconds, never rounded up into a second that has not begun."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    seconds, microseconds = divmod(now_ns // 1000, 1_000_000)
    return f"envcheck-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(seconds))}.{microseconds:06d}Z{suffix}.json"


MAX_DOCUMENT_BYTES = 256 << 20
"""The largest report or capture document read (a real one is well under 1 MiB)."""


def open_regular_file(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file; OSError (with a strerror to show) for a FIFO or a
    device, which would block or never end (`/dev/zero`). The check and the read are of the same open file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    stream = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        stream.close()
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return stream


def read_regular_file(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A regular file's bytes (open_regular_file); OSError also for a file past `limit` bytes."""
    with open_regular_file(path) as stream:
        if os.fstat(stream.fileno()).st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", str(path))
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB", str(path))
    return data
