"""The on-site kit's golden: read kit.json, verify the embedded bundle against its manifest's sha256s and the
manifest against kit.json, and unpack it into the kit's temporary directory, with the standard library only.

Every problem is a KitError, one line naming the member: a kit whose golden was modified, truncated or
extended refuses to run, since a capture of another golden would be judged against the wrong numbers.
Members are streamed to disk (never a whole model in memory) and hashed as they are written. A sha256 says
"tampered" only once a member is written whole, so their sizes are bounded first: the kit builder stores every
member uncompressed, so the golden unpacks to no more bytes than the kit file holds; a compressed member (a
zip bomb's way to many gigabytes) or sizes past the file (overlapping members) refuse the kit before anything
is written.
"""
import hashlib
import json
import os
import posixpath
import shutil
import zipfile
import zlib

KIT_RECORD = "kit.json"
KIT_SCHEMA = "envcheck.kit/1"
GOLDEN_PREFIX = "golden/"
MANIFEST = "manifest.json"
BLOCK = 1 << 20
# What zipfile raises for a damaged archive or member (a flipped byte is a CRC error on reading it).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError)


class KitError(Exception):
    """The kit cannot run here (exit 3): one line, no traceback."""


def read_kit_record(archive):
    """kit.json: the kit's schema, envcheck version, golden sha256 and name, and the redaction rules."""
    try:
        record = json.loads(archive.read(KIT_RECORD).decode("utf-8"))
    except ZIP_ERRORS as error:
        raise KitError("this kit is damaged (%s unreadable: %s); get a new kit" % (KIT_RECORD, error)) from None
    if not isinstance(record, dict) or record.get("schema") != KIT_SCHEMA:
        raise KitError("%s is not an %s record; this file is not an envcheck kit, or a newer one"
                       % (KIT_RECORD, KIT_SCHEMA))
    return record


def unpack_golden(archive, record, into):
    """Write the golden's files under `into` (a new folder), each verified; the bundle folder's path."""
    try:
        manifest_bytes = archive.read(GOLDEN_PREFIX + MANIFEST)
    except ZIP_ERRORS as error:
        raise _tampered(MANIFEST, "unreadable (%s)" % error) from None
    if hashlib.sha256(manifest_bytes).hexdigest() != record.get("golden_sha256"):
        raise _tampered(MANIFEST, "its sha256 is not the one this kit was built with")
    try:
        listed = json.loads(manifest_bytes.decode("utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise _tampered(MANIFEST, "not a golden manifest (%s)" % error) from None
    if not isinstance(listed, dict) or not all(isinstance(name, str) and isinstance(digest, str)
                                               for name, digest in listed.items()):
        raise _tampered(MANIFEST, "its files are not a table of names and sha256s")
    present = set(name[len(GOLDEN_PREFIX):] for name in archive.namelist() if name.startswith(GOLDEN_PREFIX))
    unlisted = sorted(present - set(listed) - {MANIFEST})
    if unlisted:
        raise _tampered(unlisted[0], "not listed in the manifest")
    _refuse_oversized(archive, sorted(present & set(listed)))
    try:
        os.makedirs(into)
        _write(os.path.join(into, MANIFEST), [manifest_bytes])
    except OSError as error:
        raise _cannot_unpack(into, error) from None
    for name, digest in sorted(listed.items()):
        if name not in present:
            raise _tampered(name, "listed in the manifest but missing")
        if digest != _unpack(archive, name, into):
            raise _tampered(name, "its sha256 does not match the manifest")
    return into


def _refuse_oversized(archive, names):
    """Each golden member stored as the builder stores it, and all of them within the kit file's size."""
    kit_bytes = os.path.getsize(archive.filename)
    total = 0
    for name in names:
        info = archive.getinfo(GOLDEN_PREFIX + name)
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise _tampered(name, "compressed, which no kit builder does (it would unpack to %d bytes)"
                            % info.file_size)
        total += info.file_size
    if total > kit_bytes:
        raise _tampered(names[-1] if names else MANIFEST, "the members claim %d bytes, more than the kit's %d"
                        % (total, kit_bytes))


def _unpack(archive, name, into):
    """Stream one member to its place under `into`; its sha256. A member that cannot be read is a damaged kit;
    a file that cannot be written is this box's temporary directory (full, read-only), said as such."""
    if not _plain_relative(name):
        raise _tampered(name, "a path outside the bundle")
    path = os.path.join(into, *name.split("/"))
    digest = hashlib.sha256()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # (a name listed both as a file and as a folder fails)
        with open(path, "wb") as out:
            for block in _member_blocks(archive, name):
                digest.update(block)
                out.write(block)
    except OSError as error:  # (reading errors are KitErrors by now: only writing raises OSError here)
        raise _cannot_unpack(into, error) from None
    return digest.hexdigest()


def _cannot_unpack(into, error):
    """Writing failed: this box's temporary directory (full, read-only), not the kit."""
    return KitError("cannot unpack the golden into %s: %s (set TMPDIR to a folder with room for the kit's size)"
                    % (os.path.dirname(into), error.strerror or error))


def _member_blocks(archive, name):
    """The member's bytes in blocks; a member that cannot be read is a damaged kit."""
    try:
        with archive.open(GOLDEN_PREFIX + name) as member:
            yield from iter(lambda: member.read(BLOCK), b"")
    except ZIP_ERRORS as error:
        raise _tampered(name, "unreadable (%s)" % error) from None


def _plain_relative(name):
    """A relative POSIX path with no `..`, no empty or `.` parts and no backslash: it stays in the bundle."""
    parts = name.split("/")
    return (bool(name) and not name.startswith("/") and "\\" not in name and posixpath.normpath(name) == name
            and all(part not in ("", ".", "..") for part in parts))


def _write(path, blocks):
    with open(path, "wb") as out:
        for block in blocks:
            out.write(block)


def _tampered(name, why):
    return KitError("the golden in this kit was modified or is damaged (%s%s: %s); refusing to run — get a new "
                    "kit" % (GOLDEN_PREFIX, name, why))


def remove_tree(path):
    """Remove the kit's temporary directory, whatever is left in it."""
    shutil.rmtree(path, ignore_errors=True)
