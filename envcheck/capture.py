"""Read what the probe wrote (capture.json + outputs.npz) into a Capture or a TargetFailure, and save
it as a capture directory that reads back to the very same outcome.

Shared by every target kind and by `envcheck compare`, so a failed capture brought back from a site
says in `compare` what `check` would have said there; `compare` reads a capture folder or the tar.gz the
on-site kit writes (unpacked with every member checked, never extracted blindly). How the probe's process died is the targets' to
name (targets/exits.py); reading only asks whether it died abnormally, and that answer comes first.
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import shutil
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envcheck import schemas
from envcheck.errors import CaptureError
from envcheck.fields import current_fingerprint
from envcheck.files import (
    MAX_DOCUMENT_BYTES,
    atomic_write_bytes,
    atomic_write_text,
    open_regular_file,
    read_regular_file,
)
from envcheck.model import Capture, TargetFailure

# NOTE: these mirror the constants in probe/envcheck_probe/capture.py, which the host tool must not import;
# tests/test_layering.py checks that they agree.
CAPTURE_SCHEMA = "envcheck.capture/1"
CAPTURE_FILE = "capture.json"
OUTPUTS_FILE = "outputs.npz"
TFLITE_OUTPUTS_FILE = "tflite-outputs.npz"
ARCHIVE_MEMBERS = (CAPTURE_FILE, OUTPUTS_FILE, TFLITE_OUTPUTS_FILE)
"""What the on-site kit's tar.gz holds (probe/envcheck_probe/kit_capture.py's ARCHIVED; a test holds them equal)."""
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
STDERR_TAIL_CHARS = 4000
CALIBRATION_FILE = re.compile(r"calibration-[a-z0-9-]+\.npz")
"""What the probe names a calibration perturbation's outputs (beside outputs.npz; never a path)."""

# What np.load and zipfile raise for a truncated, empty, foreign or bit-flipped archive.
NPZ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, AttributeError, TypeError, NotImplementedError,
              MemoryError, zipfile.BadZipFile, zlib.error, struct.error)
# Zip-bomb guard, checked on the archive's own directory before anything is decompressed: the members'
# declared sizes may add up to at most MAX_NPZ_BYTES (ENVCHECK_MAX_NPZ_BYTES overrides it, in bytes), and
# a member that inflates past NPZ_RATIO_FLOOR must not do so more than MAX_NPZ_RATIO-fold (np.savez stores
# 1:1; real data deflates well under 200:1, zeros about 1000:1). zipfile never inflates a member past its
# declared size, so these bounds hold whatever the compressed stream says.
MAX_NPZ_BYTES = 4 << 30
MAX_NPZ_BYTES_ENV = "ENVCHECK_MAX_NPZ_BYTES"
MAX_NPZ_RATIO = 200
NPZ_RATIO_FLOOR = 64 << 20
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what np.load takes for an archive (the second: empty)
# Keys of capture.json that save_capture_dir writes from the outcome; every other key the probe
# wrote (probe_version, started, fields of later versions) is kept as it was.
_OWNED_KEYS = ("schema", "status", "stage", "fingerprint", "error", "target", "golden_sha256")


class NpzError(ValueError):
    """An .npz file that cannot be read as plain arrays; the message says why, the caller names the file."""


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, never unpickling and never inflating a zip bomb (see MAX_NPZ_BYTES);
    NpzError for anything else, whatever numpy raised."""
    try:
        # One open file for the guard and np.load, so the archive checked is the archive read (never a FIFO).
        with open_regular_file(path) as handle:
            if handle.read(4) in _ZIP_MAGIC:
                handle.seek(0)
                with zipfile.ZipFile(handle) as archive:
                    _refuse_zip_bomb(archive.infolist())
            handle.seek(0)
            data = np.load(handle, allow_pickle=False)
            if not hasattr(data, "files"):  # a bare .npy array loads as an ndarray, not an archive
                raise NpzError("a single .npy array, not an .npz archive")
            with data:
                arrays = {name: data[name] for name in data.files}
    except NpzError:
        raise
    except FileNotFoundError:
        raise NpzError("no such file") from None
    except NPZ_ERRORS as error:
        raise NpzError(_npz_problem(error)) from None
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):  # NpzFile hands back a non-.npy member as raw bytes
            raise NpzError(f"member {name!r} is not a NumPy array")
    return arrays


def max_npz_bytes() -> int:
    """The limit on an archive's inflated size: ENVCHECK_MAX_NPZ_BYTES (bytes) when set, else MAX_NPZ_BYTES."""
    value = os.environ.get(MAX_NPZ_BYTES_ENV, "").strip()
    if not value:
        return MAX_NPZ_BYTES
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise NpzError(f"{MAX_NPZ_BYTES_ENV}={value!r} is not a byte count, so no archive can be checked against it")
    return limit


