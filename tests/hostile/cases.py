"""The hostile-input battery: bad input of every kind, and what envcheck must do with it.

Each case builds its bad input under a fresh directory and returns the command line to run. The
The table in docs/bad-input.md lists the same ids (a test keeps them in step).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envcheck.files import sha256_file
from envcheck.golden import builtin_golden_dir, load_golden

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "fixtures" / "reports" / "recorded"
MISSING_IMAGE = "envcheck-fixture/does-not-exist"


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], list[str]]
    """Builds the bad input under the given directory; returns argv for `envcheck`."""
    code: int
    """The exit code the contract asks for."""
    says: str
    """Words the one-line error (or the target's error message) must contain."""
    kind: str | None = None
    """For a target that could not be checked: the error kind of its ERROR row (the run itself goes on)."""
    needs: str | None = None
    """Infrastructure beyond Python: 'docker', 'gcc' or 'tensorflow'."""


# ------------------------------------------------------------------------------- golden bundles

def golden_copy(root: Path) -> Path:
    bundle = root / "golden"
    shutil.copytree(builtin_golden_dir(), bundle)
    return bundle


def reseal(bundle: Path) -> Path:
    """Rewrite the manifest's digests so that only the content is wrong, not the seal."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {p.relative_to(bundle).as_posix(): sha256_file(p) for p in sorted(bundle.rglob("*"))
                         if p.is_file() and p.name != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def edit_manifest(bundle: Path, change: Callable[[dict], None]) -> Path:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def verify(bundle: Path) -> list[str]:
    return ["golden", "verify", str(bundle)]


def _symlink_escape(root: Path) -> list[str]:
    bundle = golden_copy(root)
    (root / "outside.txt").write_text("secret")
    (bundle / "notes.txt").symlink_to(root / "outside.txt")
    return verify(edit_manifest(bundle, lambda m: m["files"].update({"notes.txt": sha256_file(root / "outside.txt")})))


def _forge_calibration(manifest: dict) -> None:
    """A band 100 times wider than the calibration's own numbers give: drift would pass as noise."""
    manifest["calibration"]["outputs"]["embedding"]["atol"] = 1e-3


def _pickled_inputs(root: Path) -> list[str]:
    bundle = golden_copy(root)
    np.savez(bundle / "inputs.npz", image=np.array([{"__reduce__": "os.system"}], dtype=object))
    return verify(reseal(bundle))


def _not_a_zip(name: str) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        bundle = golden_copy(root)
        (bundle / name).write_bytes(b"PK\x03\x04 this is not a zip archive")
        return verify(reseal(bundle))
    return make


def _inputs_npz(root: Path, **arrays) -> Path:
    path = root / "inputs.npz"
    np.savez(path, **arrays)
    return path


def _create_with_inputs(**arrays) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        return ["golden", "create", "--model", str(builtin_golden_dir() / "model"),
                "--inputs", str(_inputs_npz(root, **arrays)), "--out", str(root / "new")]
    return make


def _image_rows(rows: int, fill: float | None = None) -> np.ndarray:
    data = np.zeros((rows, 16, 16, 3), dtype=np.float32)
    if fill is not None and rows:
        data[0, 0, 0, 0] = fill
    return data


def _series_rows(rows: int) -> np.ndarray:
    return np.zeros((rows, 12, 6), dtype=np.float32)


def _force_over_a_source_folder(root: Path) -> list[str]:
    source = root / "src"
    source.mkdir()
    (source / "train.py").write_text("print('precious')\n")
    return ["golden", "create", "--builtin", "--out", str(source), "--force"]


def _model_with_symlink_loop(root: Path) -> list[str]:
    model = root / "model"
    shutil.copytree(builtin_golden_dir() / "model", model)
    (model / "loop").symlink_to(model)
    return ["golden", "create", "--model", str(model), "--out", str(root / "new")]


# -------------------------------------------------------------------------------------- policy

def _policy(text: str) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        (root / "policy.toml").write_text(text)
        return ["compare", str(good_capture(root)), "--policy", str(root / "policy.toml")]
    return make


# ------------------------------------------------------------------------------------ captures

def good_capture(root: Path, name: str = "capture") -> Path:
    """A capture of the built-in golden's own outputs, as `envcheck probe --out` writes one."""
    golden = load_golden()
    directory = root / name
    directory.mkdir()
    np.savez(directory / "outputs.npz", **golden.expected)
    document = {
        "schema": "envcheck.capture/1", "probe_version": "1", "started": "2026-11-29T08:00:00Z", "status": "ok",
        "stage": "run-model", "fingerprint": golden.fingerprint, "timings": {"total_s": 1.0},
        "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in golden.expected.items()},
        "error": None, "target": {"spec": "host", "site": "line-7", "info": {"kind": "interpreter"}},
        "golden_sha256": golden.sha256,
    }
    (directory / "capture.json").write_text(json.dumps(document))
    return directory


def _capture(change: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        directory = good_capture(root)
        change(directory)
        return ["compare", str(directory)]
    return make


def _edit_capture_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        document = json.loads((directory / "capture.json").read_text())
        change(document)
        (directory / "capture.json").write_text(json.dumps(document))
    return edit


def _truncate(name: str, size: int) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[:size])
    return edit


def _object_outputs(directory: Path) -> None:
    np.savez(directory / "outputs.npz", class_probs=np.array([object()], dtype=object))


# -------------------------------------------------------------------------------------- review

def _review(*files: tuple[str, bytes | str | None]) -> Callable[[Path], list[str]]:
    """A folder with one good recorded report and the given files (None: a FIFO)."""
    def make(root: Path) -> list[str]:
        folder = root / "reports"
        folder.mkdir()
        shutil.copy(RECORDED / "beijing-1.json", folder / "good.json")
        for name, content in files:
            path = folder / name
            if content is None:
                os.mkfifo(path)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return ["review", str(folder)]
    return make


def _payload_report() -> str:
    report = json.loads((RECORDED / "shenzhen-3.json").read_text())
    for target in report["targets"]:
        target["site"] = "line-[/b] [bold red]PLANT 7[/] <script>alert(1)</script>"
        target["spec"] = "docker:x[/]"
    return json.dumps(report)


def _huge_report(root: Path) -> list[str]:
    make = _review()
    argv = make(root)
    with open(root / "reports" / "huge.json", "wb") as stream:
        stream.truncate(200 * 1024 * 1024)  # sparse: 200 MB on paper, nothing on disk
    return argv


def _symlink_loop(root: Path) -> list[str]:
    argv = _review()(root)
    (root / "reports" / "again").symlink_to(root / "reports")
    return argv


def _only_junk(root: Path) -> list[str]:
    (root / "a.json").write_text("{")
    return ["review", str(root)]


# ------------------------------------------------------------------------------------- targets

def _script(body: str) -> Callable[[Path], list[str]]:
    """A fake interpreter: a shell script that misbehaves the way a broken target does."""
    def make(root: Path) -> list[str]:
        interpreter = root / "python"
        interpreter.write_text("#!/bin/sh\n" + body + "\n")
        interpreter.chmod(0o755)
        return ["check", "--target", f"python:{interpreter}", "--timeout", "3"]
    return make


def _not_executable(root: Path) -> list[str]:
    interpreter = root / "python"
    interpreter.write_text("#!/bin/sh\nexit 0\n")
    interpreter.chmod(0o644)
    return ["check", "--target", f"python:{interpreter}"]


def _sigill_binary(root: Path) -> list[str]:
    import subprocess

    (root / "trap.c").write_text("int main(void) { __builtin_trap(); return 0; }\n")
    subprocess.run(["gcc", "-O0", "-o", str(root / "python"), str(root / "trap.c")], check=True)
    return ["check", "--target", f"python:{root / 'python'}"]


def _reports_dir_under_a_file(root: Path) -> list[str]:
    (root / "file").write_text("")
    return ["check", "--target", f"python:{sys.executable}", "--reports-dir", str(root / "file" / "reports")]


def _silent_daemon(root: Path) -> list[str]:
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    _KEEP_OPEN.append(server)  # closed by the test after the run
    return ["check", "--target", "docker:envcheck-fixture/reference", "--timeout", "2",
            "--docker-host", f"tcp://127.0.0.1:{server.getsockname()[1]}"]


_KEEP_OPEN: list = []


def close_sockets() -> None:
    while _KEEP_OPEN:
        _KEEP_OPEN.pop().close()


def _argv(*argv: str) -> Callable[[Path], list[str]]:
    return lambda root: list(argv)


def _write_file(root: Path) -> Path:
    (root / "a-file").write_text("not a folder")
    return root / "a-file"


def _fifo_report(root: Path) -> list[str]:
    os.mkfifo(root / "report.json")
    return ["compare", str(good_capture(root)), "--markdown", str(root / "report.json")]


def _inventory(root: Path, docker_host: str = "unix:///nonexistent/docker.sock") -> Path:
    (root / "fleet.toml").write_text(f'[[site]]\nname = "line-7"\ndocker_host = "{docker_host}"\n'
                                     'targets = ["docker:envcheck-fixture/reference"]\n')
    return root / "fleet.toml"


def _fifo_site_report(root: Path) -> list[str]:
    (root / "reports" / "line-7").mkdir(parents=True)
    os.mkfifo(root / "reports" / "line-7" / "envcheck-20261201T000000.000000Z.json")
    return ["fleet", "status", "--reports-dir", str(root / "reports")]

CASES: tuple[Case, ...] = (
    # golden bundles: exit 3 (or 2 for what `golden create` is asked), one line naming the file
    Case("golden-missing-dir", lambda r: verify(r / "nowhere"), 3, "not found"),
    Case("golden-manifest-not-json", lambda r: verify(_write(golden_copy(r), "manifest.json", "{oops")), 3,
         "manifest.json"),
    Case("golden-wrong-schema", lambda r: verify(edit_manifest(golden_copy(r), lambda m: m.update(schema="x/1"))), 3,
         "schema"),
    Case("golden-newer-schema", lambda r: verify(edit_manifest(golden_copy(r),
                                                               lambda m: m.update(schema="envcheck.golden/2"))),
         3, "newer envcheck"),
    Case("golden-unlisted-file", lambda r: verify(_write(golden_copy(r), "notes.txt", "hi")), 3, "not listed"),
    Case("golden-modified-file", lambda r: verify(_write(golden_copy(r), "fingerprint.json", "{}")), 3, "sha256"),
    Case("golden-path-traversal", lambda r: verify(edit_manifest(golden_copy(r),
                                                                 lambda m: m["files"].update({"../x": "0" * 64}))),
         3, "outside the bundle"),
    Case("golden-symlink-escape", _symlink_escape, 3, "symbolic link"),
    Case("golden-inputs-pickled", _pickled_inputs, 3, "inputs.npz"),
    Case("golden-inputs-not-zip", _not_a_zip("inputs.npz"), 3, "inputs.npz"),
    Case("golden-forged-calibration", lambda r: verify(edit_manifest(golden_copy(r), _forge_calibration)), 3,
         "embedding"),
    Case("golden-create-not-savedmodel", lambda r: ["golden", "create", "--model", str(r), "--out", str(r / "g")],
         2, "not a SavedModel"),
    Case("golden-create-zero-rows", _create_with_inputs(image=_image_rows(0)), 2, "no rows"),
    Case("golden-create-nan-inputs", _create_with_inputs(image=_image_rows(4, fill=np.nan)), 2, "NaN"),
    Case("golden-create-unknown-input", _create_with_inputs(image=_image_rows(4), series=_series_rows(4),
                                                            extra=_image_rows(4)), 3,
         "the signature does not take: extra", needs="tensorflow"),
    Case("golden-create-wrong-shape", _create_with_inputs(image=np.zeros((4, 8, 8, 3), dtype=np.float32),
                                                          series=_series_rows(4)), 3,
         "has shape [4, 8, 8, 3] but the signature wants [None, 16, 16, 3]", needs="tensorflow"),
    Case("golden-create-force-non-bundle", _force_over_a_source_folder, 2, "only a golden bundle"),
    Case("golden-create-out-cwd", _argv("golden", "create", "--builtin", "--out", ".", "--force"), 2,
         "current directory"),
    Case("golden-create-symlink-loop", _model_with_symlink_loop, 2, "symbolic link"),
    # policy files: a usage error (exit 2) naming the key
    Case("policy-typo", _policy("[tolerence]\natol = 1e-3\n"), 2, "did you mean"),
    Case("policy-wrong-type", _policy('[tolerance]\natol = "big"\n'), 2, "atol"),
    Case("policy-negative-tolerance", _policy("[tolerance]\nrtol = -1e-5\n"), 2, "rtol"),
    Case("policy-unknown-severity", _policy('[severity]\n"env.*" = "loud"\n'), 2, "loud"),
    Case("policy-classification-string", _policy('[tolerance.outputs.class_probs]\nclassification = "false"\n'),
         2, "classification"),
    Case("policy-not-toml", _policy("[tolerance\n"), 2, "TOML"),
    Case("policy-unknown-output", _policy("[tolerance.outputs.embeding]\natol = 1e-3\n"), 2, "embeding"),
    # captures brought back from a site: the capture is an ERROR row or one line, exit 3
    Case("capture-not-a-capture", lambda r: ["compare", str(r)], 3, "capture"),
    Case("capture-truncated-json", _capture(_truncate("capture.json", 100)), 3, "capture.json",
         kind="capture-schema"),
    Case("capture-newer-schema", _capture(_edit_capture_json(lambda d: d.update(schema="envcheck.capture/2"))), 3,
         "newer envcheck", kind="capture-schema"),
    Case("capture-missing-outputs", _capture(lambda d: (d / "outputs.npz").unlink()), 3, "outputs.npz",
         kind="no-outputs"),
    Case("capture-truncated-outputs", _capture(_truncate("outputs.npz", 1000)), 3, "outputs.npz", kind="no-outputs"),
    Case("capture-empty-outputs", _capture(_truncate("outputs.npz", 0)), 3, "outputs.npz", kind="no-outputs"),
    Case("capture-object-outputs", _capture(_object_outputs), 3, "outputs.npz", kind="no-outputs"),
    Case("capture-names-no-golden", _capture(_edit_capture_json(lambda d: d.pop("golden_sha256"))), 3,
         "without naming its golden", kind="golden-mismatch"),
    # the fleet review: what it cannot use is skipped with a reason; exit 3 only when nothing was read
    Case("review-truncated-report", _review(("cut.json", (RECORDED / "beijing-1.json").read_text()[:500])), 0,
         "skipped"),
    Case("review-foreign-json", _review(("package.json", '{"name": "left-pad"}')), 0, "not an envcheck report"),
    Case("review-markup-payload", _review(("payload.json", _payload_report())), 0, "PLANT 7"),
    Case("review-huge-file", _huge_report, 0, "too large"),
    Case("review-fifo", _review(("pipe.json", None)), 0, "not a regular file"),
    Case("review-symlink-loop", _symlink_loop, 0, "1 reports read"),
    Case("review-only-junk", _only_junk, 3, "no report could be read"),
    Case("review-empty-since", lambda r: ["review", str(r), "--since", ""], 2, "--since"),
    # targets: one ERROR row each, the run goes on, exit 3
    Case("target-missing-interpreter", lambda r: ["check", "--target", f"python:{r / 'nope'}"], 3, "cannot run",
         kind="interpreter-not-found"),
    Case("target-not-executable", _not_executable, 3, "cannot run", kind="interpreter-not-found"),
    Case("target-directory-interpreter", lambda r: ["check", "--target", f"python:{r}"], 3, "cannot run",
         kind="interpreter-not-found"),
    Case("target-prints-junk-exits-0", _script("echo '{garbage'; echo noise >&2; exit 0"), 3,
         "without writing a capture", kind="no-capture"),
    Case("target-hangs", _script("exec sleep 600"), 3, "did not finish within 3 s", kind="timeout"),
    Case("target-sigill", _sigill_binary, 3, "illegal instruction", kind="sigill", needs="gcc"),
    Case("target-sigabrt", _script("kill -ABRT $$"), 3, "SIGABRT", kind="sigabrt"),
    Case("target-sigkill", _script("kill -KILL $$"), 3, "SIGKILL", kind="killed"),
    Case("target-bad-spec", _argv("check", "--target", "ftp:somewhere"), 2, "unknown target"),
    # Docker
    Case("docker-bad-image-name", _argv("check", "--target", "docker:Bad_Name"), 2, "not a valid image reference"),
    Case("docker-missing-image", _argv("check", "--target", f"docker:{MISSING_IMAGE}"), 3, "never pulls",
         kind="image-not-found", needs="docker"),
    Case("docker-daemon-down", _argv("check", "--target", "docker:envcheck-fixture/reference", "--docker-host",
                                     "unix:///nonexistent/docker.sock"), 3, "cannot reach", kind="daemon-unreachable"),
    Case("docker-daemon-hangs", _silent_daemon, 3, "did not answer", kind="daemon-timeout"),
    Case("docker-entrypoint-exits-at-once", _argv("check", "--target", "docker:envcheck-fixture/reference",
                                                  "--image-python", "/bin/true"), 3, "without writing a capture",
         kind="no-capture", needs="docker"),
    # the command line itself
    Case("cli-negative-timeout", _argv("check", "--timeout", "-5"), 2, "--timeout"),
    Case("cli-bad-memory", _argv("check", "--memory", "lots"), 2, "--memory"),
    Case("cli-empty-site", _argv("check", "--site", " "), 2, "--site"),
    Case("cli-reports-dir-unwritable", _reports_dir_under_a_file, 3, "cannot write report"),
    Case("cli-timeout-huge", _argv("check", "--timeout", "1e12"), 2, "--timeout"),
    Case("cli-docker-host-bad-port", _argv("check", "--docker-host", "tcp://127.0.0.1:99999"), 2, "port"),
    Case("cli-report-is-a-fifo", _fifo_report, 2, "not a regular file"),
    # fleets: the inventory is checked whole before any site runs
    Case("fleet-empty-sites", lambda r: ["fleet", "run", str(_inventory(r)), "--sites", ""], 2, "names no site"),
    Case("fleet-bad-port", lambda r: ["fleet", "run", str(_inventory(r, docker_host="tcp://127.0.0.1:99999"))], 2,
         "port"),
    Case("fleet-status-fifo", _fifo_site_report, 0, "not a regular file"),
    Case("review-html-is-a-directory", lambda r: ["review", str(RECORDED), "--html", str(r)], 2, "is a directory"),
    Case("review-csv-under-a-file", lambda r: ["review", str(RECORDED), "--csv", str(_write_file(r) / "t.csv")], 2,
         "is not a directory"),
)



def _write(bundle: Path, name: str, text: str) -> Path:
    (bundle / name).write_text(text)
    return bundle
