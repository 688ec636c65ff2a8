"""The probe's Debian package list (envcheck_probe/debian.py) from small dpkg status files in a temporary folder:
only installed packages, the source without its version, multi-arch packages, and what is refused or cannot be
read recorded as one line instead of raising. No Docker, no dpkg needed."""
from __future__ import annotations

import os
from pathlib import Path

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 Package: continuation-lines-are-no-fields

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib (1:1.2.13.dfsg-1)
Version: 1:1.2.13.dfsg-1

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: half-done
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0

Package: libstdc++6
Status: install ok installed
Architecture: i386
Version: 12.2.0-14

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: no-version
Status: install ok installed
"""


def _status(tmp_path: Path, text: str = STATUS) -> Path:
    path = tmp_path / "status"
    path.write_text(text)
    return path


def test_installed_packages_only_with_version_architecture_and_source(probe, tmp_path):
    packages = probe.debian.debian_fingerprint(str(_status(tmp_path)))["debian_packages"]
    assert packages["libc6"] == {"version": "2.36-9+deb12u14", "architecture": "amd64", "source": "glibc"}
    # a Source with its own version: the name alone; no Source: the package is its own source
    assert packages["zlib1g"]["source"] == "zlib"
    # deinstalled (config files left), half installed, and a stanza without a version are not installed packages
    assert not {"removed-but-configured", "half-done", "no-version", "continuation-lines-are-no-fields"} & set(packages)
    # one package for two architectures: each keyed as dpkg names it
    assert packages["libstdc++6:i386"] == {"version": "12.2.0-14", "architecture": "i386", "source": None}
    assert packages["libstdc++6:amd64"]["source"] == "gcc-12"
    assert list(packages) == sorted(packages)


def test_no_status_file_is_no_field_at_all(probe, tmp_path):
    """Not Debian or Ubuntu: the fingerprint has neither field."""
    assert probe.debian.debian_fingerprint(str(tmp_path / "absent")) == {}


def test_an_empty_status_file_is_an_empty_list(probe, tmp_path):
    assert probe.debian.debian_fingerprint(str(_status(tmp_path, ""))) == {"debian_packages": {}}


def test_a_huge_status_file_is_refused_before_it_is_read(probe, tmp_path, monkeypatch):
    path = tmp_path / "status"
    with open(path, "wb") as handle:  # sparse: takes no disk
        handle.truncate(probe.debian.MAX_STATUS_BYTES + 1)
    record = probe.debian.debian_fingerprint(str(path))
    assert record == {"debian_packages_error": f"cannot read {path}: larger than 64 MiB"}


def test_a_fifo_or_folder_is_an_error_line_and_never_blocks(probe, tmp_path):
    fifo = tmp_path / "status"
    os.mkfifo(fifo)
    assert probe.debian.debian_fingerprint(str(fifo)) == {
        "debian_packages_error": f"cannot read {fifo}: not a regular file"}
    (record,) = probe.debian.debian_fingerprint(str(tmp_path)).values()  # a folder: EISDIR or not regular
    assert record.startswith(f"cannot read {tmp_path}: ")


def test_an_unreadable_file_is_an_error_line(probe, tmp_path):
    path = _status(tmp_path)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: a file that is no file stands in for it
        path = tmp_path / "loop"
        path.symlink_to(path)
    (record,) = probe.debian.debian_fingerprint(str(path)).values()
    assert record.startswith(f"cannot read {path}: ") and "\n" not in record


def test_bytes_that_are_not_utf8_do_not_stop_the_list(probe, tmp_path):
    path = tmp_path / "status"
    path.write_bytes(STATUS.encode().replace(b"GNU C Library", b"\xff\xfe"))
    assert probe.debian.debian_fingerprint(str(path))["debian_packages"]["libc6"]["version"] == "2.36-9+deb12u14"
