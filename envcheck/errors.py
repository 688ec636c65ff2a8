"""User-facing errors and the exit-code contract.

Subclasses of EnvcheckError are expected failures: the CLI prints their one-line message and exits with
their code. Anything else is a bug: one line naming it and exit 3 (never 1, which means drift only); the
traceback shows with --debug.
"""
import enum


class ExitCode(enum.IntEnum):
    """The CI gate's contract: 3 over 1 over 0."""

    OK = 0
    DRIFT = 1
    USAGE = 2
    UNDECIDED = 3


class EnvcheckError(Exception):
    """A problem the user can act on; the CLI prints its message and exits with `exit_code`."""

    exit_code = ExitCode.UNDECIDED


class UsageError(EnvcheckError):
    """The command line asks for something that cannot be done (bad spec, file exists…)."""

    exit_code = ExitCode.USAGE


class GoldenError(EnvcheckError):
    """The golden bundle is missing, corrupt or of an unknown schema."""


class CaptureError(EnvcheckError):
    """A capture directory is missing, corrupt or of an unknown schema."""


class PolicyError(EnvcheckError):
    """The policy file cannot be read or names an unknown severity."""


class TargetUnavailable(EnvcheckError):
    """A target cannot be reached at all (daemon down, image missing, interpreter missing)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or a CI system's cancel (SIGTERM): probes are stopped, nothing partial is
    written, and the process exits 128 + the signal's number (130, 143), as a shell would report."""

    def __init__(self, signum: int):
        """Remember which signal stopped the run."""
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process the signal ended."""
        return 128 + self.signum
