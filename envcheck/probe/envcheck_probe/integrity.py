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
silently dropped. Standard library only.
"""
import base64
import hashlib
import os
import time

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


def recorded_files(distributions):
    """{absolute path: distribution} for every file some RECORD lists: what is not in it no RECORD owns."""
    recorded = {}
    for name, dist in distributions.items():
        site = site_of(dist)
        for entry in dist.files or ():
            recorded.setdefault(os.path.normpath(os.path.join(site, str(entry))), name)
    return recorded


def python_integrity(distributions, recorded, mode=DEFAULT_MODE, extra_names=(), deadline=None):
    """{distribution: {version, checked, modified, missing, unowned[, unchecked]}} for the `distributions`
    (installed()) that `mode` checks, `recorded` (recorded_files()) saying which files a RECORD owns; {} for off."""
    if mode == "off":
        return {}
    deadline = deadline or Deadline(DEFAULT_DEADLINE_S)
    return dict((name, verify_distribution(distributions[name], recorded, deadline))
                for name in chosen_names(distributions, mode, extra_names))


def verify_distribution(dist, recorded, deadline):
    """One distribution's files against its RECORD, and the files in its folders that no RECORD owns."""
    site = site_of(dist)
    checked, unchecked, modified, missing = 0, 0, [], []
    for entry in dist.files or ():
        relative = os.path.normpath(str(entry))
        if relative.startswith(os.pardir + os.sep):
            continue  # console scripts and data outside the site folder: `pip --target` leaves them elsewhere
        path = os.path.join(site, relative)
        if not os.path.lexists(path):
            missing.append(relative)
            continue
        if entry.hash is None or entry.hash.mode != "sha256":
            continue  # RECORD itself, compiled .pyc: nothing to check against
        if deadline.passed():
            unchecked += 1
            continue
        checked += 1
        if record_digest(path) != entry.hash.value:
            modified.append(relative)
    record = {"version": dist.version, "checked": checked, "modified": sorted(modified), "missing": sorted(missing),
              "unowned": unowned_files(site, package_folders(dist), recorded)}
    if unchecked:
        record["unchecked"] = unchecked
    return record


def package_folders(dist):
    """The top-level folders the distribution installs into (numpy/, numpy.libs/), never another site."""
    folders = set()
    for entry in dist.files or ():
        parts = entry.parts
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

