"""The on-site kit: one file that a technician (or Ansible, or a Pod) runs with the box's own Python.

    python3 envcheck-kit.pyz [--site NAME] [--out capture.tar.gz | --out - | --out log:] [--raw] [--timeout S]

`envcheck kit build` (envcheck/kit.py on the host) packs this package, a golden bundle (golden/) and
kit.json into one zipapp. Run, the kit:
  1. verifies the golden against its manifest's sha256s and the manifest against kit.json (kit_golden);
  2. unpacks it into a temporary directory (TMPDIR or /tmp, else /dev/shm: a read-only root still has it);
  3. runs the probe in a child process of this same interpreter, so a TensorFlow crash (SIGILL, an
     out-of-memory kill) ends the child, never the kit, and a timeout kills the child's whole group;
  4. stamps and, unless --raw, redacts the capture (kit_capture), and writes it as one tar.gz: to --out
     atomically, streamed to stdout with `--out -`, or with `--out log:` framed as base64 text lines on
     stdout that survive a pod's log (`envcheck kit collect` takes them back); streaming, every message
     goes to stderr;
  5. removes its temporary directory and says the one command to run at headquarters.
Nothing is installed and nothing is written elsewhere; no network is used; nothing is imported beyond
what the probe imports. Exit status: 0 the capture holds a finished run; 3 the kit could not run, or the
probe failed here (the capture, written all the same, says why: send it back); 2 a usage error;
130/143 interrupted (the probe's child killed, the temporary directory removed, no capture written).
"""
import argparse
import contextlib
import hashlib
import io
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import zipfile

from .kit_capture import stamped_capture, write_archive, write_log_frame
from .kit_golden import KitError, read_kit_record, remove_tree, unpack_golden

PROBE_CHILD = "--probe-child"
"""The kit's first argument when it runs as the probe's child (`python KIT --probe-child --bundle … --out …`)."""
DEFAULT_OUT = "capture.tar.gz"
DEFAULT_TIMEOUT_S = 300.0
STREAM = "-"
LOG = "log:"
"""--out log:: the tar.gz as base64 lines between BEGIN/END markers on stdout, for a pod's (text) log."""
STDERR_TAIL_CHARS = 4000
FALLBACK_TEMP = "/dev/shm"
EXIT_OK, EXIT_USAGE, EXIT_UNDECIDED = 0, 2, 3


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop, clean up, exit 128 + the signal's number."""

    def __init__(self, signum):
        KeyboardInterrupt.__init__(self)
        self.signum = signum


def run():
    """The zipapp's entry point: the kit, or (as its own child) the probe."""
    if sys.argv[1:2] == [PROBE_CHILD]:
        from .cli import run as run_probe

        sys.argv = sys.argv[:1] + sys.argv[2:]
        run_probe()
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)


def main(argv):
    """Run the kit once; the exit status."""
    args = _parser().parse_args(argv)
    if args.out == STREAM and _is_terminal(sys.stdout):
        _say("envcheck kit: error: --out - writes a binary tar.gz to stdout; redirect it (> capture.tar.gz)")
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except KitError as error:
        _say("envcheck kit: error: %s" % error)
        return EXIT_UNDECIDED
    except KeyboardInterrupt as interrupt:
        signum = getattr(interrupt, "signum", signal.SIGINT)
        _say("envcheck kit: interrupted (%s): the probe stopped, nothing written" % _signal_name(signum))
        return 128 + signum
    except Exception as error:  # noqa: BLE001 - a kit nobody can debug on site: one line, exit 3, never 1 (drift)
        _say("envcheck kit: error: the kit itself failed (%s: %s); nothing written — get a new kit"
             % (type(error).__name__, str(error)[:200]))
        return EXIT_UNDECIDED


def _parser():
    parser = argparse.ArgumentParser(
        prog="envcheck-kit", description="Run envcheck's golden model on this box with this Python, and write "
        "a capture to send back (compared at headquarters with `envcheck compare`).")
    parser.add_argument("--site", type=_site_name, help="factory or site name recorded in the capture")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="PATH",
                        help="the capture's tar.gz (default %s); - streams it to stdout; log: writes it to "
                             "stdout as base64 lines a pod's log keeps (envcheck kit collect)" % DEFAULT_OUT)
    parser.add_argument("--raw", action="store_true",
                        help="keep hostname, interpreter path and pid in the capture (default: hashed or dropped, "
                             "since the capture is meant to be sent back)")
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="seconds the probe may take (default %g)" % DEFAULT_TIMEOUT_S)
    parser.add_argument("--version", action="store_true", help="say the kit's envcheck version and golden, and exit")
    return parser


def _site_name(text):
    """The same rule as envcheck's own --site: one line of at most 200 printable characters."""
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("a site name cannot be empty")
    if len(name) > 200 or any(not character.isprintable() for character in name):
        raise argparse.ArgumentTypeError("a site name is one line of at most 200 printable characters")
    return name


def _positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds, got %r" % text)
    return value


