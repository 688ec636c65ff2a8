"""The on-site kit's capture: what the probe left, stamped with the kit's run and redacted, as one tar.gz.

The probe's child writes capture.json and outputs.npz [+ tflite-outputs.npz] into the kit's temporary
directory. The kit then adds what `envcheck probe` adds on the host (the target, the site, the golden's
sha256), how the child ended (`kit.child`: headquarters names a signal or a timeout the way it names a
host probe's, envcheck/targets/exits.py), and, unless --raw, hashes or drops the identifying values
before anything leaves the box. The rules come from the host's field registry through kit.json
(`redaction`), so the kit and `envcheck probe` redact the same paths the same way
(tests/kit/test_redaction.py holds them equal).

With `--out log:` the tar.gz travels as text in the kit's stdout (a pod's log, `podman logs`): base64 lines
between a BEGIN line that says its size and sha256 and an END line (write_log_frame); `envcheck kit collect`
(envcheck/kit_collect.py, which mirrors the markers) finds, checks and unpacks it at headquarters.
"""
import base64
import copy
import fnmatch
import hashlib
import io
import json
import os
import re
import tarfile

from .capture import CAPTURE_FILE, CAPTURE_SCHEMA, OUTPUTS_FILE, PROBE_VERSION

TFLITE_OUTPUTS_FILE = "tflite-outputs.npz"
ARCHIVED = (CAPTURE_FILE, OUTPUTS_FILE, TFLITE_OUTPUTS_FILE)
"""The files a kit's tar.gz may hold, in this order (what `envcheck compare` accepts in one)."""
KIT_SPEC = "kit"
ANY_INDEX = "[*]"
FILE_MODE = 0o644
LOG_FRAME_VERSION = "v1"
LOG_BEGIN = "-----BEGIN ENVCHECK CAPTURE %s bytes=%d sha256=%s-----"
LOG_END = "-----END ENVCHECK CAPTURE-----"
LOG_LINE_BYTES = 57
"""Bytes per base64 line: 76 characters, far below any log driver's line limit (kubelet splits at 16 KiB)."""


def stamped_capture(capture_dir, record, site, child, python, kit_sha256, raw):
    """capture.json as it leaves the box: the probe's document (or one saying there is none), stamped."""
    document = _read_document(os.path.join(capture_dir, CAPTURE_FILE))
    if document is None:
        document = _no_capture(child)
    document["target"] = {"spec": KIT_SPEC, "site": site, "info": {"kind": "kit", "python": python}}
    document["golden_sha256"] = record["golden_sha256"]
    document["kit"] = {"envcheck_version": record.get("envcheck_version"), "sha256": kit_sha256, "child": child}
    if not raw:
        document = redacted(document, record["redaction"])
    return document


def _read_document(path):
    """The probe's capture document, or None when it wrote none (or not a JSON object)."""
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _no_capture(child):
    """What a child that died before writing anything leaves: an error capture that says so."""
    lines = (child.get("stderr_tail") or "").strip().splitlines()
    last = (": " + lines[-1][:300]) if lines else ""
    return {"schema": CAPTURE_SCHEMA, "probe_version": PROBE_VERSION, "status": "error", "stage": None,
            "fingerprint": {}, "timings": {}, "outputs": {},
            "error": {"kind": "no-capture", "message": "the probe exited without writing a capture (exit status %s)%s"
                      % (child.get("exit_code"), last), "traceback": ""}}


def redacted(document, rules):
    """A copy of the capture with the registry's identifying values hashed (salted like envcheck/redact.py:
    ENVCHECK_REDACTION_SALT or the default), in each value holding paths the folder that names a person
    (`/home/alice/…` -> `/home/sha256:…/…`), and the values that name a moment dropped; the interpreter's path
    in the target's info is hashed too."""
    shared = copy.deepcopy(document)
    salt = os.environ.get(rules["salt_variable"], rules["default_salt"])
    hashed, dropped = set(rules["hashed"]), set(rules["dropped"])
    # As envcheck/redact.py's any_of_globs and without_personal_folders build them, from the same data.
    holds_paths = re.compile("|".join(fnmatch.translate(pattern) for pattern in rules["paths"]["fields"]) or "(?!)")
    personal = re.compile(rules["paths"]["personal"])

    def hash_once(value):
        if value.startswith(rules["prefix"]):
            return value
        return rules["prefix"] + hashlib.sha256(("%s\0%s" % (salt, value)).encode("utf-8")).hexdigest()[:16]

    def walk(node, path):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) \
            if isinstance(node, list) else []
        for key, value in children:
            child = path + ANY_INDEX if isinstance(key, int) else (path + "." + key if path else str(key))
            if child in dropped and isinstance(node, dict):
                del node[key]
            elif isinstance(value, (dict, list)):
                walk(value, child)
            elif isinstance(value, str) and child in hashed:
                node[key] = hash_once(value)
            elif isinstance(value, str) and holds_paths.match(child):
                node[key] = personal.sub(lambda found: found.group(1) + hash_once(found.group(2)), value)

    walk(shared.get("fingerprint") or {}, "")
    info = shared["target"]["info"]
    if isinstance(info.get("python"), str):
        info["python"] = hash_once(info["python"])
    return shared


def write_archive(stream, capture_dir, document):
    """The capture as a tar.gz on `stream` (a file or stdout: written in tarfile's stream mode, no seeking):
    capture.json from `document`, then each outputs file the probe left."""
    data = json.dumps(document, indent=1, sort_keys=True, default=str).encode("utf-8")
    with tarfile.open(fileobj=stream, mode="w|gz", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(_member(CAPTURE_FILE, len(data)), io.BytesIO(data))
        for name in ARCHIVED[1:]:
            path = os.path.join(capture_dir, name)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    archive.addfile(_member(name, os.fstat(handle.fileno()).st_size), handle)


def _member(name, size):
    """A plain file's header: no owner, no time, no mode beyond rw-r--r-- (nothing that names the box)."""
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.mtime, member.type = size, FILE_MODE, 0, tarfile.REGTYPE
    return member


def write_log_frame(stream, data):
    """`data` (the capture's tar.gz) as text lines on `stream` (stdout, line-based like a pod's log): a BEGIN
    line with its size and sha256 (what `envcheck kit collect` checks, so a truncated or damaged log is found),
    base64 lines, an END line. Written at once and flushed: the kit says nothing else while it runs."""
    lines = [LOG_BEGIN % (LOG_FRAME_VERSION, len(data), hashlib.sha256(data).hexdigest())]
    lines.extend(base64.b64encode(data[start:start + LOG_LINE_BYTES]).decode("ascii")
                 for start in range(0, len(data), LOG_LINE_BYTES))
    lines.append(LOG_END)
    stream.write("\n".join(lines) + "\n")
    stream.flush()
