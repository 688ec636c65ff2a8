"""Installed-file integrity (the fingerprint's `integrity`): are the files on disk the ones that were installed?

Two boxes can list the same versions and still compute differently: a hand-edited file inside
site-packages, a `.so` copied over a package's own, a library that no package installed. This module checks

- the Python distributions that matter to numerics (`numerics`: TensorFlow, its runtime requirements, numpy,
  ml-dtypes, keras, the TFLite runtimes) or every one (`full`): each file against the sha256 in its RECORD
  (read in 1 MiB blocks: memory stays bounded whatever the file's size), files RECORD lists that are missing,
  and `.py`/`.so`/`.pth` files in the distribution's folders that no RECORD owns. Entries outside the site
  folder (`../../bin/…`: console scripts) are left out: they run no numerics, and `pip --target` moves them;
- the shared objects this process really mapped (after TensorFlow ran the model) against dpkg's md5sums
  (Debian/Ubuntu), naming a mapped library that neither dpkg nor a RECORD owns.

Paths are recorded relative to the distribution's site folder, so a golden made in a virtual environment
compares with an image. A deadline bounds the time: files left unchecked when it passes are counted, never
silently dropped. A table of the digests a previous probe of the same image or interpreter computed
(HashTable: path -> size, mtime, ctime, inode, digest) spares re-hashing a file whose stat is unchanged.
Standard library only.
"""
import base64
import csv
import hashlib
import json
import os
import time
import weakref

from .packages import normalize_distribution_name

MODES = ("full", "numerics", "off")
DEFAULT_MODE = "numerics"
BLOCK = 1 << 20
DEFAULT_DEADLINE_S = 120.0

# The distributions whose files decide numerics; TensorFlow's own runtime requirements are added to them.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                            "tensorflow-macos", "tf-nightly", "tf-nightly-cpu", "intel-tensorflow")
NUMERICS_DISTRIBUTIONS = TENSORFLOW_DISTRIBUTIONS + ("numpy", "ml-dtypes", "keras", "tf-keras", "tflite-runtime",
                                                     "ai-edge-litert")
# Files no RECORD owns are named when they can change what runs: Python code, native code, start-up code.
UNOWNED_SUFFIXES = (".py", ".so", ".pth")
DPKG_INFO = "/var/lib/dpkg/info"
# Debian's merged /usr: dpkg may list /lib/x/libc.so.6 where the process mapped /usr/lib/x/libc.so.6.
MERGED_USR = ("/lib", "/lib64", "/bin", "/sbin")
# Where the system's own packages put an interpreter: its libraries there are dpkg's to vouch for.
SYSTEM_PREFIXES = ("/usr", "/usr/local", "/")


class Deadline:
    """Seconds left for hashing; once past, files are counted as unchecked instead of hashed."""

    def __init__(self, seconds, clock=time.monotonic):
        self.clock = clock
        self.until = clock() + seconds

    def passed(self):
        """Whether the time is up."""
        return self.clock() > self.until


def file_digest(path, algorithm="sha256"):
    """The file's digest, read in 1 MiB blocks; None when it cannot be read."""
    digest = hashlib.new(algorithm)
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
    except OSError:
        return None
    return digest


def read_text(path):
    """The file's text (undecodable bytes replaced: a start-up file may hold anything), or None."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def sha256_hex(path):
    """The file's sha256 in hex, or None when it cannot be read."""
    digest = file_digest(path)
    return digest.hexdigest() if digest else None


def record_digest(path):
    """The file's sha256 as RECORD writes it (urlsafe base64 without padding), or None."""
    digest = file_digest(path)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii") if digest else None


# ------------------------------------------------------------------------------ the digest table

HASH_TABLE_SCHEMA = "envcheck-integrity-hashes-1"
# In the probe's output folder: the table the host hands in, and the one this probe leaves for it.
HASH_TABLE_IN = "integrity-hashes-in.json"
HASH_TABLE_OUT = "integrity-hashes.json"
# HashTable.digest's answer for a file that needs hashing once the deadline has passed.
UNCHECKED = ""
# The table comes from the host, which had it from an earlier probe of the target: untrusted data, bounded.
HASH_TABLE_MAX_BYTES = 16 << 20
HASH_TABLE_MAX_FILES = 200000
RECORD_DIGEST_LENGTH = 43  # a sha256 in urlsafe base64 without padding


