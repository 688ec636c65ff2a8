"""Command-line interface: the only place that parses argv, prints verdicts and decides exit codes.

Heavy modules (numpy, docker, deepdiff, pandas, rich) are imported inside the command functions so
that `envcheck --help` stays instant.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import re
import shlex
import signal
import sys
import traceback
from pathlib import Path

from envcheck import __version__, console
from envcheck.console import say, show, warn
from envcheck.errors import EnvcheckError, ExitCode, Interrupted, UsageError
from envcheck.report.registry import add_report_options

DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
DEFAULT_GC_AGE_S = 2 * DEFAULT_TIMEOUT_S
DEFAULT_REPORTS_DIR = "reports"
PRELOAD_WAIT_S = 2.0
"""The longest the background imports wait for a probe to get under way (an endpoint target never says)."""

EPILOG_MAIN = """\
examples:
  envcheck check                                   # built-in golden against this host
  envcheck check --target python:/opt/venv/bin/python --target docker:factory-image:1.4 --jobs 2
  envcheck check --site shenzhen-3 --json out.json --fail-on warn
  envcheck probe --out capture-shenzhen/           # on site: capture only, send the directory back
  envcheck compare capture-shenzhen/ capture-beijing/
  envcheck golden create --model my_savedmodel/ --inputs inputs.npz --out golden/mine
  envcheck golden verify golden/mine

