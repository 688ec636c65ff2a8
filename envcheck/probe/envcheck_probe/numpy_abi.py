"""Naming a NumPy ABI mismatch when TensorFlow fails to import: which numpy is installed, what TensorFlow's
compiled modules were built against, as far as NumPy's own messages and the installed metadata tell.

NOTE: NumPy reports the versions it found and expected on stderr (`import_array` prints the error, then raises
a bare "numpy.core.multiarray failed to import"; NumPy 2 writes "A module that was compiled using NumPy 1.x
cannot be run in NumPy 2…" before raising), and TensorFlow may then fail on something else entirely (a
pybind11 "Unable to convert function return value" TypeError). So the import runs with stderr kept as well
as written, and the exception and what was printed are read together.
"""
import re
import sys

from .tf_fingerprint import TF_DISTRIBUTIONS

# What NumPy's C-API import says when a compiled module and the installed numpy do not fit.
ABI_MARKERS = (
    "multiarray failed to import",
    "umath failed to import",  # numpy.core._multiarray_umath, numpy.core.umath
    "compiled against API version",
    "compiled against ABI version",
    "_ARRAY_API not found",
    "compiled using NumPy 1.x cannot be run in",
)
# "A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.0 as it may crash."
BUILT_FOR_OTHER_MAJOR = re.compile(r"compiled using NumPy (\S+) cannot be run in\s+NumPy (\S+?)\.?\s")
# "module compiled against API version 0x10 but this version of numpy is 0xe"
API_VERSIONS = re.compile(r"compiled against (API|ABI) version (\w+) but this version of numpy is (\w+)")
KEPT_CHARACTERS = 200000  # enough for NumPy's message and traceback; TF's import prints little else


class KeptStderr:
    """sys.stderr while TensorFlow imports: everything still reaches the real stderr, and is kept too."""

    def __init__(self, stream):
        self.stream = stream
        self.kept = []
        self.size = 0
        self.keeping = True

    def write(self, text):
        """Write `text` to the real stderr, keeping it while the import runs (up to KEPT_CHARACTERS)."""
        if self.keeping and self.size < KEPT_CHARACTERS:
            self.kept.append(text)
            self.size += len(text)
        return self.stream.write(text) if self.stream is not None else len(text)

    def flush(self):
        """Flush the real stderr."""
        if self.stream is not None:
            self.stream.flush()

    def __getattr__(self, name):
        # A handler created during the import (absl's) may keep this object: it stays a faithful stderr.
        return getattr(self.stream, name)

    def __enter__(self):
        sys.stderr = self
        return self

    def __exit__(self, *exc_info):
        self.keeping = False  # whoever kept a reference writes straight through from now on
        if sys.stderr is self:
            sys.stderr = self.stream
        return False

    def text(self):
        """What was written while the import ran."""
        return "".join(self.kept)


def exception_text(error):
    """The text of an exception and of every exception it was raised from or during, outermost first."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append("%s: %s" % (type(error).__name__, error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def numpy_abi_mismatch(text):
    """What the text says about a NumPy ABI mismatch ("numpy 2.1.0 is installed; …"), or None without one."""
    said = [line.strip() for line in text.splitlines() if any(marker in line for marker in ABI_MARKERS)]
    if not said:
        return None
    facts = ["numpy %s is installed" % (installed_version("numpy") or "(version unknown)")]
    built = BUILT_FOR_OTHER_MAJOR.search(text)
    if built:
        facts.append("TensorFlow's compiled modules were built against NumPy %s, this is NumPy %s"
                     % (built.group(1), built.group(2)))
    api = API_VERSIONS.search(text)
    if api:
        facts.append("TensorFlow's compiled modules need NumPy C-%s version %s, this numpy has %s" % api.groups())
    requirement = tensorflow_numpy_requirement()
    if requirement:
        facts.append("%s %s requires %s" % requirement)
    facts.append("NumPy said %r" % said[0][:300])
    return "a NumPy ABI mismatch: %s" % "; ".join(facts)


def installed_version(distribution):
    """A distribution's version from its metadata (never imported), or None."""
    try:
        from importlib import metadata
        return metadata.version(distribution)
    except Exception:  # noqa: BLE001 - no metadata (or a broken one) means "unknown"
        return None


def tensorflow_numpy_requirement():
    """(TensorFlow's distribution, its version, its numpy requirement) from its metadata, or None."""
    try:
        from importlib import metadata
    except ImportError:
        return None
    for name in TF_DISTRIBUTIONS:
        try:
            distribution = metadata.distribution(name)
        except Exception:  # noqa: BLE001 - not this one (or unreadable): try the next name
            continue
        for requirement in distribution.requires or ():
            if re.match(r"numpy\b", requirement, re.IGNORECASE):
                return name, distribution.version, requirement.split(";")[0].strip()
    return None
