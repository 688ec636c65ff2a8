"""`envcheck kit build`: one file, the same bytes for the same golden and envcheck, the probe exactly as probe.pyz
holds it, the golden exactly as its bundle holds it; and a kit whose golden was touched refuses to run.

No TensorFlow and no Docker: the kit verifies its golden before it probes anything."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import re
import zipfile
from pathlib import Path

import pytest

from envcheck import __version__
from envcheck.errors import ExitCode
from envcheck.golden import builtin_golden_dir, load_golden
from envcheck.targets.probe_app import probe_entries

from .conftest import build_kit, run_kit

RUNTIME = Path(__file__).resolve().parents[2] / "envcheck" / "probe" / "envcheck_probe"


def test_the_kit_is_one_file_of_the_probe_and_the_golden_and_says_its_sha256(tmp_path, capsys):
    kit = build_kit(tmp_path / "kit.pyz")
    said = capsys.readouterr().out
    data = kit.read_bytes()
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in said and f"envcheck {__version__}" in said
    assert f"golden {load_golden().sha256}" in said
    golden = builtin_golden_dir()
    listed = json.loads((golden / "manifest.json").read_text())["files"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert set(names) == {"__main__.py", "kit.json", *probe_entries(), "golden/manifest.json",
                              *(f"golden/{name}" for name in listed)}
        for name, source in probe_entries().items():  # the probe exactly as probe.pyz carries it
            assert archive.read(name) == source, name
        for name in [*listed, "manifest.json"]:
            assert archive.read(f"golden/{name}") == (golden / name).read_bytes(), name
        record = json.loads(archive.read("kit.json"))
        assert archive.read("__main__.py").decode().splitlines()[1:] == ["import envcheck_probe.kit",
                                                                          "envcheck_probe.kit.run()"]
    assert record["schema"] == _runtime_constant("kit_golden.py", "KIT_SCHEMA")
    assert (record["envcheck_version"], record["golden_sha256"], record["golden"]) == (__version__,
                                                                                      load_golden().sha256, None)


def test_the_kit_is_the_same_bytes_built_twice(tmp_path):
    first = build_kit(tmp_path / "a" / "kit.pyz", "--golden", "builtin:edge").read_bytes()
    os.utime(builtin_golden_dir("edge") / "inputs.npz")  # a file's time never enters the kit
    second = build_kit(tmp_path / "b" / "kit.pyz", "--golden", "builtin:edge").read_bytes()
    assert first == second


def test_the_kit_pins_the_golden_it_is_given(run_cli, tmp_path):
    code, _, err, _ = run_cli("kit", "build", "--golden-sha256", "0" * 64, "--out", str(tmp_path / "kit.pyz"))
    assert code == ExitCode.UNDECIDED and "--golden-sha256 pins" in err and not (tmp_path / "kit.pyz").exists()


def test_a_golden_too_large_for_one_file_is_refused_before_writing(run_cli, tmp_path, monkeypatch):
    import envcheck.kit

    monkeypatch.setattr(envcheck.kit, "MAX_KIT_BYTES", 1000)
    code, _, err, _ = run_cli("kit", "build", "--out", str(tmp_path / "kit.pyz"))
    assert code == ExitCode.USAGE and not (tmp_path / "kit.pyz").exists()
    assert len(err.strip().splitlines()) == 1 and "zipimport reads no ZIP64" in err and "envcheck probe" in err


def _rewritten(kit: Path, out: Path, change, compressed: tuple[str, ...] = ()) -> Path:
    """A copy of the kit, its members passed through `change(members)` (a dict name -> bytes) and packed again,
    those named in `compressed` deflated (as no kit builder does)."""
    with zipfile.ZipFile(kit) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data, zipfile.ZIP_DEFLATED if name in compressed else zipfile.ZIP_STORED)
    out.write_bytes(b"#!/usr/bin/env python3\n" + buffer.getvalue())
    return out


def _flip_a_byte(kit: Path, out: Path) -> Path:
    """The kit with one byte of a golden member changed in place (the zip's CRC no longer matches)."""
    data = bytearray(kit.read_bytes())
    with zipfile.ZipFile(kit) as archive:  # (offsets from the zip's start, after the zipapp's shebang line)
        member = archive.getinfo("golden/model/saved_model.pb")
    start = data.index(b"PK\x03\x04") + member.header_offset
    data[data.index(b"serving_default", start) + 2] ^= 0x20
    out.write_bytes(bytes(data))
    return out


def _set(name: str, data: bytes):
    return lambda members: members.__setitem__(name, data)


TAMPERED = [
    pytest.param(lambda kit, out: _rewritten(kit, out, _set("golden/expected.npz", b"PK\x05\x06" + b"\0" * 18)),
                 "golden/expected.npz: its sha256 does not match the manifest", id="replaced-file"),
    pytest.param(_flip_a_byte, "golden/model/saved_model.pb: unreadable", id="flipped-byte"),
    pytest.param(lambda kit, out: _rewritten(kit, out, _set("golden/extra.py", b"print('hi')")),
                 "golden/extra.py: not listed in the manifest", id="added-file"),
    pytest.param(lambda kit, out: _rewritten(kit, out, lambda m: m.pop("golden/inputs.npz")),
                 "golden/inputs.npz: listed in the manifest but missing", id="removed-file"),
    pytest.param(lambda kit, out: _rewritten(kit, out, lambda m: m.__setitem__(
        "golden/manifest.json", m["golden/manifest.json"].replace(b'"description"', b'"Description"'))),
                 "golden/manifest.json: its sha256 is not the one this kit was built with", id="edited-manifest"),
    # 64 MiB of zeros deflate to 64 kB: refused by its size before a byte is written, not by its sha256 after.
    pytest.param(lambda kit, out: _rewritten(kit, out, _set("golden/inputs.npz", bytes(64 << 20)),
                                             compressed=("golden/inputs.npz",)),
                 "golden/inputs.npz: compressed, which no kit builder does (it would unpack to 67108864 bytes)",
                 id="zip-bomb"),
]


@pytest.mark.parametrize(("tamper", "says"), TAMPERED)
def test_a_kit_whose_golden_was_tampered_with_refuses_to_run(kit, tmp_path, tamper, says):
    tampered = tamper(kit, tmp_path / "tampered.pyz")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    ran = run_kit(tampered, "--out", "capture.tar.gz", cwd=work, env={**os.environ, "TMPDIR": str(temporary)})
    err = ran.stderr.decode()
    assert ran.returncode == ExitCode.UNDECIDED, err
    assert err.count("\n") == 1 and err.startswith("envcheck kit: error: the golden in this kit was modified"), err
    assert says in err and "get a new kit" in err and "Traceback" not in err
    assert list(work.iterdir()) == [] and list(temporary.iterdir()) == []  # nothing written, nothing left


def _resealed(change):
    """A kit whose golden manifest was changed by `change(manifest, members)` and sealed again (kit.json's
    golden_sha256 made to match): only the kit's own checks of the manifest's shape stand in the way."""
    def reseal(members: dict) -> None:
        manifest = json.loads(members["golden/manifest.json"])
        change(manifest, members)
        members["golden/manifest.json"] = json.dumps(manifest).encode()
        record = json.loads(members["kit.json"])
        record["golden_sha256"] = hashlib.sha256(members["golden/manifest.json"]).hexdigest()
        members["kit.json"] = json.dumps(record).encode()
    return lambda kit, out: _rewritten(kit, out, reseal)


def _file_and_folder(manifest: dict, members: dict) -> None:
    for name, data in (("a", b"x"), ("a/b", b"y")):
        members[f"golden/{name}"] = data
        manifest["files"][name] = hashlib.sha256(data).hexdigest()


def _without_the_golden_hash(kit: Path, out: Path) -> Path:
    def change(members: dict) -> None:
        record = json.loads(members["kit.json"])
        del record["golden_sha256"]
        members["kit.json"] = json.dumps(record).encode()
    return _rewritten(kit, out, change)


@pytest.mark.parametrize("malformed, args", [
    pytest.param(_resealed(lambda manifest, members: manifest.update(files=list(manifest["files"]))),
                 ("--out", "capture.tar.gz"), id="files-a-list"),
    pytest.param(_resealed(_file_and_folder), ("--out", "capture.tar.gz"), id="a-name-both-file-and-folder"),
    pytest.param(_without_the_golden_hash, ("--version",), id="kit-record-without-the-golden-hash"),
])
def test_a_malformed_kit_is_one_line_and_exit_3_never_a_traceback(kit, tmp_path, malformed, args):
    """A review re-sealed malformed kits: each ended in a traceback and exit 1, which a gate reads as drift."""
    work = tmp_path / "cwd"
    work.mkdir()
    ran = run_kit(malformed(kit, tmp_path / "malformed.pyz"), *args, cwd=work)
    err = ran.stderr.decode()
    assert ran.returncode == ExitCode.UNDECIDED and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("envcheck kit: error:"), err
    assert list(work.iterdir()) == []


def _runtime_constant(module: str, name: str) -> str:
    """A string constant of the kit's runtime (the host tool never imports the probe; its tests read it)."""
    found = re.search(rf'^{name} = "([^"]*)"$', (RUNTIME / module).read_text(), re.MULTILINE)
    assert found, (module, name)
    return found.group(1)


def test_a_temporary_directory_too_small_for_the_golden_is_named_not_called_tampering(kit, tmp_path):
    """ENOSPC while unpacking is the box's TMPDIR, said in one line; the kit is not blamed, nothing is left."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        work = tmp_path / "cwd"
        work.mkdir()
        ran = run_kit(kit, "--out", "capture.tar.gz", cwd=work, env={**os.environ, "TMPDIR": str(small)})
        err = ran.stderr.decode()
        assert ran.returncode == ExitCode.UNDECIDED and err.count("\n") == 1, err
        assert "cannot unpack the golden into" in err and "No space left on device" in err, err
        assert "modified" not in err and list(work.iterdir()) == [] and list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
