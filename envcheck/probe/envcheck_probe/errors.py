"""The failure the probe can name, and the one line of an exception it records."""


class ProbeFailure(Exception):
    """A failure the probe can name: recorded in the capture as {kind, message, traceback}."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


def first_line(error):
    """The first line of an exception's text, at most 500 characters."""
    text = str(error).strip().splitlines()
    return text[0][:500] if text else ""