class HashTable:
    """RECORD digests (record_digest) reused across probes of one image or interpreter: a file is hashed again
    unless its size, mtime, ctime and inode all equal the row an earlier probe left (ctime: `touch -d` and a
    copy that keeps mtime both change it). Only the rows of the files looked up this time are kept (`rows`), so
    the table never outgrows what one probe reads. What it cannot see: a file rewritten within the same
    size, mtime, ctime and inode (a changed clock or a raw write to the disk), and a table whose digest was
    altered where the host keeps it; an image is content-addressed, so a row of its id stays true."""

    def __init__(self, rows=None):
        self.previous = rows or {}
        self.rows = {}
        self.hashed = 0

    def digest(self, path, deadline):
        """The file's RECORD digest, from the table when its stat is unchanged; UNCHECKED when the deadline has
        passed and it would need hashing; None when it cannot be read."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
        row = self.previous.get(path)
        if row is not None and row[:4] == key:
            self.rows[path] = row
            return row[4]
        if deadline.passed():
            return UNCHECKED
        self.hashed += 1
        value = record_digest(path)
        if value is not None:
            self.rows[path] = key + [value]
        return value

    def changed(self):
        """Whether this probe's rows differ from the table it was handed (a file hashed again, a row gone)."""
        return self.rows != self.previous

    def dumps(self):
        """The table to hand back to the host: the rows of this probe."""
        return json.dumps({"schema": HASH_TABLE_SCHEMA, "files": self.rows}, separators=(",", ":"))


def load_hash_table(path):
    """The HashTable an earlier probe left at `path`; an empty one when there is none, or it is too large or
    damaged (a cache is never an error). Rows of the wrong shape are dropped one by one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(HASH_TABLE_MAX_BYTES + 1)
        table = json.loads(data.decode("utf-8")) if len(data) <= HASH_TABLE_MAX_BYTES else None
    except (OSError, ValueError):
        return HashTable()
    files = table.get("files") if isinstance(table, dict) and table.get("schema") == HASH_TABLE_SCHEMA else None
    if not isinstance(files, dict) or len(files) > HASH_TABLE_MAX_FILES:
        return HashTable()
    return HashTable(dict((name, row) for name, row in files.items() if valid_row(row)))


def valid_row(row):
    """[size, mtime_ns, ctime_ns, inode, digest]: four non-negative integers and a RECORD digest."""
    return (isinstance(row, list) and len(row) == 5
            and all(type(number) is int and number >= 0 for number in row[:4])
            and isinstance(row[4], str) and len(row[4]) == RECORD_DIGEST_LENGTH)


# ------------------------------------------------------------------------------ Python distributions

def installed(path=None):
    """{normalised name: distribution} on sys.path (or `path`), the first of a name winning (the one that imports)."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return {}
    found = {}
    for dist in metadata.distributions(**({"path": path} if path is not None else {})):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize_distribution_name(name), dist)
    return found


def chosen_names(distributions, mode, extra_names=()):
    """The distributions `mode` checks: every one (full), or those of numerics and TensorFlow's requirements."""
    if mode == "full":
        return sorted(distributions)
    wanted = set(NUMERICS_DISTRIBUTIONS) | set(normalize_distribution_name(n) for n in extra_names)
    for name in TENSORFLOW_DISTRIBUTIONS:
        if name in distributions:
            wanted.update(requirement_names(distributions[name]))
    return sorted(name for name in wanted if name in distributions)


def requirement_names(dist):
    """The names of a distribution's requirements that no extra asks for (markers are not evaluated: an
    installed requirement is checked whatever its marker)."""
    names = []
    for requirement in dist.requires or ():
        specifier, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        name = specifier.strip()
        for stop in "<>=!~[( ":
            name = name.split(stop)[0]
        if name:
            names.append(normalize_distribution_name(name))
    return names


def site_of(dist):
    """The folder the distribution's RECORD paths are relative to."""
    return os.path.normpath(str(dist.locate_file("")))


