"""The probe's command line: probe a bundle, or (for `golden create`) write seeded inputs for a model."""
import argparse
import math
import os
import sys

from .calibrate import IN_CHILD
from .errors import ProbeFailure
from .files import atomic_write
from .integrity import DEFAULT_MODE as DEFAULT_INTEGRITY
from .integrity import MODES as INTEGRITY_MODES
from .latency import DEFAULT_BUDGET_S
from .layers import LAYER_MODES
from .model import import_tensorflow, load_signature, make_inputs
from .stages import probe


def keep_stdout_clean():
    """Send fd 1 to stderr: library chatter must never mix with anything a parent might read."""
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
    except OSError:
        pass


def seconds(text):
    """A non-negative, finite number of seconds (argparse's type for --latency-budget)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a non-negative number of seconds, got %r" % text)
    return value


def main(argv=None):
    """Parse the arguments and do the one thing asked; the exit status (0 when everything ran)."""
    parser = argparse.ArgumentParser(description="envcheck probe (runs inside a target)")
    parser.add_argument("--bundle", required=True, help="directory with model/ and inputs.npz")
    parser.add_argument("--out", required=True, help="directory to write capture.json and outputs.npz to")
    parser.add_argument("--make-inputs", type=int, metavar="BATCH",
                        help="instead of probing, write a seeded inputs.npz for the model's signature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-budget", type=seconds, default=DEFAULT_BUDGET_S, metavar="S",
                        help="at most S seconds timing batch-1 calls, fewer once the P50 and P99 are "
                             "stable (0 disables)")
    parser.add_argument("--calibrate", action="store_true",
                        help="also run the model under benign perturbations (for golden create)")
    tflite = parser.add_mutually_exclusive_group()
    tflite.add_argument("--tflite", action="store_true", default=None,
                        help="convert the model to TFLite and run it too (for golden create --tflite)")
    tflite.add_argument("--no-tflite", dest="tflite", action="store_false", help=argparse.SUPPRESS)  # a child
    layers = parser.add_mutually_exclusive_group()
    # A bare --layers (what a probe of an older envcheck was passed) means always.
    layers.add_argument("--layers", choices=LAYER_MODES, nargs="?", const="always", default="auto",
                        help="record every layer's summary: when the golden has a layer record and an output is not "
                             "bitwise the golden's (auto, the default), always, or never")
    layers.add_argument("--no-layers", dest="layers", action="store_const", const="never", help="--layers never")
    parser.add_argument("--integrity", choices=INTEGRITY_MODES, default=DEFAULT_INTEGRITY,
                        help="installed files checked against their RECORD and dpkg: every distribution's (full), "
                             "those of numerics (numerics, the default) or none (off)")
    parser.add_argument("--hash-table", metavar="PATH",
                        help="the integrity digest table of this target's last probe, handed in by the host "
                             "(default: OUT/integrity-hashes-in.json where it exists)")
    parser.add_argument("--perturb", choices=IN_CHILD, help=argparse.SUPPRESS)  # a calibration child
    parser.add_argument("--max-samples", type=int, help=argparse.SUPPRESS)  # a calibration child: the first batch
    args = parser.parse_args(argv)
    keep_stdout_clean()
    if not os.path.isdir(args.out):
        os.makedirs(args.out)
    if args.make_inputs:
        try:
            tf, np = import_tensorflow()
            _, signature = load_signature(tf, os.path.join(args.bundle, "model"))
            inputs = make_inputs(tf, np, signature, args.make_inputs, args.seed)
        except ProbeFailure as failure:
            sys.stderr.write("envcheck probe: %s\n" % failure.message)
            return 1
        atomic_write(os.path.join(args.out, "inputs.npz"), lambda handle: np.savez(handle, **inputs))
        return 0
    return probe(args.bundle, args.out, args.latency_budget, calibrate=args.calibrate, perturb=args.perturb,
                 max_samples=args.max_samples, layers=args.layers, tflite=args.tflite, integrity=args.integrity,
                 hash_table=args.hash_table)


def run():
    """The entry point of `python probe.pyz …`: main(), then exit at once with its status."""
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # NOTE: everything is on disk (fsync'd); skip TensorFlow's interpreter teardown, which costs
    # a noticeable share of a short probe and can crash on some builds after the work is done.
    os._exit(status)