def _refuse_zip_bomb(members: list[zipfile.ZipInfo]) -> None:
    """NpzError when the archive's directory declares more than it is sane to inflate."""
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > NPZ_RATIO_FLOOR and ratio > MAX_NPZ_RATIO:
            raise NpzError(f"member {member.filename!r} inflates to {_size(member.file_size)} "
                           f"(ratio {ratio:.0f}:1): refused as a zip bomb")
    total, limit = sum(member.file_size for member in members), max_npz_bytes()
    if total > limit:
        raise NpzError(f"it inflates to {_size(total)}, more than the {_size(limit)} allowed "
                       f"({MAX_NPZ_BYTES_ENV} raises the limit): refused")


def _size(count: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _npz_problem(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "Object arrays" in text:
        return "it holds an object array, which would need unpickling (refused)"
    if "pickle" in text:  # numpy's guess for any file that is neither .npy nor zip
        return "not an .npz archive (numpy would have to unpickle it, which envcheck refuses)"
    if isinstance(error, EOFError):
        return "empty or truncated"
    return f"not a readable .npz archive ({type(error).__name__}: {text})"


DeathReader = Callable[[str | None, dict[str, Any]], tuple[str, str] | None]
"""Given the stage the probe reached and its fingerprint: (kind, message) when its process died abnormally."""


@dataclass(frozen=True, slots=True)
class ChildEnd:
    """How the process that ran the probe ended, as far as reading its capture needs to know."""

    exit_code: int | None
    stderr_tail: str = ""
    death: DeathReader | None = None
    """How the target names an abnormal death (targets/exits.py); None: the child exited by itself."""


def read_capture(capture_dir: Path, spec: str, child: ChildEnd | None = None,
                 target_info: dict[str, Any] | None = None, site: str | None = None) -> Capture | TargetFailure:
    """Turn a capture directory (and how its child ended) into a Capture or a TargetFailure."""
    capture_dir = Path(capture_dir)
    document, problem = _read_document(capture_dir / CAPTURE_FILE, CAPTURE_FILE)
    return _outcome(capture_dir, document, problem, spec, child, dict(target_info or {}), site, OUTPUTS_FILE)


ExitNamer = Callable[[int | None, bool, float | None], DeathReader]
"""Given a child's exit status, whether it timed out and its timeout: how the targets name its death
(targets/exits.py; the check service passes it, since reading captures must not import the targets)."""


def load_capture_dir(capture_dir: Path, name_exit: ExitNamer | None = None) -> tuple[Capture | TargetFailure, str | None]:
    """A capture made elsewhere, for `envcheck compare`, with the sha256 of the golden it ran: a folder
    (`envcheck probe --out`) or the tar.gz the on-site kit writes (read safely: see unpack_capture_archive).
    A damaged or newer capture is a failed target naming the problem. A kit's capture records how its probe's
    process ended (`kit.child`); `name_exit` names an abnormal end as a host probe's would be named."""
    capture_dir = Path(capture_dir)
    if capture_dir.is_file():
        with tempfile.TemporaryDirectory(prefix="envcheck-capture-") as unpacked:
            unpack_capture_archive(capture_dir, Path(unpacked))
            return _load_capture(Path(unpacked), f"{capture_dir}:", archive_name(capture_dir), name_exit)
    if not capture_dir.is_dir() and os.path.lexists(capture_dir):
        raise CaptureError(f"{capture_dir}: not a capture directory or a kit's tar.gz (not a regular file)")
    return _load_capture(capture_dir, f"{capture_dir}/", capture_dir.name, name_exit)


def _load_capture(folder: Path, shown: str, name: str,
                  name_exit: ExitNamer | None) -> tuple[Capture | TargetFailure, str | None]:
    """The capture in `folder`; `shown` prefixes its files' names in messages, `name` is its own name."""
    path = folder / CAPTURE_FILE
    if not path.is_file():
        raise CaptureError(f"{shown.rstrip(':/')}: not a capture directory (no {CAPTURE_FILE})")
    document, problem = _read_document(path, shown + CAPTURE_FILE)
    if document is None and problem is None:  # it vanished between the two looks
        raise CaptureError(f"{shown}{CAPTURE_FILE}: unreadable")
    recorded = (document or {}).get("target") or {}
    spec = recorded.get("spec") or f"capture:{name}"
    outcome = _outcome(folder, document, problem, spec, _kit_child(document, name_exit), {}, None,
                       shown + OUTPUTS_FILE)
    return outcome, (document or {}).get("golden_sha256")


def archive_name(archive: Path) -> str:
    """What a capture's tar.gz is called without its suffix (`capture-shenzhen.tar.gz` -> capture-shenzhen)."""
    for suffix in ARCHIVE_SUFFIXES:
        if archive.name.endswith(suffix) and archive.name != suffix:
            return archive.name[:-len(suffix)]
    return archive.name


def _kit_child(document: dict[str, Any] | None, name_exit: ExitNamer | None) -> ChildEnd | None:
    """How the on-site kit's probe process ended (its `kit.child` record), or None for any other capture. A
    record of the wrong shape is read as no record: the capture then speaks for itself."""
    child = ((document or {}).get("kit") or {}).get("child") if isinstance((document or {}).get("kit"), dict) else None
    if not isinstance(child, dict):
        return None
    code, timed_out, timeout = child.get("exit_code"), child.get("timed_out"), child.get("timeout_s")
    tail = child.get("stderr_tail")
    if (not (code is None or (isinstance(code, int) and not isinstance(code, bool))) or not isinstance(timed_out, bool)
            or not (timeout is None or isinstance(timeout, (int, float))) or not isinstance(tail, str)):
        return None
    return ChildEnd(exit_code=code, stderr_tail=tail[-STDERR_TAIL_CHARS:],
                    death=name_exit(code, timed_out, timeout) if name_exit else None)


def unpack_capture_archive(archive: Path, into: Path) -> None:
    """Unpack a kit's tar.gz into the empty folder `into`, refusing anything a capture does not hold: only
    plain files named as the kit names them (ARCHIVE_MEMBERS), each once, none a link, device or path; sizes
    bounded as capture.json and .npz files are bounded when read from a folder. CaptureError, one line."""
    budget = MAX_DOCUMENT_BYTES + max_npz_bytes() + TAR_OVERHEAD_BYTES
    try:
        # The inflated stream is bounded as a whole, and extension headers are refused unread (_PlainTarInfo).
        with gzip.open(archive, "rb") as inflated, tarfile.open(fileobj=_Bounded(inflated, budget), mode="r|",
                                                                 tarinfo=_PlainTarInfo) as tar:
            npz_bytes = 0
            for member in tar:
                _check_member(archive, member, into)
                if member.name == CAPTURE_FILE and member.size > MAX_DOCUMENT_BYTES:
                    raise CaptureError(f"{archive}: {CAPTURE_FILE} declares {_size(member.size)}, more than the "
                                       f"{_size(MAX_DOCUMENT_BYTES)} a capture document may be; refused")
                npz_bytes += member.size if member.name != CAPTURE_FILE else 0
                if npz_bytes > max_npz_bytes():
                    raise CaptureError(f"{archive}: its .npz files declare more than the {_size(max_npz_bytes())} "
                                       f"allowed ({MAX_NPZ_BYTES_ENV} raises the limit); refused")
                source = tar.extractfile(member)
                assert source is not None  # a regular file (checked) always has a stream
                with source, open(into / member.name, "xb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
    except NpzError as error:  # an unreadable ENVCHECK_MAX_NPZ_BYTES
        raise CaptureError(f"{archive}: {error}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise CaptureError(f"{archive}: not a capture directory or a readable tar.gz from the kit ({why})") from None


TAR_OVERHEAD_BYTES = 1 << 20
"""What tar headers may add to the members' own bytes in a capture's archive (a kit writes three files)."""


MAX_EXTENSION_HEADER_BYTES = 64 << 10
"""The largest PAX or GNU long-name header read (Python's tarfile writes small PAX headers by default)."""


class _PlainTarInfo(tarfile.TarInfo):
    """tarfile reads a PAX or GNU long-name header whole, at the size it declares, before any member can be
    checked: one declaring more than a capture's few short names need is refused unread, and so is a sparse
    member (a capture's files are plain)."""

    def _proc_pax(self, tarfile):  # (tarfile's own hook names and signature)
        _refuse_large(self, "an extended (PAX) header")
        return super()._proc_pax(tarfile)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile):
        _refuse_large(self, "a GNU long-name header")
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]

    def _proc_sparse(self, tarfile):
        raise _ExtensionHeader("a sparse-file header")


def _refuse_large(header: tarfile.TarInfo, what: str) -> None:
    if header.size > MAX_EXTENSION_HEADER_BYTES:
        raise _ExtensionHeader(f"{what} of {_size(header.size)}, more than a capture's names need")


class _ExtensionHeader(tarfile.TarError):
    """A tar header a capture never holds; its words say which."""


class _Bounded(io.RawIOBase):
    """A read-only stream that raises OSError once more than `budget` bytes were read from `wrapped`."""

    def __init__(self, wrapped: Any, budget: int):
        super().__init__()
        self.wrapped, self.left = wrapped, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.wrapped.read(min(len(buffer), self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise OSError(errno.EFBIG, "it inflates past what a capture can hold")
        buffer[:len(data)] = data
        return len(data)


def _check_member(archive: Path, member: tarfile.TarInfo, into: Path) -> None:
    """CaptureError unless `member` is a plain file a capture holds, seen for the first time."""
    if member.name not in ARCHIVE_MEMBERS:
        raise CaptureError(f"{archive}: holds {member.name!r}, which no capture has (a kit's capture holds only "
                           f"{', '.join(ARCHIVE_MEMBERS)}); refused")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.issparse():
        raise CaptureError(f"{archive}: {member.name} is a link or a special file, not a plain file; refused")
    if (into / member.name).exists():
        raise CaptureError(f"{archive}: holds {member.name} twice; refused")


def _read_document(path: Path, shown: str) -> tuple[dict[str, Any] | None, str | None]:
    """(valid capture document, None), (None, None) when there is no file, or (None, why it is unusable)."""
    try:
        text = read_regular_file(path)  # bounded, and never a FIFO or a device
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"{shown} is unreadable: {error.strerror}"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError is a ValueError)
        return None, f"{shown} is not valid JSON (torn or not a capture): {str(error)[:200]}"
    problem = schemas.check(document, CAPTURE_SCHEMA, shown)
    return (None, problem) if problem else (document, None)


def _outcome(capture_dir: Path, document: dict[str, Any] | None, problem: str | None, spec: str,
             child: ChildEnd | None, target_info: dict[str, Any], site: str | None,
             outputs_shown: str) -> Capture | TargetFailure:
    """The decision, in order: the child's death, no or a broken capture, the probe's own error,
    an unfinished probe, unreadable outputs; else a Capture. Saved fields are restored exactly."""
    document = document or {}
    recorded = document.get("target") or {}
    info = {**recorded.get("info", {}), **target_info}
    site = site if site is not None else recorded.get("site")
    error = document.get("error") or {}
    stage = error["stage"] if "stage" in error else document.get("stage")
    fingerprint = current_fingerprint(document.get("fingerprint", {}))
    code = child.exit_code if child else None
    tail = child.stderr_tail if child else ""

    def failure(kind: str, message: str, **saved: Any) -> TargetFailure:
        fields = {"exit_code": code, "stderr_tail": tail, "stage": stage, "fingerprint": fingerprint,
                  "timings": document.get("timings", {}), **saved}
        return TargetFailure(spec=spec, kind=kind, message=message, target_info=info, site=site, **fields)

    if child is not None and child.death is not None:
        abnormal = child.death(stage, fingerprint)
        if abnormal:
            return failure(*abnormal)
    if problem:
        return failure("capture-schema", problem)
    if not document:
        return failure("no-capture", "the probe exited without writing a capture"
                       + (f" (exit status {code})" if code is not None else ""))
    if error:
        # A capture saved by envcheck carries exit_code and stderr_tail; the probe's own carries
        # only its traceback, which beats an empty stderr.
        return failure(error["kind"], error["message"], exit_code=error.get("exit_code", code),
                       stderr_tail=error.get("stderr_tail", tail or error.get("traceback", "")))
    if document.get("status") != "ok":
        return failure("incomplete-capture", f"the probe stopped during {stage} without saying why")
    try:
        outputs = read_npz(capture_dir / OUTPUTS_FILE)
    except NpzError as unreadable:
        return failure("no-outputs", f"{outputs_shown} is missing or unreadable: {unreadable}")
    tflite, tflite_outputs = _tflite(capture_dir, document.get("tflite"))
    if document.get("edge") and tflite_outputs is None:
        why = ((tflite or {}).get("error") or {}).get("message", "no record of the run")
        return failure("tflite-run", f"the TFLite outputs are missing or unreadable: {why}")
    return Capture(spec=spec, fingerprint=fingerprint, outputs=outputs, timings=document.get("timings", {}),
                   tflite=tflite, tflite_outputs=tflite_outputs, edge=bool(document.get("edge")),
                   target_info=info, site=site, latency=document.get("latency"),
                   determinism=document.get("determinism"), layers=_layers(document.get("layers")),
                   calibration=_calibration(capture_dir, document.get("calibration")))


def _tflite(capture_dir: Path, record: Any) -> tuple[dict[str, Any] | None, dict[str, np.ndarray] | None]:
    """The probe's TFLite record and, when model.tflite ran, its outputs (an unreadable file is an error in the
    record, never a failed capture: the SavedModel's outputs stand on their own)."""
    if not isinstance(record, dict):
        return None, None
    if "outputs" not in record or record.get("error"):
        return record, None
    try:
        return record, read_npz(capture_dir / TFLITE_OUTPUTS_FILE)
    except NpzError as unreadable:
        return {**record, "error": {"kind": "tflite-run", "message": f"{TFLITE_OUTPUTS_FILE}: {unreadable}"}}, None


def _layers(record: Any) -> dict[str, Any] | None:
    """The probe's layer record, or None when it recorded none (its content is checked where it is compared)."""
    return record if isinstance(record, dict) else None


def _calibration(capture_dir: Path, record: Any) -> dict[str, Any] | None:
    """The probe's calibration record with each perturbation's outputs read from its file (under `outputs`);
    a file that is missing, unreadable or not named as the probe names them makes that perturbation skipped."""
    if not isinstance(record, dict):
        return None
    perturbations = {}
    for name, recorded in (record.get("perturbations") or {}).items():
        entry = {key: value for key, value in recorded.items() if key != "outputs"}  # arrays come from files only
        file_name = entry.pop("file", None)
        if file_name is not None:
            try:
                if not CALIBRATION_FILE.fullmatch(str(file_name)):
                    raise NpzError(f"not a calibration file name: {file_name!r}")
                entry["outputs"] = read_npz(capture_dir / file_name)
            except NpzError as unreadable:
                entry["skipped"] = f"its outputs are unreadable: {unreadable}"
        perturbations[name] = entry
    return {"perturbations": perturbations}


def save_capture_dir(outcome: Capture | TargetFailure, source_dir: Path, out_dir: Path,
                     golden_sha256: str) -> None:
    """Write `outcome` as a capture directory that load_capture_dir reads back to an equal outcome
    (and that saves again to the same bytes), keeping what the probe wrote in `source_dir`."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    source, _ = _read_document(source_dir / CAPTURE_FILE, CAPTURE_FILE)
    source = source or {}  # a broken source capture is replaced, not copied (its problem is in the outcome)
    document = {key: value for key, value in source.items() if key not in _OWNED_KEYS}
    document.update(schema=CAPTURE_SCHEMA, fingerprint=outcome.fingerprint, golden_sha256=golden_sha256,
                    target={"spec": outcome.spec, "site": outcome.site, "info": outcome.target_info})
    if isinstance(outcome, Capture):
        document.update(status="ok", stage=source.get("stage"), error=None, timings=outcome.timings,
                        outputs={name: {"shape": list(array.shape), "dtype": str(array.dtype)}
                                 for name, array in outcome.outputs.items()})
        document.pop("latency", None)
        if outcome.latency is not None:
            document["latency"] = outcome.latency
    else:
        previous = source.get("error") or {}
        document.update(status="error", stage=outcome.stage, timings=outcome.timings, error={
            "kind": outcome.kind, "message": outcome.message, "exit_code": outcome.exit_code,
            "stage": outcome.stage, "stderr_tail": outcome.stderr_tail, "traceback": previous.get("traceback", "")})
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = source_dir / OUTPUTS_FILE
    if outputs.is_file():  # the probe's own bytes (np.savez would stamp a new time in the zip)
        atomic_write_bytes(out_dir / OUTPUTS_FILE, outputs.read_bytes())
    elif isinstance(outcome, Capture):
        atomic_write_bytes(out_dir / OUTPUTS_FILE, _npz_bytes(outcome.outputs))
    else:  # never leave an earlier probe's outputs beside this failed capture
        (out_dir / OUTPUTS_FILE).unlink(missing_ok=True)
    tflite_outputs = source_dir / TFLITE_OUTPUTS_FILE
    if isinstance(outcome, Capture) and tflite_outputs.is_file():
        atomic_write_bytes(out_dir / TFLITE_OUTPUTS_FILE, tflite_outputs.read_bytes())
    else:
        (out_dir / TFLITE_OUTPUTS_FILE).unlink(missing_ok=True)
    atomic_write_text(out_dir / CAPTURE_FILE, json.dumps(document, indent=1, sort_keys=True, default=str))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy's stub: a key could be allow_pickle)
    return buffer.getvalue()
