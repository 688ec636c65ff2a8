"""Every command of envcheck, one line each: how to run it on good input, and the exit code it must give.

The contract tests (streams, destinations, cancellation, data strings) run each entry under hostile
conditions and hold it to the same code. A new command or option joins them all by one line in COMMANDS.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import envcheck
from envcheck.report.registry import FORMATS
from helpers import RECORDED_REPORTS, TF_OLDER_PYTHON, hanging_interpreter, make_tls, write_reports
from hostile.cases import golden_copy, good_capture


@dataclass(frozen=True)
class Command:
    id: str
    make: Callable[[Path], list[str]]
    """Builds the command's input under the given folder; returns argv for `envcheck`."""
    code: int
    """The exit code it must give, whatever happens to its streams."""
    writes: str | None = None
    """The option naming what it writes (the destination tests point it at hostile places)."""
    folder: bool = False
    """`writes` names a folder, not a file."""
    says: str | None = None
    """Words its stderr must hold when it is readable (why it could not decide)."""
    needs: str | None = None
    """Infrastructure beyond Python: 'tensorflow', 'tf-older' (the older-TensorFlow interpreter), 'docker'."""

    @property
    def slow(self) -> bool:
        """It runs TensorFlow: the contract runs it under fewer conditions."""
        return self.needs is not None


def drifted_capture(root: Path) -> Path:
    """A capture of the built-in golden whose outputs moved far past any tolerance: a FAIL (exit 1)."""
    capture = good_capture(root, "drifted")
    with np.load(capture / "outputs.npz") as stored:
        outputs = {name: np.asarray(values) * 1.5 + 1 for name, values in stored.items()}
    np.savez(capture / "outputs.npz", **outputs)
    return capture


def closed_port() -> int:
    """A TCP port nothing listens on (the OS's choice, released again): an endpoint that refuses at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def token_file(root: Path) -> Path:
    """A bearer token in a file, as --token-file reads it."""
    path = root / "token"
    path.write_text("contract-token-5678\n")
    return path


def tls_options(root: Path) -> list[str]:
    """--ca-bundle, --client-cert and --client-key naming a real CA and client certificate."""
    tls = make_tls(root / "tls", "endpoint")
    return ["--ca-bundle", str(tls["ca"]), "--client-cert", str(tls["cert"]), "--client-key", str(tls["key"])]


def junk_interpreter(root: Path) -> Path:
    """A `python` that exits without a capture: the target is an ERROR row, the run exit 3, at once."""
    script = root / "python"
    script.write_text("#!/bin/sh\necho '{garbage'\nexit 0\n")
    script.chmod(0o755)
    return script


def fleet_inventory(root: Path) -> Path:
    """One site whose daemon cannot be reached: an ERROR row for that site, exit 3, without Docker."""
    inventory = root / "fleet.toml"
    inventory.write_text(f'[[site]]\nname = "line-7"\ndocker_host = "unix://{root}/no-daemon.sock"\n'
                         'targets = ["docker:envcheck-fixture/reference"]\n')
    return inventory


def read_only_bundle(root: Path) -> Path:
    """A golden bundle on a read-only tmpfs: calibrating it could never be re-sealed (refused before probing)."""
    bundle = golden_copy(root)
    mount = root / "read-only"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    shutil.copytree(bundle, mount / "golden")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    return mount / "golden"


def kit_capture(root: Path) -> Path:
    """good_capture packed as the kit packs one (a tar.gz of capture.json and outputs.npz)."""
    folder, path = good_capture(root), root / "capture.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member in sorted(folder.iterdir()):
            archive.add(member, arcname=member.name)
    return path


def kit_log(root: Path) -> Path:
    """kit_capture framed in a pod's log as the kit's `--out log:` frames it (its own writer, run as a box runs it)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from envcheck_probe.kit_capture import write_log_frame; "
              "write_log_frame(sys.stdout, open(sys.argv[2], 'rb').read())")
    log = root / "pod.log"
    log.write_bytes(subprocess.run([sys.executable, "-c", script, str(Path(envcheck.__file__).parent / "probe"),
                                    str(kit_capture(root))], check=True, capture_output=True).stdout)
    return log


def reject_all_policy(root: Path) -> Path:
    """A containers policy.json that trusts nothing (--verify-signature)."""
    policy = root / "policy.json"
    policy.write_text('{"default": [{"type": "reject"}]}')
    return policy


def site_reports(root: Path) -> Path:
    """A reports folder as `fleet run` leaves it: one folder per site."""
    reports = root / "site-reports"
    reports.mkdir()
    write_reports(reports / "beijing-1", {"envcheck-20261201T000000.000000Z":
                                          json.loads((RECORDED_REPORTS / "beijing-1.json").read_text())})
    return reports


