"""Reading a file that may be absent, and writing one so that a reader never sees half of it."""
import os


def read_text(path):
    """The file's text, or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def atomic_write(path, write):
    """Write through `write(handle)` to a temporary file, fsync it, then rename it over `path`."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