exit codes: 0 matched within policy · 1 drift · 2 usage error · 3 could not decide
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), like every other error envcheck prints."""

    def error(self, message: str):
        self.exit(int(ExitCode.USAGE), f"envcheck: error: {console.neutral(message)} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command, with its help text and examples."""
    parser = _Parser(
        prog="envcheck", description="Run a golden TensorFlow model in each target environment and flag drift "
        "against the golden baseline.", epilog=EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"envcheck {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="probe targets and compare them with the golden",
                                description="Probe each target, compare with the golden, report and exit 0/1/3.",
                                epilog="example: envcheck check --target host --target docker:reference --jobs 2",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _golden_option(check)
    _probing_options(check, many_targets=True, recorded_in="report", layers="auto")
    check.add_argument("--jobs", type=_positive_int, default=1, help="targets probed at once (default 1)")
    _comparison_options(check)
    check.set_defaults(run=command_check)

    probe = commands.add_parser("probe", help="capture only (on site), to compare elsewhere",
                                description="Run the probe in one target and save its capture directory.",
                                epilog="example: envcheck probe --site shenzhen-3 --out capture-shenzhen/")
    _golden_option(probe)
    # A capture is kept to be compared later, with other sites' too: its layer record is the only evidence then.
    _probing_options(probe, many_targets=False, recorded_in="capture", layers="always")
    probe.add_argument("--out", required=True, type=Path, help="directory to write the capture to")
    probe.add_argument("--raw", action="store_true",
                       help="keep hostname, interpreter path and pid in the capture (default: hashed or "
                            "dropped, since the capture is meant to be sent back)")
    probe.set_defaults(run=command_probe)

    compare = commands.add_parser("compare", help="compare captures made elsewhere with the golden",
                                  description="Compare captures (directories from `envcheck probe`, or the tar.gz the\n"
                                              "on-site kit writes) with the golden;\n"
                                              "given two, also say where the second's numbers first part from the\n"
                                              "first's (by their layer records).",
                                  epilog="examples:\n  envcheck compare capture-shenzhen/ --json shenzhen.json\n"
                                         "  envcheck compare capture-shenzhen.tar.gz\n"
                                         "  envcheck compare capture-beijing/ capture-shenzhen/",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE",
                         help="a capture directory, or a capture.tar.gz from the kit (envcheck kit build)")
    _golden_option(compare)
    _comparison_options(compare)
    compare.set_defaults(run=command_compare)

    review = commands.add_parser(
        "review", help="review many JSON reports: matrix, equivalence classes, attribution, trend",
        description="Read many JSON reports (files or directories) and review drift across sites.",
        epilog="example: envcheck review reports/ site-reports/ --since 2026-11-01 --html fleet.html --csv fleet.csv\n"
               "         envcheck review reports/ --metrics /var/lib/node_exporter/textfile/envcheck.prom",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    review.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="report files or directories of them")
    review.add_argument("--since", metavar="DATE", help="only reports created on or after DATE (YYYY-MM-DD)")
    review.add_argument("--html", type=Path, metavar="PATH", help="write the review as a self-contained HTML page")
    review.add_argument("--csv", type=Path, metavar="PATH", help="write the flat table (site × target × run) as CSV")
    review.add_argument("--metrics", type=Path, metavar="PATH",
                        help="write the latest state of every site × target as Prometheus metrics")
    review.set_defaults(run=command_review)

    _add_golden_commands(commands)
    _add_fleet_commands(commands)
    _add_kit_commands(commands)

    gc = commands.add_parser(
        "gc", help="remove probe containers a killed run left behind (its own label only)",
        description="Remove containers labelled envcheck.probe older than --older-than seconds: what a run ended "
                    "by SIGKILL or a lost machine left. Other tools' containers, and probes of runs still going, stay.",
        epilog="examples:\n  envcheck gc\n  envcheck gc --older-than 3600 --docker-host ssh://ops@edge-17",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    gc.add_argument("--older-than", type=_non_negative_seconds, default=DEFAULT_GC_AGE_S, metavar="S",
                    help=f"only containers created more than S seconds ago (default {DEFAULT_GC_AGE_S:g}: longer than "
                         "any probe's default timeout)")
    gc.add_argument("--run", metavar="ID", help="only the containers of this run (their envcheck.run label)")
    gc.add_argument("--docker-host", metavar="URL", type=_docker_host,
                       help="daemon to use (unix://, tcp://, ssh://; default DOCKER_HOST)")
    gc.set_defaults(run=command_gc)
    return parser


def _add_fleet_commands(commands) -> None:
    fleet = commands.add_parser("fleet", help="check every site of an inventory (fleet.toml); the latest verdict per site")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    run = fleet_commands.add_parser(
        "run", help="check every site of the inventory, one report per site",
        description="Check every site of the inventory on its own Docker endpoint, up to --jobs sites at once; one "
                    "JSON report per site under REPORTS_DIR/<site>/; exit with the worst code (3 over 1 over 0).",
        epilog="examples:\n  envcheck fleet run fleet.toml\n  envcheck fleet run fleet.toml --sites shenzhen-3,beijing-1 "
               "--jobs 4 --reports-dir reports/\n\ninventory (fleet.toml):\n  golden = \"golden/vision\"\n  [[site]]\n"
               "  name = \"shenzhen-3\"\n  docker_host = \"ssh://ops@edge-17\"\n"
               "  targets = [\"docker:factory/vision:1.4\", \"docker:factory/vision:1.5\"]\n"
               "  labels = { region = \"south\", line = \"3\" }",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("inventory", type=Path, metavar="FLEET.toml")
    run.add_argument("--sites", type=_site_list, metavar="A,B", help="only these sites (default: all)")
    run.add_argument("--jobs", type=_positive_int, default=4, help="sites checked at once (default 4)")
    run.add_argument("--reports-dir", type=Path, default=Path(DEFAULT_REPORTS_DIR), metavar="DIR",
                     help=f"one folder per site, one JSON report per run (default {DEFAULT_REPORTS_DIR}/)")
    run.add_argument("--fail-on", choices=("warn", "fail"), default="fail",
                     help="'warn' makes WARN targets fail the gate too (default: fail)")
    cache = run.add_mutually_exclusive_group()
    cache.add_argument("--cache", type=Path, metavar="DIR",
                       help="reuse a Docker target's capture when nothing it depends on changed (image id, golden, "
                            "probe, the machine and daemon; default REPORTS_DIR/.cache)")
    cache.add_argument("--no-cache", action="store_true", help="probe every target afresh")
    _timeout_option(run)
    run.set_defaults(run=command_fleet_run)
    status = fleet_commands.add_parser("status", help="the latest verdict per site, from the stored reports",
                                       epilog="example: envcheck fleet status --reports-dir reports/")
    status.add_argument("--reports-dir", type=Path, default=Path(DEFAULT_REPORTS_DIR), metavar="DIR",
                        help=f"where `fleet run` wrote the reports (default {DEFAULT_REPORTS_DIR}/)")
    status.set_defaults(run=command_fleet_status)


def _add_kit_commands(commands) -> None:
    kit = commands.add_parser("kit", help="the on-site kit: one file a box runs with its own Python")
    kit_commands = kit.add_subparsers(dest="kit_command", required=True, metavar="ACTION")
    build = kit_commands.add_parser(
        "build", help="write the kit: the probe and the golden in one .pyz",
        description="Write ONE file holding the probe and the golden bundle. On the box, with the Python that runs "
                    "production (nothing installed, no network):\n  python3 envcheck-kit.pyz --site NAME --out "
                    "capture.tar.gz\nthen, at headquarters: envcheck compare capture.tar.gz",
        epilog="example: envcheck kit build --golden golden/vision --golden-sha256 \"$GOLDEN_SHA256\" --out "
               "envcheck-kit.pyz", formatter_class=argparse.RawDescriptionHelpFormatter)
    _golden_option(build)
    build.add_argument("--out", type=Path, default=Path("envcheck-kit.pyz"), metavar="FILE",
                       help="the kit to write (default envcheck-kit.pyz)")
    build.set_defaults(run=command_kit_build)
    _add_kit_k8s_command(kit_commands)
    collect = kit_commands.add_parser(
        "collect", help="take the capture out of a kit's log (kubectl logs, podman logs)",
        description="Find the capture a kit wrote with --out log: in a log (a file, or - for stdin), check its size "
                    "and sha256, and write it as the tar.gz `envcheck compare` reads. A log without one whole, intact "
                    "capture is refused (exit 3).",
        epilog="example: kubectl logs job/envcheck-kit-0123456789ab | envcheck kit collect - --out capture.tar.gz",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    collect.add_argument("log", metavar="LOGFILE", help="the log: a file, or - for stdin")
    collect.add_argument("--out", type=Path, default=Path("capture.tar.gz"), metavar="FILE",
                         help="the capture's tar.gz to write (default capture.tar.gz)")
    collect.set_defaults(run=command_kit_collect)


def _add_kit_k8s_command(kit_commands) -> None:
    from envcheck.kit_k8s import KINDS  # the standard library only

    k8s = kit_commands.add_parser(
        "k8s", help="print Kubernetes manifests that run the kit in a production image",
        description="Print the manifests (a YAML stream of JSON documents) that run the kit inside IMAGE, unchanged: "
                    "a ConfigMap holding the kit, a NetworkPolicy allowing no traffic, and a Job (one run), Pod, or "
                    "DaemonSet (every node of a pool). Each capture comes back in its pod's log: envcheck kit collect.",
        epilog="example: envcheck kit k8s --image factory/vision:1.4 --kind daemonset --nodes pool=vision "
               "--gpus 1 | kubectl create -f -", formatter_class=argparse.RawDescriptionHelpFormatter)
    k8s.add_argument("--image", required=True, metavar="IMAGE", help="the production image to run the kit in")
    k8s.add_argument("--kit", type=Path, metavar="FILE", help="a kit built by `envcheck kit build` (default: build one "
                                                                "from --golden)")
    _golden_option(k8s)
    k8s.add_argument("--kind", choices=KINDS, default="job", help="job: one run (default); pod: one bare pod; "
                                                                  "daemonset: one run per node")
    k8s.add_argument("--nodes", action="append", type=_node_selector, metavar="KEY=VALUE",
                     help="run only on nodes with these labels (repeatable, or comma-separated)")
    k8s.add_argument("--gpus", type=_positive_int, metavar="N", help="request N NVIDIA GPUs per pod (nvidia.com/gpu)")
    k8s.add_argument("--site", type=_site_name, metavar="NAME",
                     help="recorded in each capture (a DaemonSet's adds /NODE: its node's name)")
    k8s.add_argument("--python", default="python3", metavar="PATH",
                     help="the interpreter production uses in the image (default python3)")
    k8s.set_defaults(run=command_kit_k8s)


def _node_selector(text: str) -> dict[str, str]:
    from envcheck.kit_k8s import parse_node_selector

    try:
        return parse_node_selector(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_golden_commands(commands) -> None:
    golden = commands.add_parser("golden", help="create or verify a golden bundle")
    golden_commands = golden.add_subparsers(dest="golden_command", required=True, metavar="ACTION")
    create = golden_commands.add_parser(
        "create", help="run a model in a reference target and save the bundle",
        description="Create a golden bundle: run the model in the reference target, record outputs and fingerprint.",
        epilog="examples:\n  envcheck golden create --builtin --out golden/default --force\n"
               "  envcheck golden create --model saved/ --target docker:reference --out golden/ref\n"
               "  envcheck golden create --model saved/ --samples 10000 --batch-size 256 --out golden/large",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--builtin", action="store_true", help="rebuild the built-in model and inputs from code")
    source.add_argument("--model", type=Path, metavar="SAVEDMODEL_DIR", help="a SavedModel with serving_default")
    given = create.add_mutually_exclusive_group()
    given.add_argument("--inputs", type=Path, metavar="FILE.npz",
                       help="golden inputs keyed by signature input name (default: seeded from the signature)")
    given.add_argument("--samples", type=_positive_int, metavar="N",
                       help="generate N seeded samples from the signature (standard-normal floats, small integers, "
                            "the last rows zeros, ±3 and wide noise); default 16, the built-in model's own 28 rows")
    # (--help imports nothing heavy: the default is targets/probe_app.py's DEFAULT_BATCH_SIZE, applied by
    # golden_create; tests/test_golden.py checks that the help text names it.)
    create.add_argument("--batch-size", type=_positive_int, metavar="N",
                        help="samples per call of the model, here and in every probe of this golden (default 256; "
                             "outputs depend on it in the last bits): large sets run in bounded memory")
    create.add_argument("--target", default="host", metavar="SPEC", help="reference target (default host)")
    create.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    create.add_argument("--force", action="store_true", help="replace an existing golden bundle (nothing else)")
    create.add_argument("--allow-nonfinite", action="store_true", help="accept NaN/Inf in the golden inputs")
    create.add_argument("--description", default="", help="free text stored in the manifest")
    create.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                        help="skip measuring the reference's noise under benign perturbations (faster; the "
                             "tolerance is then the policy's alone)")
    create.add_argument("--tflite", action="store_true",
                        help="also convert the model to TFLite in the reference target and keep model.tflite and its "
                             "outputs, so edge boxes with only a TFLite runtime can be checked (a model that does not "
                             "convert is recorded as unsupported)")
    create.add_argument("--edge", action="store_true",
                        help="with --builtin: the built-in model's edge variant (no attention or GRU), with --tflite")
    create.add_argument("--no-layers", dest="layers", action="store_false",
                        help="record no layer summaries (then no check of this golden can say where in the model "
                             "outputs drift)")
    _timeout_option(create)
    _docker_options(create)
    create.set_defaults(run=command_golden_create)
    calibrate = golden_commands.add_parser(
        "calibrate", help="measure an existing bundle's noise in a reference target and re-seal its manifest",
        description="Run the bundle's model in the reference target under benign perturbations (a repeat, a fresh "
                    "process, one sample at a time, one intra-op thread, Grappler's remapper off; on x86 oneDNN off "
                    "and a lower ISA cap), store the noise and the calibrated tolerance in the manifest and re-seal "
                    "it (its sha256 changes: re-pin --golden-sha256). Run it where the golden was made.",
        epilog="examples:\n  envcheck golden calibrate golden/vision\n"
               "  envcheck golden calibrate golden/vision --target docker:reference",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrate.add_argument("path", type=Path, help="bundle directory")
    calibrate.add_argument("--target", default="host", metavar="SPEC", help="reference target (default host)")
    _timeout_option(calibrate)
    _docker_options(calibrate)
    calibrate.set_defaults(run=command_golden_calibrate)
    verify = golden_commands.add_parser("verify", help="check a bundle against its sha256 manifest")
    verify.add_argument("path", type=Path, nargs="?", help="bundle directory (default: built-in)")
    verify.set_defaults(run=command_golden_verify)


def _golden_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--golden", type=Path, metavar="DIR",
                        help="golden bundle directory, or builtin:edge for the built-in edge golden (default: the "
                             "built-in golden/default)")
    parser.add_argument("--golden-sha256", metavar="HASH", type=_sha256_prefix,
                        help="refuse a golden whose manifest sha256 is not HASH (at least 12 hex digits): "
                             "CI pins the exact bundle it trusts")


def _probing_options(parser: argparse.ArgumentParser, *, many_targets: bool, recorded_in: str, layers: str) -> None:
    """Where to probe (--target, --site) and how (--timeout, --layers from `layers`, the docker options)."""
    if many_targets:
        parser.add_argument("--target", action="append", metavar="SPEC", dest="targets",
                            help="host | python:PATH | docker:IMAGE (repeatable; default: host)")
    else:
        parser.add_argument("--target", default="host", metavar="SPEC", help="host | python:PATH | docker:IMAGE")
    parser.add_argument("--site", type=_site_name, help=f"factory or site name recorded in the {recorded_in}")
    _timeout_option(parser)

    # No default here: None leaves the target's own (targets/probe_app.py), so `--help` imports nothing.
    parser.add_argument("--latency-budget", type=_non_negative_seconds, metavar="S",
                        help="at most S seconds timing batch-1 calls after the outputs are captured, fewer once "
                             "the P50 and P99 are stable (default 2; 0 disables)")
    recording = parser.add_mutually_exclusive_group()
    recording.add_argument("--layers", type=_layers_mode, default=LAYER_MODES[layers], metavar="auto|always|never",
                           help="record layer summaries, from which drift is localised, when the golden has a layer "
                                "record: only when an output is not bitwise the golden's (auto), always, or never "
                                f"(default {layers}; a golden made before output digests: always)")
    recording.add_argument("--no-layers", dest="layers", action="store_false", help="--layers never")
    parser.add_argument("--integrity", choices=("full", "numerics", "off"),
                        help="installed files checked against their RECORD and dpkg, and start-up code recorded: "
                             "every distribution's (full), those of numerics (default: numerics) or none (off)")
    parser.add_argument("--verify-signature", type=Path, metavar="POLICY",
                        help="verify with skopeo that each docker: image is signed as the containers policy.json "
                             "POLICY requires (signedBy), and is the image the daemon runs; unverified fails")
    parser.add_argument("--signed-ref", metavar="REF",
                        help="where the signed image lives, as skopeo names it (dir:PATH, docker://REGISTRY/NAME:TAG; "
                             "default docker://IMAGE); one docker: target only")
    _docker_options(parser)
    _endpoint_options(parser)


def _endpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoint targets (v2+http://, tfserving+http://; https for TLS)")
    group.add_argument("--token-env", metavar="VAR", help="send the bearer token held in environment variable VAR")
    group.add_argument("--token-file", metavar="FILE", help="send the bearer token held in FILE")
    group.add_argument("--ca-bundle", metavar="PEM", help="trust these certificate authorities for https endpoints")
    group.add_argument("--client-cert", metavar="PEM", help="client certificate for https endpoints (mutual TLS)")
    group.add_argument("--client-key", metavar="PEM", help="the client certificate's key, when not in --client-cert")
    group.add_argument("--repeat", type=_repeat_count, metavar="R",
                       help="send the golden set R more times (R >= 2), each over a fresh connection, and name every "
                            "distinct answer set: replicas behind a load balancer that compute differently")
    group.add_argument("--replica-header", metavar="NAME",
                       help="the response header naming the replica that answered (e.g. nginx's $upstream_addr): "
                            "--repeat then names the odd replica")
    group.add_argument("--concurrency", type=_positive_int, metavar="N",
                       help="then N closed-loop clients under load for --duration or --requests: P50/P95/P99 and "
                            "errors, judged against the policy's [latency] p99_ms")
    group.add_argument("--duration", type=_positive_seconds, metavar="SECONDS", help="how long the load run lasts")
    group.add_argument("--requests", type=_positive_int, metavar="COUNT",
                       help="how many requests the load run sends in all (with --duration: whichever comes first)")


def _endpoint_auth(specs: list[str], args: argparse.Namespace):
    """The endpoint targets' Auth, read before anything runs (None without an endpoint target)."""
    if not any("+" in spec.partition(":")[0] for spec in specs):
        return None
    from envcheck.targets.endpoint_client import Auth

    return Auth.from_options(getattr(args, "token_env", None), getattr(args, "token_file", None),
                             getattr(args, "ca_bundle", None), getattr(args, "client_cert", None),
                             getattr(args, "client_key", None))


def _serving_checks(args: argparse.Namespace):
    """The endpoint targets' replica and load runs (None when not asked for); UsageError for options that do not fit."""
    options = {key: getattr(args, key, None) for key in ("repeat", "replica_header", "concurrency", "requests")}
    if not any(value is not None for value in (*options.values(), getattr(args, "duration", None))):
        return None  # (nothing asked: the endpoint module is not imported)
    from envcheck.targets.endpoint import ServingChecks

    return ServingChecks.from_options(duration_s=getattr(args, "duration", None), **options)


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"seconds one target may take (default {DEFAULT_TIMEOUT_S:g})")


def _comparison_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, metavar="FILE", help="TOML policy overriding tolerances and severities")
    parser.add_argument("--fail-on", choices=("warn", "fail"), default="fail",
                        help="'warn' makes WARN targets fail the gate too (default: fail)")
    add_report_options(parser)
    parser.add_argument("--reports-dir", type=Path, default=Path(DEFAULT_REPORTS_DIR), metavar="DIR",
                        help=f"every run's JSON report is kept here (default {DEFAULT_REPORTS_DIR}/)")
    parser.add_argument("--no-reports", action="store_true", help="do not keep a JSON report in --reports-dir")


def _docker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("docker targets")
    group.add_argument("--docker-host", metavar="URL", type=_docker_host,
                       help="daemon to use (unix://, tcp://, ssh://; default DOCKER_HOST)")
    group.add_argument("--pull", action="store_true", help="pull an image that is not present (default: never pull)")
    group.add_argument("--memory", type=_memory_limit, metavar="LIMIT",
                       help="memory limit for probe containers, e.g. 2g or 512m (no swap)")
    group.add_argument("--gpus", type=_gpu_request, metavar="all|N", help="request GPUs for probe containers")

    def cpu_limit(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of CPUs (e.g. 0.5, 2)") from None
        if not math.isfinite(value) or value < 0.01:  # Docker refuses a quota below 1/100 of a CPU
            raise argparse.ArgumentTypeError(f"must be a number of CPUs of at least 0.01, got {text!r}")
        return value

    group.add_argument("--cpus", type=cpu_limit, metavar="N",
                       help="CPU limit for probe containers, e.g. 0.5 (reproduces a factory box's quota)")
    group.add_argument("--image-python", metavar="PATH", help="interpreter inside images (default: python3, then python)")


LAYER_MODES: dict[str, bool | None] = {"auto": None, "always": True, "never": False}
"""--layers as a target's `layers` (targets/probe_app.py): None leaves the probe's own auto."""


def _layers_mode(text: str) -> bool | None:
    if text not in LAYER_MODES:
        raise argparse.ArgumentTypeError(f"expected auto, always or never, got {text!r}")
    return LAYER_MODES[text]


def _repeat_count(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("must be at least 2: one answer set cannot disagree with itself")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    if value > MAX_TIMEOUT_S:  # the clocks and waits underneath overflow far beyond this
        raise argparse.ArgumentTypeError(f"at most {MAX_TIMEOUT_S:g} seconds (a week), got {text!r}")
    return value


MEMORY_LIMIT = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MIN_MEMORY_BYTES = 6 << 20  # Docker refuses a smaller container memory limit


def _docker_host(text: str) -> str:
    from envcheck.targets import check_docker_host

    try:
        return check_docker_host(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number of seconds, got {text!r}")
    return value


def _memory_limit(text: str) -> str:
    """Docker's own syntax (bytes, or a number with b/k/m/g), checked here so a typo is a usage error."""
    match = MEMORY_LIMIT.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size (e.g. 512m, 2g)")
    if int(match[1]) * MEMORY_UNITS[match[2].lower()] < MIN_MEMORY_BYTES:
        raise argparse.ArgumentTypeError(f"{text!r} is below Docker's minimum of 6m")
    return text.strip()


def _gpu_request(text: str) -> str:
    if text == "all" or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(f"expected 'all' or a number of GPUs, got {text!r}")


def _sha256_prefix(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{12,64}", text):
        raise argparse.ArgumentTypeError(f"expected 12 to 64 hex digits of a sha256, got {text!r}")
    return text.lower()


def _site_list(text: str) -> list[str]:
    """`a,b`: an empty list (an unset CI variable, `--sites ""`) is an error, never "every site"."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("names no site (leave --sites out to check every site)")
    return names


def _site_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("a site name cannot be empty")
    if len(name) > 200 or any(not character.isprintable() for character in name):
        raise argparse.ArgumentTypeError("a site name is one line of at most 200 printable characters")
    return name


# ----------------------------------------------------------------------------------- commands

def _targets(specs: list[str], args: argparse.Namespace):
    import dataclasses

    from envcheck.targets import parse_target

    docker = {"docker_host": args.docker_host, "pull": args.pull, "memory": args.memory, "gpus": args.gpus,
              "image_python": args.image_python, "cpus": getattr(args, "cpus", None),
              "signature": _signature_check(specs, args)}
    # `golden create` has no --latency-budget: its reference latency is measured with the default budget.
    budget = getattr(args, "latency_budget", None)
    latency = {} if budget is None else {"latency_budget": budget}
    auth = _endpoint_auth(specs, args)
    targets = [parse_target(spec, layers=getattr(args, "layers", None), endpoint_auth=auth, **latency, **docker)
               for spec in specs]
    serving = _serving_checks(args)
    if serving is not None:
        from envcheck.targets.endpoint import with_serving_checks

        targets = with_serving_checks(targets, serving)
    integrity = getattr(args, "integrity", None)  # None leaves the target's own (targets/host.py)
    return targets if integrity is None else [dataclasses.replace(t, integrity=integrity)  # type: ignore[type-var]
                                                   for t in targets]


def _signature_check(specs: list[str], args: argparse.Namespace):
    """--verify-signature and --signed-ref, checked before anything runs (None when not asked for)."""
    from envcheck.targets.provenance import SignatureCheck

    return SignatureCheck.from_options(getattr(args, "verify_signature", None), getattr(args, "signed_ref", None),
                                       docker_targets=sum(spec.startswith("docker:") for spec in specs))


def _golden_and_policy(args: argparse.Namespace):
    """The verified golden and the policy; the policy's loosenings are said in words before anything runs."""
    from envcheck.check import layered_policy, load_pinned_golden

    golden = load_pinned_golden(args.golden, args.golden_sha256)
    policy, record = layered_policy(golden, args.policy)
    for warning in record["warnings"]:
        warn(f"warning: {warning}")
    return golden, policy, record


def command_check(args: argparse.Namespace) -> int:
    """`envcheck check`: probe the targets, compare them with the golden, report, exit 0/1/3."""
    from envcheck.check import check_targets

    golden, policy, record = _golden_and_policy(args)
    targets = _targets(args.targets or ["host"], args)
    _check_writable(args)
    _preload_verdict(args)
    with _progress([t.spec for t in targets]) as progress:
        report = check_targets(golden, targets, policy, record, timeout=args.timeout, jobs=args.jobs,
                               site=args.site, fail_on=args.fail_on, progress=progress)
    return _publish(report, args)


def command_compare(args: argparse.Namespace) -> int:
    """`envcheck compare`: judge captures made elsewhere (folders, or the kit's tar.gz) against the golden."""
    from envcheck.check import compare_captures

    golden, policy, record = _golden_and_policy(args)
    _check_writable(args)
    return _publish(compare_captures(golden, args.captures, policy, record, args.fail_on), args)


def command_probe(args: argparse.Namespace) -> int:
    """`envcheck probe`: capture one target into --out, to be sent back and compared elsewhere."""
    from envcheck.check import load_pinned_golden, probe_to_directory
    from envcheck.model import TargetFailure

    golden = load_pinned_golden(args.golden, args.golden_sha256)
    (target,) = _targets([args.target], args)
    _check_capture_destination(args.out)
    with _progress([target.spec]) as progress:
        outcome = probe_to_directory(golden, target, args.out, timeout=args.timeout, site=args.site, raw=args.raw,
                                     progress=progress)
    if isinstance(outcome, TargetFailure):
        warn(f"{target.spec}: {outcome.message}")
        warn(f"the partial capture is in {args.out}; send it back for diagnosis")
        return ExitCode.UNDECIDED
    golden_option = "" if args.golden is None else f" --golden {shlex.quote(str(args.golden))}"
    say(f"capture written to {args.out} — send this directory back; at headquarters run:\n"
         f"  envcheck compare {shlex.quote(str(args.out))}{golden_option}")
    return ExitCode.OK


def _check_capture_destination(out: Path) -> None:
    """Before probing: --out is a new directory, an empty one, or an earlier capture to replace."""
    from envcheck.capture import CAPTURE_FILE, OUTPUTS_FILE, TFLITE_OUTPUTS_FILE
    from envcheck.destinations import check_folder_destination

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if out.is_dir():
        unexpected = sorted(p.name for p in out.iterdir() if p.name not in (CAPTURE_FILE, OUTPUTS_FILE,
                                                                                      TFLITE_OUTPUTS_FILE))
        if unexpected:
            raise UsageError(f"--out {out}: directory holds other files ({', '.join(unexpected[:3])}); "
                             "choose a new or empty directory")
    check_folder_destination(out, f"the capture to --out {out}")


def command_kit_build(args: argparse.Namespace) -> int:
    """`envcheck kit build`: the probe and the golden in one file, its sha256 and envcheck's version said."""
    from envcheck.check import load_pinned_golden
    from envcheck.destinations import check_file_destination
    from envcheck.files import atomic_write_bytes
    from envcheck.kit import build_kit

    golden = load_pinned_golden(args.golden, args.golden_sha256)
    check_file_destination(args.out, "the kit")
    kit = build_kit(golden, None if args.golden is None else str(args.golden))
    try:
        atomic_write_bytes(args.out, kit.data)
    except OSError as error:
        raise EnvcheckError(f"cannot write the kit {args.out}: {error.strerror or error}") from None
    say(f"kit written to {args.out} ({len(kit.data) / 1e3:.0f} kB): envcheck {kit.envcheck_version}, golden "
        f"{kit.golden_sha256}\n  sha256 {kit.sha256}\n"
        f"on the box, with the Python production uses:\n  python3 {shlex.quote(args.out.name)} --site NAME "
        "--out capture.tar.gz")
    return ExitCode.OK


def command_kit_k8s(args: argparse.Namespace) -> int:
    """`envcheck kit k8s`: the manifests that run a kit (given, or built from --golden) in a production image."""
    import errno

    from envcheck.files import read_regular_file
    from envcheck.kit_k8s import MAX_CONFIGMAP_BYTES, KitManifests, manifests, read_kit, refuse_past_configmap, render

    if args.kit is not None and (args.golden is not None or args.golden_sha256):
        raise UsageError("--kit and --golden: give one (a kit already holds its golden)")
    if args.kit is not None:
        try:
            kit = read_kit(read_regular_file(args.kit, MAX_CONFIGMAP_BYTES), str(args.kit))
        except OSError as error:
            if error.errno == errno.EFBIG:
                refuse_past_configmap(args.kit.stat().st_size)
            raise UsageError(f"--kit {args.kit}: {error.strerror or error}") from None
    else:
        from envcheck.check import load_pinned_golden
        from envcheck.kit import build_kit

        golden = load_pinned_golden(args.golden, args.golden_sha256)
        kit = build_kit(golden, None if args.golden is None else str(args.golden)).data
    nodes = {key: value for selector in args.nodes or [] for key, value in selector.items()}
    spec = KitManifests(kit=kit, image=args.image, kind=args.kind, nodes=nodes, gpus=args.gpus, site=args.site,
                        python=args.python)
    say(render(manifests(spec)))
    return ExitCode.OK


def command_kit_collect(args: argparse.Namespace) -> int:
    """`envcheck kit collect`: the capture a kit framed in a log, checked, written as the tar.gz compare reads."""
    from envcheck.destinations import check_file_destination
    from envcheck.files import atomic_write_bytes
    from envcheck.kit_collect import collect_capture

    check_file_destination(args.out, "the capture")
    source = "stdin" if args.log == "-" else args.log
    try:
        if args.log == "-":
            capture = collect_capture(sys.stdin, source)
        else:
            with open(args.log, encoding="utf-8", errors="replace") as log:
                capture = collect_capture(log, source)
    except OSError as error:
        raise UsageError(f"{source}: {error.strerror or error}") from None
    try:
        atomic_write_bytes(args.out, capture.data)
    except OSError as error:
        raise EnvcheckError(f"cannot write {args.out}: {error.strerror or error}") from None
    say(f"capture written to {args.out} ({len(capture.data) / 1e3:.0f} kB, sha256 {capture.sha256}); now run:\n"
        f"  envcheck compare {shlex.quote(str(args.out))}")
    return ExitCode.OK


def command_fleet_run(args: argparse.Namespace) -> int:
    """`envcheck fleet run`: every site of the inventory, concurrently; a report per site; the worst exit code."""
    from envcheck.destinations import check_folder_destination
    from envcheck.fleet import load_inventory, run_fleet, select, worst_exit_code

    sites = select(load_inventory(args.inventory), args.sites)
    index = {site.name: number for number, site in enumerate(sites)}
    cache_dir = None if args.no_cache else (args.cache or args.reports_dir / ".cache")
    for folder, what in ((args.reports_dir, "the site reports"), (cache_dir, "the capture cache")):
        if folder is not None:
            check_folder_destination(folder, f"{what} to {folder}")
    with _progress([f"{site.name} ({site.docker_host or 'local daemon'})" for site in sites], doing="checking…",
                   done="checked") as progress:
        runs = run_fleet(sites, args.reports_dir, jobs=args.jobs, timeout=args.timeout, fail_on=args.fail_on,
                         cache_dir=cache_dir,
                         on_start=lambda site: progress.started(index[site.name], site.name),
                         on_finish=lambda run: progress.finished(index[run.site.name], run.site.name, run))
    for run in runs:
        say(f"{run.site.name:<20} exit {run.exit_code}  {_site_outcome(run)}"
             + (f"  report: {run.path}" if run.path else ""))
    code = worst_exit_code(runs)
    say(f"exit {code} — " + EXIT_WORDS[code])
    return code


def _site_outcome(run) -> str:  # (run: fleet.SiteRun)
    """`2 IDENTICAL · 1 ERROR (image-not-found)`, or why the site could not be checked at all."""
    if run.report is None:
        return f"not checked: {run.error}"
    from collections import Counter

    counts = Counter(target.verdict for target in run.report.targets)
    errors = sorted({target.error.kind for target in run.report.targets if target.error})
    cached = sum(1 for target in run.report.targets if (target.target_info.get("cache") or {}).get("hit"))
    return " · ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) + (
        f" ({', '.join(errors)})" if errors else "") + (f", {cached} from the cache" if cached else "")


def command_fleet_status(args: argparse.Namespace) -> int:
    """`envcheck fleet status`: the latest stored verdict per site."""
    from envcheck.fleet import fleet_status

    found = fleet_status(args.reports_dir)
    if not found:
        warn(f"no site reports under {args.reports_dir} (run `envcheck fleet run` first)")
        return ExitCode.UNDECIDED
    for entry in found:
        if entry.problem:
            say(f"{entry.site:<20} ?      {entry.problem}")
            continue
        verdicts = " · ".join(f"{n} {v}" for v, n in sorted(entry.verdicts.items()))
        say(f"{entry.site:<20} {entry.worst or '-':<9} {entry.created}  exit {entry.exit_code}  {verdicts}")
    return ExitCode.OK


def command_gc(args: argparse.Namespace) -> int:
    """`envcheck gc`: remove the probe containers that runs ended by SIGKILL left behind."""
    from envcheck.targets.gc import remove_leftovers

    removed = remove_leftovers(args.docker_host, args.older_than, args.run)
    say(f"removed {len(removed)} probe container{'s' * (len(removed) != 1)}" + (f": {', '.join(removed)}" if removed else ""))
    return ExitCode.OK


EXIT_WORDS = {0: "every site matched the golden within policy", 1: "drift at one or more sites",
              3: "one or more sites could not be decided"}


def command_review(args: argparse.Namespace) -> int:
    """Review many JSON reports: the terminal view first, then the CSV and HTML files, each written atomically."""
    from envcheck.destinations import check_file_destination
    from envcheck.files import atomic_write_text
    from envcheck.report.fleet_terminal import render_review, skipped_lines
    from envcheck.review import review

    for destination, what in ((args.csv, "the CSV table"), (args.html, "the HTML review"),
                              (args.metrics, "the metrics")):
        if destination:
            check_file_destination(destination, what)
    result = review(args.paths, args.since)
    if result.missing:
        warn(f"no such file or directory: {', '.join(result.missing)}")
    if result.nothing_read:
        for line in skipped_lines(result.skipped):
            warn(line)
        warn("error: no report could be read")
        return ExitCode.UNDECIDED
    show(render_review(result))
    # Each file's renderer is imported only when its file is asked for (the HTML one brings its templates).
    if args.csv:
        from envcheck.report.fleet_csv import render_review_csv
        atomic_write_text(args.csv, render_review_csv(result))
    if args.html:
        from envcheck.report.fleet_html import render_review_html
        atomic_write_text(args.html, render_review_html(result))
    if args.metrics:
        from envcheck.report.fleet_metrics import render_review_metrics
        atomic_write_text(args.metrics, render_review_metrics(result))
    written = [str(p) for p in (args.csv, args.html, args.metrics) if p]
    if written:
        say(f"written: {', '.join(written)}")
    return ExitCode.OK


def command_golden_create(args: argparse.Namespace) -> int:
    """`envcheck golden create`: run the model in the reference target and write a verified bundle."""
    from envcheck.golden_create import create_golden
    from envcheck.targets.probe_app import DEFAULT_BATCH_SIZE

    if args.edge and not args.builtin:
        raise UsageError("--edge builds the built-in model's edge variant: use it with --builtin")
    targets = _targets([args.target], args)
    path = create_golden(out=args.out, target=targets[0], builtin=args.builtin, model=args.model,
                         inputs=args.inputs, description=args.description, force=args.force,
                         timeout=args.timeout, allow_nonfinite=args.allow_nonfinite, calibrated=args.calibrate,
                         samples=args.samples, batch_size=args.batch_size or DEFAULT_BATCH_SIZE, layers=args.layers,
                         tflite=args.tflite or args.edge, edge=args.edge)
    say(f"golden bundle written to {path}")
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    say(_layers_line(manifest.get("layers")))
    if "tflite" in manifest:
        say(_tflite_line(manifest["tflite"]))
    return ExitCode.OK


def command_golden_calibrate(args: argparse.Namespace) -> int:
    """`envcheck golden calibrate`: add the reference's noise and calibrated tolerances to a bundle."""
    from envcheck.golden_create import calibrate_golden

    targets = _targets([args.target], args)
    golden, apart = calibrate_golden(args.path, targets[0], args.timeout)
    if apart is not None:
        warn(f"warning: {targets[0].spec} computes the golden's outputs differently (up to {apart:.3g} apart): "
             "its noise is measured, but calibrate where the golden was made")
    calibration = golden.calibration or {}
    skipped = [name for name, entry in calibration.get("perturbations", {}).items() if "skipped" in entry]
    noise = ", ".join(f"{name} noise {entry['noise']:.3g} → atol {entry['atol']:.3g}"
                      for name, entry in sorted(calibration.get("outputs", {}).items()))
    say(f"{golden.path}: calibrated ({noise}); re-sealed, sha256 {golden.sha256}")
    if skipped:
        warn(f"warning: perturbations skipped here: {', '.join(skipped)} (see the manifest's calibration)")
    return ExitCode.OK


def command_golden_verify(args: argparse.Namespace) -> int:
    """`envcheck golden verify`: check a bundle against its sha256 manifest and say what it holds."""
    from envcheck.compare.calibration import calibrated_layer
    from envcheck.compare.policy import build_policy
    from envcheck.compare.policy_record import loosenings
    from envcheck.golden import load_golden

    golden = load_golden(args.path)
    say(f"{golden.path}: OK — {len(golden.manifest['files'])} files match the manifest "
          f"(sha256 {golden.sha256}), outputs: {', '.join(sorted(golden.expected))}")
    for warning in loosenings(golden.policy):
        warn(f"warning: the golden's own policy loosens the defaults: {warning}")
    for warning in loosenings(calibrated_layer(golden.calibration, build_policy(golden.policy))):
        warn(f"warning: the golden's calibration loosens the defaults: {warning}")
    say(_layers_line(golden.manifest.get("layers")))
    if "tflite" in golden.manifest:
        say(_tflite_line(golden.manifest["tflite"]))
    return ExitCode.OK


def _tflite_line(summary: dict) -> str:
    """What the golden's TFLite model lets edge targets be checked against."""
    if summary.get("status") != "ok":
        return f"tflite: unsupported ({summary.get('reason')}); the SavedModel golden is unaffected"
    return (f"tflite: model.tflite (schema {summary.get('schema_version')}, converted by TensorFlow "
            f"{summary.get('tensorflow')}), expected outputs from {summary.get('runtime')} {summary.get('version')}")


def _layers_line(summary: dict | None) -> str:
    """What the golden's layer record lets checks say about where outputs drift."""
    if not summary:
        return "layers: none recorded (checks cannot localise drift; recreate the golden to record them)"
    if summary.get("status") != "ok":
        return f"layers: unsupported ({summary.get('reason')}); checks still compare the outputs"
    return (f"layers: {summary.get('tensors')} tensors recorded on {summary.get('samples')} samples "
            "(checks localise drift to the first divergent operation)")


# -------------------------------------------------------------------------------------- output

def _report_paths(args: argparse.Namespace):
    """(path, format) of every report this run writes; JSON last, so it can record a failed write. Decided
    once per run (the kept report's name is stamped when first asked)."""
    from envcheck.files import report_file_name
    from envcheck.report.registry import BY_NAME, requested

    if getattr(args, "report_paths", None) is None:
        paths = [(path, fmt) for path, fmt in requested(args) if fmt.name != "json"]
        args.target_sboms = None
        if not args.no_reports:
            paths.append((args.reports_dir / report_file_name(), BY_NAME["json"]))
            args.target_sboms = paths[-1][0].with_suffix(".sbom")  # beside the kept report, stamped as it is
        if args.json:
            paths.append((args.json, BY_NAME["json"]))
        args.report_paths = paths
    return args.report_paths


def _check_writable(args: argparse.Namespace) -> None:
    """Before any target runs: every report destination can be written (exit 3 now, not after an hour)."""
    from envcheck.destinations import check_file_destination

    for destination, _ in _report_paths(args):
        check_file_destination(Path(destination), "report")


def _publish(report, args: argparse.Namespace) -> int:
    """Write every requested report atomically, then print the verdicts: the exit code and the reports never
    depend on a reader that left.

    A report that cannot be written is one more line and exit 3; the JSON reports then say so too,
    so the JSON's exit_code always equals the process's."""
    from envcheck.files import atomic_write_text
    from envcheck.report.json import report_to_dict
    from envcheck.report.terminal import render_plain, render_terminal
    from envcheck.report.view import build_view

    document = report_to_dict(report)
    view = build_view(document)
    args.outcome = report.exit_code
    written: list[str] = []
    problems: list[str] = []
    report_paths = _report_paths(args)
    if args.target_sboms is not None:  # before the JSON reports, so that they can record a failed write
        _write_target_sboms(document, args.target_sboms, written, problems)
    for path, fmt in report_paths:
        if fmt.from_document and problems:
            document["exit_code"] = int(ExitCode.UNDECIDED)
            document["publish_errors"] = problems
        try:
            atomic_write_text(path, fmt.render(document, view))
            written.append(str(path))
        except OSError as error:
            problems.append(f"cannot write report {path}: {error.strerror or error}")
    if problems:
        args.outcome = ExitCode.UNDECIDED
    if console.is_terminal(sys.stdout):
        show(render_terminal(view))
    else:  # a CI log: plain lines, one per target, names never cut
        say(render_plain(view).rstrip("\n"))
    for problem in problems:
        warn(problem)
    if written:
        say(f"reports: {', '.join(written)}")
    return int(args.outcome)


def _write_target_sboms(document: dict, folder: Path, written: list[str], problems: list[str]) -> None:
    """One CycloneDX SBOM per target in a new folder beside the kept JSON report (docs/sbom.md), each written
    atomically. The folder is made here, never reused: whatever already has its name is not written through."""
    from envcheck.files import atomic_write_text
    from envcheck.report.sbom import render_target_sboms

    try:
        folder.mkdir(parents=True)
        for name, text in render_target_sboms(document):
            atomic_write_text(folder / name, text)
    except OSError as error:
        problems.append(f"cannot write the per-target SBOMs in {folder}: {error.strerror or error}")
    else:
        written.append(f"{folder}/")


def _preload_verdict(args: argparse.Namespace) -> None:
    """Import (and warm) what judging and reporting need in the background, once the first probe is under way
    (targets.base.UNDER_WAY; PRELOAD_WAIT_S at most): this process only waits for the probes then, so the verdict
    and the reports follow the last capture at once, while before that the imports' CPU and GIL would slow the
    probes' start (bench/bench_check.py)."""
    import threading

    from envcheck.targets.base import UNDER_WAY

    report_paths = _report_paths(args)
    modules = ["rich.table", "rich.panel", "envcheck.report.json", "envcheck.report.view",
               "envcheck.report.terminal", *(fmt.module for _, fmt in report_paths)]
    sbom = args.target_sboms is not None or any(fmt.name == "sbom" for _, fmt in report_paths)

    def load() -> None:
        UNDER_WAY.wait(PRELOAD_WAIT_S)
        from envcheck.compare.fingerprint import import_deepdiff

        import_deepdiff()
        for name in modules:
            importlib.import_module(name)
        if sbom:
            from envcheck.report.sbom import warm_up

            warm_up()

    threading.Thread(target=load, name="envcheck-preload", daemon=True).start()


class _progress:
    """Progress on stderr while targets run: a live line per target on a terminal, a plain line per
    start and finish otherwise (CI logs: rich's live display is then not even imported). Names are data, never
    markup."""

    def __init__(self, specs: list[str], doing: str = "probing…", done: str = "captured"):
        import time

        self.clock = time.monotonic
        self.doing, self.done = doing, done
        self.began: dict[int, float] = {}
        self.total = len(specs)
        self.progress, self.tasks = _live_display(specs) if console.is_terminal(sys.stderr) else (None, [])

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc) if self.progress is not None else None

    def started(self, index: int, spec: str) -> None:
        self.began[index] = self.clock()
        if self.progress is None:
            warn(f"[{index + 1}/{self.total}] {spec}: {self.doing}")
            return
        self.progress.start_task(self.tasks[index])
        self.progress.update(self.tasks[index], state=f"[cyan]{self.doing}")

    def finished(self, index: int, spec: str, outcome) -> None:
        failed = getattr(outcome, "kind", None)
        if self.progress is None:
            seconds = self.clock() - self.began.get(index, self.clock())
            warn(f"[{index + 1}/{self.total}] {spec}: {'failed: ' + failed if failed else self.done} "
                 f"({seconds:.1f} s)")
            return
        from rich.markup import escape

        state = f"[magenta]failed: {escape(console.neutral(failed))}" if failed else f"[green]{escape(self.done)}"
        self.progress.update(self.tasks[index], state=state, completed=1)
        self.progress.stop_task(self.tasks[index])


def _live_display(specs: list[str]):
    """rich's live progress display on stderr, and a task (queued) per target."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                        TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
                        console=console.rich_console(stderr=True), transient=False)
    return progress, [progress.add_task(console.neutral(spec), state="queued", start=False, total=1) for spec in specs]


def main(argv: list[str] | None = None) -> int:
    """Run one command; every way out is an exit code from the contract, never a traceback."""
    with console.guarded():
        return _run(argv)


def run() -> None:
    """The `envcheck` program (and `python -m envcheck`): main(), then exit with its code.

    By then every report is written and every container removed; what is left is freed as the process exits,
    where the interpreter's last garbage collections would walk the whole heap (docker, numpy, deepdiff, cyclonedx):
    0.17 s from main()'s end to the process's for a check of an image, 0.03 s frozen (measured by hand on a 2-CPU VM).
    Frozen objects are only skipped by the collector; atexit handlers still run."""
    status = main()
    gc.freeze()
    sys.exit(status)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # CI systems cancel a job with SIGTERM
    try:
        return int(args.run(args))
    except EnvcheckError as error:
        warn(f"error: {error}")
        return int(error.exit_code)
    except KeyboardInterrupt as interrupt:
        signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
        warn(f"interrupted ({signal.Signals(signum).name}): stopped what was running (probe containers removed); "
             "nothing partial written")
        return 128 + signum
    except Exception as error:  # noqa: BLE001 - the gate's last line of defence: exit 1 means drift only
        if args.debug:
            traceback.print_exc()
        warn(f"internal error: {type(error).__name__}: {_first_line(error)} "
             f"({'traceback above' if args.debug else 'rerun with --debug for the traceback'})")
        return int(ExitCode.UNDECIDED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame) -> None:
    raise Interrupted(signum)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"