def _run(args):
    path = _kit_path()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise KitError("cannot read the kit %s: %s" % (path, error)) from None
    with archive:
        record = read_kit_record(archive)
        if args.version:
            _say("envcheck kit %s, golden %s%s" % (record.get("envcheck_version"), record["golden_sha256"],
                                                   " (%s)" % record["golden"] if record.get("golden") else ""))
            return EXIT_OK
        destination = _Destination(args.out)
        work = _work_directory()
        try:
            bundle = unpack_golden(archive, record, os.path.join(work, "golden"))
            _say("envcheck kit %s: golden %s verified; probing with %s (up to %g s)…"
                 % (record.get("envcheck_version"), record["golden_sha256"][:12], sys.executable, args.timeout))
            capture_dir = os.path.join(work, "capture")
            os.mkdir(capture_dir)
            child = _probe(path, bundle, capture_dir, record["probe_arguments"], args.timeout)
            document = stamped_capture(capture_dir, record, args.site, child, sys.executable, _sha256(path), args.raw)
            destination.write(lambda stream: write_archive(stream, capture_dir, document))
        finally:
            destination.discard()
            remove_tree(work)
    return _report(document, child, args.out, record.get("golden"))


def _kit_path():
    """The kit file this code runs from (zipimport knows its archive)."""
    archive = getattr(globals().get("__loader__"), "archive", None) or sys.argv[0]
    if not os.path.isfile(archive):
        raise KitError("run the kit file itself: python3 envcheck-kit.pyz")
    return os.path.abspath(archive)  # the probe's child runs in another directory


def _work_directory():
    """A new private temporary directory: TMPDIR (or /tmp…), else /dev/shm (writable under a read-only root)."""
    for base in (None, FALLBACK_TEMP):
        try:
            return tempfile.mkdtemp(prefix="envcheck-kit-", dir=base)
        except OSError:
            continue
    raise KitError("no writable temporary directory (tried TMPDIR, /tmp and %s); set TMPDIR to one" % FALLBACK_TEMP)


def _probe(kit, bundle, capture_dir, arguments, timeout):
    """Run the probe in a child of this interpreter (its own process group), with the arguments a host target
    gives it by default (kit.json); how it ended, for the capture."""
    command = [sys.executable, kit, PROBE_CHILD, "--bundle", bundle, "--out", capture_dir] + list(arguments)
    # cwd: the capture directory, so nothing in the technician's folder can shadow an import or catch a write.
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             cwd=capture_dir, start_new_session=True)
    timed_out = False
    try:
        _, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(child)
        _, stderr = child.communicate()
    except BaseException:  # interrupted: leave no probe behind
        _kill_group(child)
        child.wait()
        raise
    return {"exit_code": child.returncode, "timed_out": timed_out, "timeout_s": timeout,
            "stderr_tail": stderr.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]}


def _kill_group(child):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


class _Destination:
    """Where the tar.gz goes: stdout (as bytes, or framed as text lines for a log), or a temporary file beside
    --out (made now, so an unwritable place is found before the probe runs) renamed over it once complete."""

    def __init__(self, out):
        self.out, self.temporary = out, None
        if out in (STREAM, LOG):
            return
        if os.path.isdir(out):
            raise KitError("--out %s is a directory; name the tar.gz to write" % out)
        folder = os.path.dirname(os.path.abspath(out))
        try:
            handle, self.temporary = tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(out), suffix=".tmp")
            os.close(handle)
        except OSError as error:
            raise KitError("cannot write --out %s: %s (use --out - to stream the capture to stdout)"
                           % (out, error.strerror or error)) from None

    def write(self, write):
        if self.out == LOG:
            archive = io.BytesIO()  # framed whole: the BEGIN line says its size and sha256
            write(archive)
            write_log_frame(sys.stdout, archive.getvalue())
            return
        if self.temporary is None:
            write(sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        try:
            with open(self.temporary, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(self.temporary, 0o644)
            os.replace(self.temporary, self.out)
        except OSError as error:
            raise KitError("cannot write --out %s: %s" % (self.out, error.strerror or error)) from None
        self.temporary = None

    def discard(self):
        if self.temporary is not None and os.path.exists(self.temporary):
            os.unlink(self.temporary)


def _report(document, child, out, golden):
    """Say what was written and the command to run at headquarters; the exit status."""
    name = out if out not in (STREAM, LOG) else DEFAULT_OUT
    command = "envcheck compare %s%s" % (shlex.quote(name), " --golden %s" % shlex.quote(golden) if golden else "")
    if out == LOG:
        where = "capture written to stdout between its BEGIN and END lines — send this log back"
        command = "envcheck kit collect capture.log --out %s && %s" % (DEFAULT_OUT, command)
    elif out == STREAM:
        where = "capture streamed to stdout (save it as %s) — send this file back" % DEFAULT_OUT
    else:
        where = "capture written to %s — send this file back" % out
    problem = _problem(document, child)
    if problem:
        _say("envcheck kit: the probe could not finish here: %s" % problem)
    _tell("%s; at headquarters run:\n  %s" % (where, command), streaming=out in (STREAM, LOG))
    return EXIT_UNDECIDED if problem else EXIT_OK


def _problem(document, child):
    """Why the capture holds no finished run (None when it does), in the kit's plain words; headquarters
    names a crash precisely (envcheck/targets/exits.py)."""
    stage = document.get("stage")
    during = " during %s" % stage if stage else ""
    if child["timed_out"]:
        return "it did not finish within %g s%s; it was killed" % (child["timeout_s"], during)
    code = child["exit_code"]
    if code is not None and code < 0:
        return "its process died from %s%s" % (_signal_name(-code), during)
    if document.get("status") == "ok":
        return None
    error = document.get("error") or {}
    return error.get("message") or "it stopped%s without saying why" % during


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _say(line):
    """A message: always stderr (stdout may be the capture itself)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _tell(text, streaming):
    """The closing words: stdout, unless stdout carries the capture."""
    stream = sys.stderr if streaming else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _interrupt(signum, frame):
    raise Interrupted(signum)
