"""Read what the probe wrote (capture.json + outputs.npz) into a Capture or a TargetFailure.

Shared by every target kind and by `envcheck compare`, so a crash is classified the same way
whether the probe ran on the host, in another interpreter or in a container.
"""
from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envcheck.errors import CaptureError
from envcheck.files import atomic_write_bytes, atomic_write_text
from envcheck.model import Capture, TargetFailure

# NOTE: these mirror the constants in probe/probe.py, which the host tool must not import;
# tests/test_layering.py checks that they agree.
CAPTURE_SCHEMA = "envcheck.capture/1"
CAPTURE_FILE = "capture.json"
OUTPUTS_FILE = "outputs.npz"


@dataclass(frozen=True, slots=True)
class ChildExit:
    """How the process (or container) that ran the probe ended."""

    returncode: int | None
    """Negative: killed by that signal (subprocess); 128+N: the same seen through a shell or Docker."""
    timed_out: bool = False
    timeout_s: float | None = None
    stderr_tail: str = ""


def _signal_number(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if returncode > 128:
        return returncode - 128
    return None


def classify_exit(child: ChildExit, stage: str | None, fingerprint: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, plain message) for a child that died abnormally, or None for a normal exit."""
    where = f" while {stage.replace('-', ' ')}" if stage else ""
    if child.timed_out:
        return "timeout", f"the probe did not finish within {child.timeout_s:g} s{where}; it was killed"
    signum = _signal_number(child.returncode)
    if signum == signal.SIGILL:
        missing = fingerprint.get("cpu", {}).get("missing_required_flags") or []
        lacking = f" (this CPU lacks {', '.join(missing)})" if missing else ""
        return "sigill", ("illegal instruction (SIGILL) — this CPU lacks instructions the TensorFlow build "
                          f"needs{lacking}{where}")
    if signum == signal.SIGABRT:
        return "sigabrt", (f"TensorFlow aborted (SIGABRT){where} — often its CPU-feature guard or a "
                           "library version mismatch; see stderr")
    if signum == signal.SIGKILL:
        return "killed", f"the probe was killed (SIGKILL){where} — most likely out of memory"
    if signum == signal.SIGSEGV:
        return "sigsegv", f"the probe crashed with a segmentation fault (SIGSEGV){where}"
    if signum is not None:
        return "signal", f"the probe died from signal {signal.Signals(signum).name}{where}"
    return None


def read_capture(capture_dir: Path, spec: str, child: ChildExit | None = None,
                 target_info: dict[str, Any] | None = None, site: str | None = None) -> Capture | TargetFailure:
    """Turn a capture directory (and how its child ended) into a Capture or a TargetFailure."""
    target_info = dict(target_info or {})
    tail = child.stderr_tail if child else ""
    code = child.returncode if child else None

    def failure(kind: str, message: str, stage: str | None = None, fingerprint: dict | None = None) -> TargetFailure:
        return TargetFailure(spec=spec, kind=kind, message=message, exit_code=code, stderr_tail=tail,
                             stage=stage, fingerprint=fingerprint or {}, target_info=target_info, site=site)

    document = _load_capture_json(Path(capture_dir))
    stage = document.get("stage") if document else None
    fingerprint = document.get("fingerprint", {}) if document else {}
    if child is not None:
        abnormal = classify_exit(child, stage, fingerprint)
        if abnormal:
            return failure(*abnormal, stage=stage, fingerprint=fingerprint)
    if document is None:
        return failure("no-capture", "the probe exited without writing a capture"
                       + (f" (exit status {code})" if code is not None else ""))
    if document.get("schema") != CAPTURE_SCHEMA:
        return failure("capture-schema", f"capture.json has schema {document.get('schema')!r}, "
                       f"expected {CAPTURE_SCHEMA}")
    if document.get("error"):
        error = document["error"]
        return failure(error.get("kind", "probe-error"), error.get("message", "the probe failed"),
                       stage=stage, fingerprint=fingerprint)
    if document.get("status") != "ok":
        return failure("incomplete-capture", f"the probe stopped during {stage} without saying why",
                       stage=stage, fingerprint=fingerprint)
    try:
        with np.load(Path(capture_dir) / OUTPUTS_FILE, allow_pickle=False) as data:
            outputs = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        return failure("no-outputs", f"outputs.npz is missing or unreadable: {error}",
                       stage=stage, fingerprint=fingerprint)
    recorded = document.get("target", {})
    return Capture(spec=spec, fingerprint=fingerprint, outputs=outputs, timings=document.get("timings", {}),
                   target_info={**recorded.get("info", {}), **target_info},
                   site=site if site is not None else recorded.get("site"))


def _load_capture_json(capture_dir: Path) -> dict[str, Any] | None:
    try:
        document = json.loads((capture_dir / CAPTURE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or torn: no usable capture
        return None
    return document if isinstance(document, dict) else None


def load_capture_dir(capture_dir: Path) -> tuple[Capture | TargetFailure, str | None]:
    """A capture made elsewhere (`envcheck probe --out`), for `envcheck compare`, with the sha256
    of the golden it ran."""
    capture_dir = Path(capture_dir)
    if not (capture_dir / CAPTURE_FILE).is_file():
        raise CaptureError(f"{capture_dir}: not a capture directory (no {CAPTURE_FILE})")
    document = _load_capture_json(capture_dir)
    if document is None:
        raise CaptureError(f"{capture_dir / CAPTURE_FILE}: not valid JSON")
    spec = document.get("target", {}).get("spec") or f"capture:{capture_dir.name}"
    return read_capture(capture_dir, spec), document.get("golden_sha256")


def save_capture_dir(outcome: Capture | TargetFailure, source_dir: Path, out_dir: Path,
                     golden_sha256: str) -> None:
    """Copy a probe's capture to `out_dir`, stamped with the target, site and golden it belongs to."""
    document = _load_capture_json(Path(source_dir)) or {"schema": CAPTURE_SCHEMA, "fingerprint": {}}
    document["target"] = {"spec": outcome.spec, "site": outcome.site, "info": outcome.target_info}
    document["golden_sha256"] = golden_sha256
    if isinstance(outcome, TargetFailure):
        document["status"] = "error"
        document["error"] = {"kind": outcome.kind, "message": outcome.message,
                             "traceback": outcome.stderr_tail}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = Path(source_dir) / OUTPUTS_FILE
    if outputs.is_file():
        atomic_write_bytes(out_dir / OUTPUTS_FILE, outputs.read_bytes())
    atomic_write_text(out_dir / CAPTURE_FILE, json.dumps(document, indent=1, sort_keys=True, default=str))