COMMANDS = [
    Command("help", lambda r: ["--help"], 0),
    Command("version", lambda r: ["--version"], 0),
    Command("usage-error", lambda r: ["check", "--timeout", "-1"], 2),
    Command("check-undecided", lambda r: ["check", "--target", f"python:{junk_interpreter(r)}"], 3, writes="--json"),
    Command("check-drift", lambda r: ["check", "--target", f"python:{TF_OLDER_PYTHON}", "--latency-budget", "0",
                                      "--no-layers"], 1, writes="--json", needs="tf-older"),
    Command("check-integrity-full", lambda r: ["check", "--target", f"python:{TF_OLDER_PYTHON}", "--latency-budget", "0",
                                              "--no-layers", "--integrity", "full"], 1, writes="--json", needs="tf-older"),
    Command("check-endpoint-unreachable", lambda r: ["check", "--golden", "builtin:edge", "--target",
                                                     f"v2+http://127.0.0.1:{closed_port()}/m"], 3, writes="--json",
            says="endpoint-unreachable"),
    Command("check-endpoint-token-file", lambda r: ["check", "--golden", "builtin:edge", "--target",
                                                    f"v2+http://127.0.0.1:{closed_port()}/m",
                                                    "--token-file", str(token_file(r))], 3, writes="--json",
            says="endpoint-unreachable"),
    Command("check-endpoint-token-env-unset", lambda r: ["check", "--target", "v2+http://127.0.0.1:9/m", "--token-env",
                                                         "ENVCHECK_CONTRACT_NO_SUCH_TOKEN"], 2),
    Command("check-endpoint-mutual-tls", lambda r: ["check", "--golden", "builtin:edge", "--target",
                                                    f"v2+https://127.0.0.1:{closed_port()}/m", *tls_options(r)], 3,
            writes="--json", says="endpoint-unreachable"),
    Command("check-endpoint-grpc-unreachable", lambda r: ["check", "--golden", "builtin:edge", "--target",
                                                          f"v2+grpc://127.0.0.1:{closed_port()}/m"], 3,
            writes="--json", says="endpoint-unreachable"),
    Command("check-repeat-zero", lambda r: ["check", "--target", "v2+http://127.0.0.1:9/m", "--repeat", "0"], 2),
    Command("check-load-unbounded", lambda r: ["check", "--target", "v2+http://127.0.0.1:9/m", "--concurrency", "4"], 2),
    Command("check-serving-options-without-endpoint", lambda r: ["check", "--repeat", "3"], 2),
    Command("check-endpoint-load-refused", lambda r: ["check", "--golden", "builtin:edge", "--target",
                                                      f"v2+http://127.0.0.1:{closed_port()}/m", "--repeat", "3",
                                                      "--replica-header", "X-Replica", "--concurrency", "2",
                                                      "--requests", "4"], 3, writes="--json",
            says="endpoint-unreachable"),
    Command("check-golden-missing", lambda r: ["check", "--golden", str(r / "nowhere")], 3),
    Command("compare-identical", lambda r: ["compare", str(good_capture(r))], 0, writes="--json"),
    Command("compare-drift", lambda r: ["compare", str(drifted_capture(r))], 1, writes="--json"),
    *(Command(f"compare-drift-{fmt.name}", lambda r: ["compare", str(drifted_capture(r))], 1, writes=f"--{fmt.name}")
      for fmt in FORMATS if fmt.name != "json"),
    Command("compare-kit-capture", lambda r: ["compare", str(kit_capture(r))], 0, writes="--json"),
    Command("check-layers-always", lambda r: ["check", "--target", f"python:{TF_OLDER_PYTHON}", "--latency-budget", "0",
                                              "--layers", "always"], 1, writes="--json", needs="tf-older"),
    Command("check-layers-bad-mode", lambda r: ["check", "--layers", "sometimes"], 2),
    Command("check-verify-signature", lambda r: ["check", "--target", "docker:envcheck-fixture/reference", "--docker-host",
                                                 f"unix://{r}/no-daemon.sock", "--verify-signature",
                                                 str(reject_all_policy(r))], 3, writes="--json"),
    Command("kit-build", lambda r: ["kit", "build"], 0, writes="--out"),
    Command("kit-k8s", lambda r: ["kit", "k8s", "--image", "factory/vision:1.4"], 0),
    Command("kit-collect", lambda r: ["kit", "collect", str(kit_log(r))], 0, writes="--out"),
    Command("compare-reports-dir", lambda r: ["compare", str(good_capture(r))], 0, writes="--reports-dir",
            folder=True),
    Command("probe-undecided", lambda r: ["probe", "--target", f"python:{junk_interpreter(r)}"], 3, writes="--out",
            folder=True),
    Command("review", lambda r: ["review", str(RECORDED_REPORTS)], 0, writes="--csv"),
    Command("review-html", lambda r: ["review", str(RECORDED_REPORTS)], 0, writes="--html"),
    Command("review-metrics", lambda r: ["review", str(RECORDED_REPORTS)], 0, writes="--metrics"),
    Command("fleet-run", lambda r: ["fleet", "run", str(fleet_inventory(r)), "--no-cache"], 3,
            writes="--reports-dir", folder=True),
    Command("fleet-run-cache", lambda r: ["fleet", "run", str(fleet_inventory(r))], 3, writes="--cache", folder=True),
    Command("fleet-status", lambda r: ["fleet", "status", "--reports-dir", str(site_reports(r))], 0),
    Command("golden-verify", lambda r: ["golden", "verify", str(golden_copy(r))], 0),
    Command("golden-verify-corrupt", lambda r: ["golden", "verify", str(r / "nowhere")], 3),
    Command("golden-calibrate-undecided", lambda r: ["golden", "calibrate", str(golden_copy(r)), "--target",
                                                     f"python:{junk_interpreter(r)}"], 3),
    Command("golden-calibrate-read-only", lambda r: ["golden", "calibrate", str(read_only_bundle(r)), "--target",
                                                     f"python:{hanging_interpreter(r)[0]}", "--timeout", "60"], 3,
            says="cannot write the re-sealed manifest", needs="tmpfs"),
    Command("gc", lambda r: ["gc", "--older-than", "1e9"], 0, needs="docker"),
    Command("gc-daemon-down", lambda r: ["gc", "--docker-host", f"unix://{r}/no-daemon.sock"], 3),
    Command("golden-create", lambda r: ["golden", "create", "--builtin", "--no-calibrate", "--no-layers"], 0,
            writes="--out", folder=True, needs="tensorflow"),
]
