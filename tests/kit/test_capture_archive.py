"""`envcheck compare` of the kit's tar.gz: judged exactly as the same capture in a folder, and read safely: a
member that is not a capture's file, a path, a link, a device, a second copy or more bytes than a capture may
hold is refused in one line (exit 3), before anything lands outside a temporary folder."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hostile.cases import good_capture

from envcheck.capture import ARCHIVE_MEMBERS, CAPTURE_FILE, OUTPUTS_FILE
from envcheck.errors import ExitCode

from .test_build import _runtime_constant


def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _file(name: str, **attributes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for key, value in attributes.items():
        setattr(info, key, value)
    return info


def _packed(folder: Path, out: Path, extra: list[tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    members = [(_file(p.name), p.read_bytes()) for p in sorted(folder.iterdir())]
    return _tar_gz(out, [*members, *extra])


def test_a_tar_gz_is_judged_as_the_same_capture_in_a_folder(run_cli, tmp_path):
    folder = good_capture(tmp_path)
    archive = _packed(folder, tmp_path / "capture.tar.gz")
    code_folder, _, _, from_folder = run_cli("compare", str(folder))
    code_archive, _, _, from_archive = run_cli("compare", str(archive))
    assert code_folder == code_archive == ExitCode.OK
    assert from_archive["targets"] == from_folder["targets"]


def test_the_kit_writes_only_what_compare_reads():
    # kit_capture.py archives (CAPTURE_FILE, OUTPUTS_FILE, TFLITE_OUTPUTS_FILE); the first two are the probe's own.
    assert ARCHIVE_MEMBERS == (CAPTURE_FILE, OUTPUTS_FILE, _runtime_constant("kit_capture.py", "TFLITE_OUTPUTS_FILE"))


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _hostile(change):
    def make(root: Path) -> Path:
        return change(good_capture(root), root)
    return make


HOSTILE = [
    pytest.param(lambda f, r: _packed(f, r / "c.tar.gz", [(_file("../escape.npz"), b"x")]),
                 "holds '../escape.npz', which no capture has", id="traversal"),
    pytest.param(lambda f, r: _packed(f, r / "c.tar.gz", [(_file("/etc/cron.d/x"), b"x")]),
                 "holds '/etc/cron.d/x', which no capture has", id="absolute"),
    pytest.param(lambda f, r: _tar_gz(r / "c.tar.gz", [(_file("capture.json", type=tarfile.SYMTYPE,
                                                              linkname="/etc/passwd"), b"")]),
                 "capture.json is a link or a special file", id="symlink"),
    pytest.param(lambda f, r: _tar_gz(r / "c.tar.gz", [(_file("outputs.npz", type=tarfile.LNKTYPE,
                                                              linkname="capture.json"), b"")]),
                 "outputs.npz is a link or a special file", id="hardlink"),
    pytest.param(lambda f, r: _tar_gz(r / "c.tar.gz", [(_file("outputs.npz", type=tarfile.CHRTYPE,
                                                              devmajor=1, devminor=5), b"")]),
                 "outputs.npz is a link or a special file", id="device"),
    pytest.param(lambda f, r: _packed(f, r / "c.tar.gz", [(_file("capture.json"), b"{}")]),
                 "holds capture.json twice", id="duplicate"),
    pytest.param(lambda f, r: _packed(f, r / "c.tar.gz", [(_file("calibration-x.npz"), b"x")]),
                 "which no capture has", id="unknown-member"),
    pytest.param(lambda f, r: _written(r / "c.tar.gz", b"not gzip at all"),
                 "not a capture directory or a readable tar.gz", id="not-gzip"),
    pytest.param(lambda f, r: _written(r / "c.tar.gz", b""),
                 "not a capture directory or a readable tar.gz", id="empty"),
    pytest.param(lambda f, r: _tar_gz(r / "c.tar.gz", []), "not a capture directory (no capture.json)", id="no-capture"),
]


@pytest.mark.parametrize(("make", "says"), HOSTILE)
def test_a_hostile_tar_gz_is_refused_in_one_line(run_cli, tmp_path, make, says):
    root = tmp_path / "in"
    root.mkdir()
    archive = _hostile(make)(root)
    code, out, err, report = run_cli("compare", str(archive))
    assert code == ExitCode.UNDECIDED and report is None, (out, err)
    assert err.count("\n") == 1 and says in err and "Traceback" not in err, err
    assert not (tmp_path / "escape.npz").exists()


def test_an_archive_declaring_more_than_the_npz_limit_is_refused_before_inflating(run_cli, tmp_path, monkeypatch):
    folder = good_capture(tmp_path)
    with np.load(folder / "outputs.npz") as stored:
        outputs = {name: stored[name] for name in stored.files}
    np.savez(folder / "outputs.npz", **outputs, padding=np.zeros(1 << 17))  # 1 MiB that gzip makes nothing of
    archive = _packed(folder, tmp_path / "c.tar.gz")
    assert archive.stat().st_size < 100_000
    monkeypatch.setenv("ENVCHECK_MAX_NPZ_BYTES", "100000")  # the golden's own files stay under it
    code, _, err, _ = run_cli("compare", str(archive))
    assert code == ExitCode.UNDECIDED and "its .npz files declare more than" in err and err.count("\n") == 1, err


def test_a_kit_record_of_the_wrong_shape_is_no_record(run_cli, tmp_path):
    folder = good_capture(tmp_path)
    document = json.loads((folder / "capture.json").read_text())
    document["kit"] = {"child": {"exit_code": "-4", "timed_out": "yes", "stderr_tail": 7}}
    (folder / "capture.json").write_text(json.dumps(document))
    code, _, _, report = run_cli("compare", str(_packed(folder, tmp_path / "c.tar.gz")))
    assert code == ExitCode.OK and report["targets"][0]["verdict"] == "IDENTICAL"
