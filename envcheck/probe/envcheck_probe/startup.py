"""Start-up code (the fingerprint's `integrity.startup`): what runs before any program does.

Code that runs at every interpreter or process start changes numerics without a version number showing it:
a `.pth` line beginning with `import` (it can set os.environ before TensorFlow is imported), a
`sitecustomize`/`usercustomize` module, `/etc/ld.so.preload` and `LD_PRELOAD` (a library loaded into every
process), `PYTHONSTARTUP`/`PYTHONPATH`. Each is recorded with its file's sha256 and owner (the dpkg package
or Python distribution that installed it, None for none), so that what the golden does not have is named.
A `.pth` line that looks like it holds a secret is redacted, as the environment's values are (environment.py).
Standard library only.
"""
import os
import re
import site
import sys

from .environment import is_secret_name
from .integrity import DPKG_INFO, dpkg_entry, read_text, sha256_hex, usr_aliases

LD_SO_PRELOAD = "/etc/ld.so.preload"
REDACTED_LINE = "<redacted: looks like a secret>"


def startup_code(environ, dpkg, recorded, site_folders=None, preload_text=None, dpkg_info=DPKG_INFO):
    """Everything that runs at start-up here; `dpkg` and `recorded` ({path: distribution}) name owners."""
    def owner(path):
        return owner_of(path, dpkg, recorded, dpkg_info)

    folders = site_folders if site_folders is not None else python_site_folders()
    preload = read_text(LD_SO_PRELOAD) if preload_text is None else preload_text
    return {
        "pth": [record for folder in folders for record in pth_files(folder, owner)],
        "sitecustomize": customize_module("sitecustomize", owner),
        "usercustomize": customize_module("usercustomize", owner) if site.ENABLE_USER_SITE else None,
        "ld_so_preload": [preloaded(path, owner) for line in (preload or "").splitlines()
                          for path in split_preload(line.partition("#")[0])],
        "ld_preload": [preloaded(path, owner) for path in split_preload(environ.get("LD_PRELOAD", ""))],
        "pythonstartup": startup_file(environ.get("PYTHONSTARTUP")),
        "pythonpath": [entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep) if entry],
    }


def python_site_folders():
    """The folders whose .pth files this interpreter reads at start-up (the user's when it reads them)."""
    folders = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    seen = []
    for folder in folders:
        if folder not in seen and os.path.isdir(folder):
            seen.append(folder)
    return seen


def executable_lines(text):
    """The lines of a .pth that site.py executes (those beginning with `import`), secrets redacted: a line
    that names a secret whole, and in every other line each string literal but a name or a plain value."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("import ", "import\t")):
            lines.append(REDACTED_LINE if is_secret_name(line) else _LITERAL.sub(_kept_or_redacted, line.rstrip()))
    return lines


# A literal may carry a credential (a proxy URL with its password, a token set as a default): only what reads as
# an environment variable's name or a plain value (a number, a switch word) is shown; the file's sha256 is kept.
_LITERAL = re.compile(r"""(?P<quote>['"])(?P<body>(?:\\.|(?!(?P=quote)).)*)(?P=quote)""")
_SHOWN_LITERAL = re.compile(r"[A-Z_][A-Z0-9_]*|-?[0-9]+(?:\.[0-9]+)?|(?i:true|false|on|off|yes|no)\Z")


def _kept_or_redacted(match):
    body = match.group("body")
    return match.group(0) if _SHOWN_LITERAL.fullmatch(body) else match.group("quote") + "…" + match.group("quote")


def pth_files(folder, owner):
    """Every .pth in `folder` with executable lines: its name, path, owner, sha256 and those lines."""
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".pth"))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(folder, name)
        lines = executable_lines(read_text(path) or "")
        if lines:
            found.append({"name": name, "path": path, "owner": owner(path), "sha256": sha256_hex(path),
                          "lines": lines})
    return found


def customize_module(name, owner):
    """The module `import name` would load (sitecustomize, usercustomize), found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    path = getattr(spec, "origin", None) if spec else None
    if not path or not os.path.isfile(path):
        return None
    return {"name": name, "path": path, "owner": owner(path), "sha256": sha256_hex(path),
            "imported": name in sys.modules}


def split_preload(value):
    """LD_PRELOAD's (and a line of /etc/ld.so.preload's) entries: separated by spaces or colons (ld.so(8))."""
    return [entry for entry in value.replace(":", " ").split() if entry]


def preloaded(path, owner):
    """A preloaded library as the dynamic linker would find it, with its owner and sha256."""
    resolved = os.path.realpath(path) if path.startswith("/") else path
    return {"name": os.path.basename(path), "path": path, "owner": owner(resolved) if resolved.startswith("/") else None,
            "sha256": sha256_hex(resolved) if resolved.startswith("/") else None}


def startup_file(path):
    """PYTHONSTARTUP (read by interactive interpreters only, recorded all the same): path and sha256."""
    if not path:
        return None
    return {"path": path, "sha256": sha256_hex(path)}


def owner_of(path, dpkg, recorded, dpkg_info=DPKG_INFO):
    """The Python distribution or dpkg package that installed `path` (resolved), or None.
    dpkg's md5sums leave out configuration files (/etc/python3.11/sitecustomize.py): its file lists say."""
    resolved = os.path.realpath(path)
    for candidate in (path, resolved):
        if candidate in recorded:
            return recorded[candidate]
    entry = dpkg_entry(dpkg, resolved)
    if entry:
        return entry[0]
    return listed_by_dpkg(resolved, dpkg_info) if dpkg is not None else None


def listed_by_dpkg(path, dpkg_info=DPKG_INFO):
    """The package whose dpkg file list names `path` (also under merged /usr's other name), or None."""
    wanted = set(usr_aliases(path))
    try:
        names = sorted(name for name in os.listdir(dpkg_info) if name.endswith(".list"))
    except OSError:
        return None
    for name in names:
        text = read_text(os.path.join(dpkg_info, name)) or ""
        if any(line in wanted for line in text.splitlines()):
            return name[:-len(".list")].split(":")[0]
    return None