# RecordEntry lists, read once per distribution object: the check reads each RECORD three times.
_RECORD_ENTRIES = weakref.WeakKeyDictionary()


class RecordEntry:
    """One RECORD row: `path` (relative, normalised) and its hash's `mode` and `value` (None for none)."""

    __slots__ = ("mode", "path", "value")

    def __init__(self, path, file_hash=""):
        self.path = os.path.normpath(path)
        mode, _, value = (file_hash or "").partition("=")
        self.mode, self.value = (mode, value) if value else (None, None)


def record_entries(dist):
    """The distribution's RECORD rows, parsed with csv (importlib.metadata's `files` builds a path object per row:
    TensorFlow's 15,000 rows cost it a tenth of a second each time); `files` where there is no RECORD (egg-info)."""
    entries = _RECORD_ENTRIES.get(dist)
    if entries is None:
        text = dist.read_text("RECORD")
        if text is None:
            entries = [RecordEntry(str(entry), entry.hash and "%s=%s" % (entry.hash.mode, entry.hash.value))
                       for entry in dist.files or ()]
        else:
            entries = [RecordEntry(row[0], row[1] if len(row) > 1 else "")
                       for row in csv.reader(text.splitlines()) if row and row[0]]
        _RECORD_ENTRIES[dist] = entries
    return entries


def recorded_files(distributions):
    """{absolute path: distribution} for every file some RECORD lists: what is not in it no RECORD owns."""
    recorded = {}
    for name, dist in distributions.items():
        site = site_of(dist)
        for entry in record_entries(dist):
            path = os.path.join(site, entry.path)
            recorded.setdefault(os.path.normpath(path) if entry.path.startswith(os.pardir) else path, name)
    return recorded


def python_integrity(distributions, recorded, mode=DEFAULT_MODE, extra_names=(), deadline=None, table=None):
    """{distribution: {version, checked, modified, missing, unowned[, unchecked]}} for the `distributions`
    (installed()) that `mode` checks, `recorded` (recorded_files()) saying which files a RECORD owns; {} for off.
    `table`: the HashTable of an earlier probe (None: every file is hashed)."""
    if mode == "off":
        return {}
    deadline = deadline or Deadline(DEFAULT_DEADLINE_S)
    table = HashTable() if table is None else table
    return dict((name, verify_distribution(distributions[name], recorded, deadline, table))
                for name in chosen_names(distributions, mode, extra_names))


def verify_distribution(dist, recorded, deadline, table=None):
    """One distribution's files against its RECORD, and the files in its folders that no RECORD owns."""
    table = HashTable() if table is None else table
    site = site_of(dist)
    checked, unchecked, modified, missing = 0, 0, [], []
    for entry in record_entries(dist):
        relative = entry.path
        if relative.startswith(os.pardir + os.sep):
            continue  # console scripts and data outside the site folder: `pip --target` leaves them elsewhere
        path = os.path.join(site, relative)
        # One stat a file where it can be checked (the table's); lexists only for the others and the unreadable.
        digest = table.digest(path, deadline) if entry.mode == "sha256" else None
        if digest is None and not os.path.lexists(path):
            missing.append(relative)
            continue
        if entry.mode != "sha256":
            continue  # RECORD itself, compiled .pyc: nothing to check against
        if digest == UNCHECKED:
            unchecked += 1
            continue
        checked += 1
        if digest != entry.value:
            modified.append(relative)
    record = {"version": dist.version, "checked": checked, "modified": sorted(modified), "missing": sorted(missing),
              "unowned": unowned_files(site, package_folders(dist), recorded)}
    if unchecked:
        record["unchecked"] = unchecked
    return record


def package_folders(dist):
    """The top-level folders the distribution installs into (numpy/, numpy.libs/), never another site."""
    folders = set()
    for entry in record_entries(dist):
        parts = entry.path.split(os.sep)
        if len(parts) > 1 and parts[0] not in ("..", "") and not parts[0].endswith((".dist-info", ".egg-info")):
            folders.add(parts[0])
    return sorted(folders)


