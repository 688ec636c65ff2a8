"""The probe as the one file that travels into targets: its modules packed into a zipapp.

The probe's source is a package of small modules (envcheck/probe/envcheck_probe/); targets get them
as one `probe.pyz` that any Python >= 3.9 runs (`python probe.pyz --bundle … --out …`). This module only
packs files: it never imports them (the host tool must not import the probe; tests/test_layering.py
checks that). The archive is the same bytes for the same sources (fixed timestamps and modes, entries
sorted, stored uncompressed so no zlib version can change it), built once per process. The on-site kit
(envcheck/kit.py: these modules and a golden bundle in one file) is packed by the same `pack_zipapp`.
"""
from __future__ import annotations

import atexit
import functools
import io
import shutil
import tempfile
import threading
import zipapp
import zipfile
from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parents[1] / "probe"
PROBE_PACKAGE = "envcheck_probe"
PROBE_SOURCE = PROBE_DIR / PROBE_PACKAGE
PROBE_ENTRY_POINT = f"{PROBE_PACKAGE}.cli:run"
PROBE_APP_NAME = "probe.pyz"
# The probe's own default (envcheck_probe/latency.py); tests/probe/test_latency.py checks that they agree.
DEFAULT_LATENCY_BUDGET_S = 2.0
# Samples per call of the model that `golden create` writes into a new golden's manifest (`batch_size`) unless
# --batch-size says otherwise. The probe has no default of its own: a golden without one runs in one call.
DEFAULT_BATCH_SIZE = 256
INTERPRETER = "/usr/bin/env python3"
# Zip's epoch: no file time enters the archive.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644

_path_lock = threading.Lock()
_written: dict[str, Path] = {}  # PROBE_APP_NAME -> the file this process wrote


def probe_sources() -> list[Path]:
    """The probe's modules, sorted: every .py file of the package (caches and stray files excluded)."""
    return sorted(PROBE_SOURCE.glob("*.py"))


def probe_entries() -> dict[str, bytes]:
    """The probe package's members of a zipapp: `envcheck_probe/NAME.py` -> the module's bytes."""
    return {f"{PROBE_PACKAGE}/{path.name}": path.read_bytes() for path in probe_sources()}


@functools.cache
def probe_app_bytes() -> bytes:
    """The zipapp: `__main__.py` (zipapp's launcher calling envcheck_probe.cli:run) and the package."""
    return pack_zipapp(probe_entries(), PROBE_ENTRY_POINT)


def pack_zipapp(entries: dict[str, bytes], entry_point: str) -> bytes:
    """A zipapp of `entries` (member name -> bytes) and a `__main__.py` calling `entry_point` ("module:function"),
    the same bytes for the same entries: sorted, fixed times and modes, stored. The probe's zipapp and the
    on-site kit (envcheck/kit.py) are both packed here."""
    entries = {**entries, "__main__.py": _launcher(entry_point)}
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.external_attr = (0o100000 | FILE_MODE) << 16  # a regular file, rw-r--r--
            info.create_system = 3  # Unix, whichever system builds it
            archive.writestr(info, entries[name])
    packed.seek(0)
    app = io.BytesIO()
    zipapp.create_archive(packed, app, interpreter=INTERPRETER)
    return app.getvalue()


def probe_app_path() -> Path:
    """The zipapp as a file (for interpreters on this machine), written once per process, removed at exit."""
    with _path_lock:
        if PROBE_APP_NAME not in _written:
            directory = Path(tempfile.mkdtemp(prefix="envcheck-probe-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            path = directory / PROBE_APP_NAME
            path.write_bytes(probe_app_bytes())
            path.chmod(FILE_MODE)
            _written[PROBE_APP_NAME] = path
        return _written[PROBE_APP_NAME]


def probe_arguments(latency_budget_s: float, calibrate: bool = False, layers: bool | None = None,
                    tflite: bool = False) -> list[str]:
    """The probe's arguments after --bundle and --out: the latency budget (repr keeps every digit of the
    float), for a golden's reference target --calibrate and --tflite (convert the model), and `--layers always`
    (True) or `never` (False); None leaves the probe's own `auto`: it records layers when the golden has a layer
    record and an output is not bitwise the golden's."""
    layer_flag = [] if layers is None else ["--layers", "always" if layers else "never"]
    return ["--latency-budget", repr(float(latency_budget_s)), *(["--calibrate"] if calibrate else []), *layer_flag,
            *(["--tflite"] if tflite else [])]


def _launcher(entry_point: str) -> bytes:
    """The `__main__.py` zipapp writes for `main="module:function"`: import the module, call the function."""
    module, _, function = entry_point.partition(":")
    return f"# -*- coding: utf-8 -*-\nimport {module}\n{module}.{function}()\n".encode()
