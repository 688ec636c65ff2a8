"""Debian packages (the fingerprint's `debian_packages`): what dpkg says is installed, for the SBOM
(envcheck/report/sbom.py: `pkg:deb/debian/libc6@2.36-9?arch=amd64`), read from dpkg's status file without
running dpkg (a slim image keeps the database but may have no dpkg on PATH, and reading is cheaper).

Only packages whose Status is "install ok installed": a removed package whose configuration files remain, or one
half installed, is not what runs. Each as {version, architecture, source}, the source without the
"(version)" dpkg adds when it differs from the package's own. A package installed for two architectures
(multi-arch: libc6:amd64 and libc6:i386) is keyed `name:arch` as dpkg names it, each of them.

Bounded, and never raises: a status file over MAX_STATUS_BYTES is refused, a FIFO is never waited on; what
cannot be read is `debian_packages_error` (one line) instead of a list. Where there is no status file at all
(not Debian or Ubuntu) neither field is written. Standard library only, Python >= 3.8.
"""
import errno
import os
import stat

DPKG_STATUS = "/var/lib/dpkg/status"
MAX_STATUS_BYTES = 64 << 20
"""A real status file is a few hundred KiB (a full desktop: ~10 MiB); anything far larger is not read."""
INSTALLED = "install ok installed"
FIELDS = ("package", "status", "version", "architecture", "source")


def debian_fingerprint(path=DPKG_STATUS):
    """{"debian_packages": {...}} read from dpkg's status, {"debian_packages_error": why} when it cannot be read,
    {} where there is none."""
    try:
        text = read_status(path)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return {}
        return {"debian_packages_error": "cannot read %s: %s" % (path, error.strerror or error)}
    return {"debian_packages": installed_packages(text)}


def read_status(path, limit=MAX_STATUS_BYTES):
    """The status file's text (undecodable bytes replaced); OSError for a file that is no regular file or is
    larger than `limit` bytes. The check and the read are of the same open file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the probe
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if status.st_size > limit:
            raise OSError(errno.EFBIG, "larger than %d MiB" % (limit >> 20))
        data = handle.read(limit + 1)
    if len(data) > limit:  # grown since fstat
        raise OSError(errno.EFBIG, "larger than %d MiB" % (limit >> 20))
    return data.decode("utf-8", "replace")


def installed_packages(text):
    """{name: {version, architecture, source}} of the installed packages in a status file's text, sorted."""
    packages = [stanza for stanza in stanzas(text)
                if stanza.get("status") == INSTALLED and stanza.get("package") and stanza.get("version")]
    seen = {}
    for stanza in packages:
        seen[stanza["package"]] = seen.get(stanza["package"], 0) + 1
    found = {}
    for stanza in packages:
        name, architecture = stanza["package"], stanza.get("architecture")
        key = "%s:%s" % (name, architecture) if seen[name] > 1 and architecture else name
        found[key] = {"version": stanza["version"], "architecture": architecture,
                      "source": source_name(stanza.get("source"))}
    return dict(sorted(found.items()))


def stanzas(text):
    """Each paragraph of a deb822 file as {lower-case field: value}, only the FIELDS this module reads (their
    values are one line; continuation lines belong to other fields, such as Description and Conffiles)."""
    paragraph = {}
    for line in text.splitlines():
        if not line.strip():
            if paragraph:
                yield paragraph
            paragraph = {}
        elif not line[0].isspace():
            field, colon, value = line.partition(":")
            if colon and field.strip().lower() in FIELDS:
                paragraph[field.strip().lower()] = value.strip()
    if paragraph:
        yield paragraph


def source_name(source):
    """'glibc (2.36-9)' -> 'glibc'; None without a Source field (the package is its own source)."""
    name = (source or "").split("(")[0].strip()
    return name or None