def unowned_files(site, folders, recorded):
    """`.py`, `.so` (`.so.N`) and `.pth` files under the folders that no RECORD lists."""
    found = []
    for folder in folders:
        for root, directories, files in os.walk(os.path.join(site, folder)):
            directories[:] = [d for d in directories if d != "__pycache__"]
            for name in files:
                path = os.path.join(root, name)
                if is_code(name) and path not in recorded:
                    found.append(os.path.relpath(path, site))
    return sorted(found)


def is_code(file_name):
    """Whether a file can run: Python code, a shared object (also versioned, libx.so.2), a .pth."""
    return file_name.endswith(UNOWNED_SUFFIXES) or ".so." in file_name


# ------------------------------------------------------------------------------ system libraries

def interpreter_prefixes():
    """The prefixes of an interpreter installed outside the system's packages (pyenv, conda), resolved."""
    import sys

    prefixes = set(os.path.realpath(p) for p in (sys.base_prefix, sys.prefix))
    return sorted(p for p in prefixes if p not in SYSTEM_PREFIXES)


def dpkg_index(info_dir=DPKG_INFO):
    """{absolute path: (package, md5)} from dpkg's md5sums; None where dpkg is not there (not Debian)."""
    try:
        names = sorted(os.listdir(info_dir))
    except OSError:
        return None
    index = {}
    for name in names:
        if not name.endswith(".md5sums"):
            continue
        package = name[:-len(".md5sums")].split(":")[0]
        try:
            with open(os.path.join(info_dir, name), "rb") as handle:
                for line in handle:
                    md5, _, path = line.decode("utf-8", "replace").rstrip("\n").partition("  ")
                    if path:
                        index["/" + path.lstrip("/")] = (package, md5)
        except OSError:
            continue
    return index


def dpkg_entry(index, path):
    """The (package, md5) dpkg lists for `path`, also under the other name merged /usr gives it."""
    if not index:
        return None
    for candidate in usr_aliases(path):
        if candidate in index:
            return index[candidate]
    return None


def usr_aliases(path):
    """`/usr/lib/x/libc.so.6` -> it and `/lib/x/libc.so.6` (and back): the names of one file on merged /usr."""
    aliases = [path]
    for short in MERGED_USR:
        if path.startswith("/usr" + short + "/"):
            aliases.append(path[len("/usr"):])
        elif path.startswith(short + "/"):
            aliases.append("/usr" + path)
    return aliases


def mapped_objects(maps_text=None):
    """Every shared object mapped into this process (/proc/self/maps), resolved, sorted."""
    from .files import read_text

    text = read_text("/proc/self/maps") if maps_text is None else maps_text
    found = set()
    for line in (text or "").splitlines():
        fields = line.split()
        path = fields[-1] if len(fields) >= 6 else ""
        if path.startswith("/") and (path.endswith(".so") or ".so." in os.path.basename(path)):
            found.add(os.path.realpath(path))
    return sorted(found)


def system_integrity(recorded, index, objects=None, interpreter=None):
    """The mapped shared objects that no RECORD owns (`recorded`: the paths RECORDs list) against dpkg's md5sums
    (`index`: dpkg_index(), None where there is no dpkg): how many were checked, which differ from dpkg's, which no
    package owns. An interpreter built outside the system's packages (pyenv, conda: `interpreter`, its prefixes)
    brings its own libraries, which dpkg cannot vouch for: they are left out, not named."""
    if index is None:
        return {"status": "no-dpkg"}
    objects = mapped_objects() if objects is None else objects
    own = tuple(prefix.rstrip("/") + "/" for prefix in (interpreter_prefixes() if interpreter is None else interpreter))
    checked, modified, unowned = 0, [], []
    for path in objects:
        if path in recorded or (own and path.startswith(own)):
            continue  # a distribution's own library: its RECORD decides (python_integrity)
        entry = dpkg_entry(index, path)
        if entry is None:
            unowned.append(path)
            continue
        checked += 1
        digest = file_digest(path, "md5")
        if digest is None or digest.hexdigest() != entry[1]:
            modified.append(path)
    return {"status": "ok", "checked": checked, "modified": modified, "unowned": unowned}

