"""`envcheck kit collect`: the capture a kit wrote into a log (`--out log:`), taken back out and checked.

A kit run in a pod (`envcheck kit k8s`) writes its capture's tar.gz to stdout as base64 lines between a BEGIN
line, which says the archive's size and sha256, and an END line (probe/envcheck_probe/kit_capture.py's
write_log_frame; its markers are mirrored here, since the host never imports the probe, and a test holds them
equal). `kubectl logs POD` or `podman logs CONTAINER` gives those lines back, possibly with a prefix per line
(`kubectl logs --prefix`, `--timestamps`) and the kit's own messages around them. A log whose frame is missing,
cut short, altered or doubled is refused in one line (exit 3): nothing partial is ever written.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from envcheck.errors import EnvcheckError

LOG_FRAME_VERSION = "v1"
_BEGIN = re.compile(r"-----BEGIN ENVCHECK CAPTURE (?P<version>\S+) bytes=(?P<size>\d+) "
                    r"sha256=(?P<sha256>[0-9a-f]{64})-----\s*$")
_END = re.compile(r"-----END ENVCHECK CAPTURE-----\s*$")
_BASE64_LINE = re.compile(r"(?:^|\s)(?P<data>[A-Za-z0-9+/]+={0,2})\s*$")
"""A frame's line: its base64 is the last word (whatever a log tool put before it: a prefix, a timestamp)."""


class DamagedLog(EnvcheckError):
    """The log holds no whole, intact capture (exit 3: nothing can be decided from it)."""


@dataclass(frozen=True, slots=True)
class CollectedCapture:
    """The capture's tar.gz as the kit wrote it, its size and sha256 checked against the frame's BEGIN line."""

    data: bytes
    sha256: str


def collect_capture(lines: Iterable[str], source: str) -> CollectedCapture:
    """The one capture framed in `lines` (a log, read as text); DamagedLog when there is none, more than one,
    or one that is cut short or does not match its own size and sha256."""
    frames = list(_frames(lines, source))
    if not frames:
        raise DamagedLog(f"{source}: no envcheck capture in this log (the kit writes one with --out log:; "
                         "was the log cut at its start, or is it another container's?)")
    if len(frames) > 1:
        raise DamagedLog(f"{source}: {len(frames)} captures in one log; collect each pod's log on its own "
                         "(kubectl logs POD)")
    return frames[0]


def _frames(lines: Iterable[str], source: str):
    """Each complete frame in the log, checked; a frame that never ends is a truncated log."""
    begin: re.Match | None = None
    chunks: list[bytes] = []
    for number, line in enumerate(lines, start=1):
        if begin is None:
            begin = _BEGIN.search(line)
            chunks = []
        elif _END.search(line):
            yield _checked(begin, b"".join(chunks), source)
            begin = None
        else:
            chunks.append(_decoded(line, number, source))
    if begin is not None:
        raise DamagedLog(f"{source}: the capture is cut short (its END line is missing: was the log truncated "
                         "or rotated? kubelet keeps 10 MiB of a container's log by default)")


def _decoded(line: str, number: int, source: str) -> bytes:
    match = _BASE64_LINE.search(line)
    try:
        if match is None:
            raise binascii.Error("not base64")
        return base64.b64decode(match["data"], validate=True)
    except binascii.Error:
        raise DamagedLog(f"{source}: line {number} inside the capture is not base64: the log was altered or "
                         "another writer's lines fell inside the capture") from None


def _checked(begin: re.Match, data: bytes, source: str) -> CollectedCapture:
    if begin["version"] != LOG_FRAME_VERSION:
        raise DamagedLog(f"{source}: a capture framed as {begin['version']!r}, which this envcheck cannot read "
                         f"(it reads {LOG_FRAME_VERSION}); use the envcheck that built the kit")
    expected_size, expected_sha256 = int(begin["size"]), begin["sha256"]
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != expected_size or digest != expected_sha256:
        raise DamagedLog(f"{source}: the capture is damaged ({len(data)} bytes, sha256 {digest[:12]}…; its kit "
                         f"wrote {expected_size} bytes, sha256 {expected_sha256[:12]}…)")
    return CollectedCapture(data=data, sha256=digest)
