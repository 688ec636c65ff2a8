"""The CI pipelines of docs/ci/ run for real, the way their platform would run them.

Each file is parsed (the two YAML files with PyYAML, the Jenkinsfile by extracting its `sh` steps, its
`environment` block and its `junit`/`archiveArtifacts` paths) into shell steps, which run in bash with the
platform's semantics: a failing step stops the steps after it except those that run always
(`after_script`, `if: always()`, `post { always { … } }`), and fails the job. What differs from a real run:

- install steps (`pip install …`, with the venv they create) are replaced by the envcheck already installed
  here, and `docker` (building and pushing the image), `curl` (GitLab's notes API) and `gh` (the GitHub
  comment) are stubs that record their arguments;
- the pipeline's variables keep their values except the image under test (a fixture image), the golden's
  sha256 (of a golden made from the reference image on this machine, copied into the checkout at the
  pipeline's GOLDEN_DIR), DOCKER_HOST (this machine's daemon, not GitLab's dind service) and the values the
  platform provides (merge-request number, tokens, URLs);
- envcheck itself, the Docker daemon and the images are real.

Against the reference image the job passes; against tf-older (another TensorFlow) the check exits 1 and the
job fails; with a golden sha256 that does not match it exits 3 and the job fails. Whatever the outcome, the
reports are published at the paths the pipeline names and the Markdown is posted as the comment.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml  # the test extra installs PyYAML

from ci.support import DRIFTING, REFERENCE, copy_golden
from envcheck.errors import ExitCode
from helpers import REPO

PIPELINES = REPO / "docs" / "ci"
ENVCHECK_BIN = Path(sys.executable).parent
INSTALL = re.compile(r"\bpip\b[^\n]*\binstall\b|-m venv\b")
STUB = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"argv": [os.path.basename(sys.argv[0]), *sys.argv[1:]], "cwd": os.getcwd()}}) + "\\n")
"""


@dataclass
class Step:
    """One shell step of a job: its script, and whether it runs after an earlier step failed."""

    name: str
    script: str
    always: bool = False
    may_fail: bool = False     # its failure does not fail the job (GitLab's after_script, continue-on-error)
    files_exist: tuple[str, ...] = ()  # runs only if these exist (hashFiles(…) != '', fileExists(…))


@dataclass
class Pipeline:
    """What a test needs from a pipeline file: its steps, its variables and what it publishes."""

    steps: list[Step]
    variables: dict[str, str]
    junit: str                                 # the path the platform reads JUnit from
    artifacts: list[str]                       # paths or globs kept as artefacts
    platform: dict[str, str] = field(default_factory=dict)  # what the platform sets for a merge request
    posts_comment: Callable[[list[str]], Path | None] = lambda argv: None  # the Markdown file a stub call posts


def gitlab() -> Pipeline:
    document = yaml.safe_load((PIPELINES / "gitlab-ci.yml").read_text())
    (name, job), = [(name, job) for name, job in document.items()
                    if isinstance(job, dict) and "envcheck check" in " ".join(job.get("script", []))]
    # GitLab runs before_script and script in one shell (`set -eo pipefail`), after_script in another, always.
    steps = [Step(name, "\n".join(job.get("before_script", []) + job["script"])),
             Step("after_script", "\n".join(job.get("after_script", [])), always=True, may_fail=True)]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always", "the reports must be kept when the gate fails"

    def posts(argv: list[str]) -> Path | None:
        if argv[0] != "curl":
            return None
        assert argv[-1].endswith("/projects/42/merge_requests/7/notes"), argv
        assert "PRIVATE-TOKEN: note-token" in argv, argv
        bodies = [a for a in argv if a.startswith("body@")]
        return Path(bodies[0].removeprefix("body@")) if bodies else None

    return Pipeline(steps, {**document.get("variables", {}), **job.get("variables", {})},
                    junit=artifacts["reports"]["junit"], artifacts=artifacts["paths"], posts_comment=posts,
                    platform={"CI_MERGE_REQUEST_IID": "7", "ENVCHECK_NOTE_TOKEN": "note-token", "CI_PROJECT_ID": "42",
                              "CI_API_V4_URL": "https://gitlab.invalid/api/v4", "CI_REGISTRY": "registry.invalid",
                              "CI_REGISTRY_USER": "ci-user", "CI_REGISTRY_PASSWORD": "ci-password",
                              "CI_COMMIT_SHORT_SHA": "0123abcd", "CI_REGISTRY_IMAGE": "registry.invalid/team/vision"})


GITHUB_EXPRESSIONS = {"github.sha": "0123abcd", "github.token": "gh-token", "github.event.pull_request.number": "7"}


def _github_value(text: str) -> str:
    def one(match: re.Match) -> str:
        expression = match.group(1).strip()
        assert expression in GITHUB_EXPRESSIONS, f"the test does not know the expression ${{{{ {expression} }}}}"
        return GITHUB_EXPRESSIONS[expression]
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


def github() -> Pipeline:
    document = yaml.safe_load((PIPELINES / "github-actions.yml").read_text())
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    assert document["permissions"]["pull-requests"] == "write"
    (job,) = document["jobs"].values()
    steps, uploads = [], []
    for step in job["steps"]:
        condition = str(step.get("if", "success()"))
        # The test plays a pull_request event: a condition with always() runs after a failure too.
        always = "always()" in condition
        assert not re.sub(r"always\(\)|success\(\)|github\.event_name == 'pull_request'|hashFiles\('[^']*'\) != ''|&&|\s",
                          "", condition), f"the test cannot play the condition {condition!r}"
        if "run" in step:
            environment = "".join(f"export {k}={shlex.quote(_github_value(v))}\n" for k, v in step.get("env", {}).items())
            steps.append(Step(step.get("name", step["run"]), environment + step["run"], always=always,
                              may_fail=bool(step.get("continue-on-error")),
                              files_exist=tuple(re.findall(r"hashFiles\('([^']*)'\)", condition))))
        elif str(step.get("uses", "")).startswith("actions/upload-artifact"):
            assert always, "the reports must be uploaded when the gate fails"
            uploads.extend(str(step["with"]["path"]).split())

    def posts(argv: list[str]) -> Path | None:
        if argv[:3] != ["gh", "pr", "comment"]:
            return None
        assert argv[3] == "7", argv
        return Path(argv[argv.index("--body-file") + 1])

    # No JUnit publisher of its own: the JUnit file travels with the uploaded reports.
    return Pipeline(steps, {k: _github_value(v) for k, v in {**document.get("env", {}), **job.get("env", {})}.items()},
                    junit="", artifacts=uploads, posts_comment=posts)


def _groovy_string(body: str) -> str:
    """A single-quoted Groovy string's value: a backslash at a line's end joins the lines, `\\\\` is one."""
    return re.sub(r"\\(.)", r"\1", re.sub(r"\\\n", "", body), flags=re.S)


def jenkins() -> Pipeline:
    text = (PIPELINES / "Jenkinsfile").read_text()
    text = re.sub(r"^\s*//.*$", "", text, flags=re.M)
    post = re.search(r"\bpost\s*\{", text)
    assert post, "the reports are published in post { always { … } }"
    # The post block's conditions, each up to the next: always/cleanup run whatever happened, success only
    # after a passing build; the test plays no other condition.
    regions = [(m.start(), m.group(1)) for m in re.finditer(r"\b(\w+)\s*\{", text[post.end():])
               if m.group(1) in ("always", "success", "failure", "unstable", "changed", "fixed", "regression",
                                 "aborted", "unsuccessful", "cleanup")]
    assert {kind for _, kind in regions} <= {"always", "cleanup", "success"}, regions

    def post_region(position: int) -> str | None:
        kinds = [kind for start, kind in regions if post.end() + start < position]
        return kinds[-1] if position > post.end() and kinds else None

    always_text = "".join(text[post.end() + start:post.end() + (regions[i + 1][0] if i + 1 < len(regions) else len(text))]
                          for i, (start, kind) in enumerate(regions) if kind in ("always", "cleanup"))
    steps = []
    for match in re.finditer(r"\bsh\s+(?:'''(.*?)'''|'((?:[^'\\\n]|\\.)*)')", text, re.S):
        script = _groovy_string(match.group(1) if match.group(1) is not None else match.group(2))
        region = post_region(match.start())
        # An sh step inside `if (… fileExists("…") …) {` in the post block runs only when the file exists
        # (env.CHANGE_ID, the other condition, is set: the test plays a pull-request build).
        guard = re.findall(r"if\s*\((.*?)\)\s*\{[^{}]*(?:\{[^{}]*)?$", text[post.end():match.start()], re.S)
        files = tuple(re.sub(r"\$\{env\.(\w+)\}", r"$\1", f) for f in re.findall(r'fileExists\("([^"]+)"\)', guard[-1])) \
            if guard and region else ()
        stage = re.findall(r"stage\('([^']+)'\)", text[:match.start()])
        where = f"post {region}" if region else stage[-1] if stage else "steps"
        steps.append(Step(f"{where}: sh@{match.start()}", script, always=region in ("always", "cleanup"),
                          files_exist=files))
    assert not re.search(r'\bsh\s+"', text), "the test reads single-quoted sh steps only (the shell expands them)"
    block = re.search(r"environment\s*\{(.*?)\}\s*stages", text, re.S)
    assert block
    variables = {}
    for name, value in re.findall(r"^\s*(\w+)\s*=\s*(['\"].*?['\"])\s*(?://.*)?$", block.group(1), re.M):
        variables[name] = value[1:-1]
    junit = re.search(r"\bjunit\b[^\n]*?testResults:\s*'([^']+)'", always_text)
    archived = re.findall(r"\barchiveArtifacts\b[^\n]*?artifacts:\s*'([^']+)'", always_text)
    assert junit and archived, "junit and archiveArtifacts in post { always { … } }"

    def posts(argv: list[str]) -> Path | None:
        if argv[:3] != ["gh", "pr", "comment"]:
            return None
        assert argv[3] == "7", argv
        return Path(argv[argv.index("--body-file") + 1])

    return Pipeline(steps, variables, junit=junit.group(1), artifacts=archived, posts_comment=posts,
                    platform={"CHANGE_ID": "7", "GH_TOKEN": "gh-token", "BUILD_TAG": "jenkins-vision-7"})


PARSERS = {"gitlab-ci.yml": gitlab, "github-actions.yml": github, "Jenkinsfile": jenkins}


@dataclass
class JobRun:
    """The outcome of a job: the platform's verdict, each step's exit status, the stubs' calls."""

    failed: bool
    statuses: dict[str, int | None]
    calls: list[dict]
    checkout: Path
    environment: dict[str, str]

    def path(self, text: str) -> Path:
        return self.checkout / _expand(text, self.environment)


def _expand(text: str, environment: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: environment.get(m.group(1), m.group(0)), text)


def run_job(pipeline: Pipeline, checkout: Path, overrides: dict[str, str]) -> JobRun:
    stubs = checkout.parent / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in ("docker", "curl", "gh"):
        (stubs / tool).write_text(STUB)
        (stubs / tool).chmod(0o755)
    log = checkout.parent / "stub-calls.jsonl"

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CI_", "GITHUB_"))}
    environment.update({**pipeline.variables, **pipeline.platform, **overrides,
                        "PATH": f"{stubs}:{ENVCHECK_BIN}:{os.environ['PATH']}", "STUB_LOG": str(log),
                        "HOME": str(checkout.parent / "home"), "WORKSPACE": str(checkout),
                        "GITHUB_STEP_SUMMARY": str(checkout.parent / "step-summary.md")})
    for name in ("DOCKER_HOST", "DOCKER_TLS_CERTDIR"):   # GitLab's dind service → this machine's daemon
        environment.pop(name, None)
        if name in os.environ:
            environment[name] = os.environ[name]
    statuses: dict[str, int | None] = {}
    failed = False
    for step in pipeline.steps:
        if (failed and not step.always) or not all(
                any(checkout.glob(_expand(f, environment))) for f in step.files_exist):
            statuses[step.name] = None
            continue
        script = "\n".join("true  # install: envcheck is installed already" if INSTALL.search(line) else line
                           for line in step.script.splitlines())
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=checkout,
                                env=environment, capture_output=True, text=True, timeout=600)
        statuses[step.name] = result.returncode
        print(f"--- {step.name}: exit {result.returncode}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        if result.returncode != 0 and not step.may_fail:
            failed = True
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return JobRun(failed, statuses, calls, checkout, environment)


def _check_command(pipeline: Pipeline) -> tuple[str, list[str]]:
    """The step that runs `envcheck check`, and its arguments (variables unexpanded)."""
    (step,) = [s for s in pipeline.steps if "envcheck" in s.script and " check " in s.script]
    line = next(line for line in step.script.splitlines() if " check " in line and "envcheck" in line)
    return step.name, shlex.split(line, posix=False)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1].strip('"')


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_the_pipeline_gates_on_envcheck_and_publishes_every_report(name):
    """Static: the check pins the golden, writes the four reports, and the platform publishes them."""
    pipeline = PARSERS[name]()
    _, argv = _check_command(pipeline)
    for option in ("--golden", "--golden-sha256", "--target", "--junit", "--html", "--markdown", "--json"):
        assert option in argv, f"{name}: envcheck check without {option}"
    assert _option(argv, "--target").startswith("docker:$APP_IMAGE")
    assert "--fail-on" not in argv or _option(argv, "--fail-on") in ("warn", "fail")
    if pipeline.junit:
        assert pipeline.junit == _expand(_option(argv, "--junit"), pipeline.variables)
    for option in ("--junit", "--html", "--markdown", "--json"):
        path = _expand(_option(argv, option), pipeline.variables)
        assert any(path.startswith(a.rstrip("*").rstrip("/") + "/") for a in pipeline.artifacts), (name, path)


@pytest.fixture
def checkout(tmp_path, team_golden) -> Path:
    """A pipeline's working copy: the team golden committed where the pipeline expects it."""
    root = tmp_path / "checkout"
    root.mkdir()
    (tmp_path / "home").mkdir()
    return root


def _run(name: str, checkout: Path, team_golden, image: str, sha256: str | None = None) -> tuple[Pipeline, JobRun]:
    pipeline = PARSERS[name]()
    golden, real_sha256 = team_golden
    copy_golden(golden, checkout / pipeline.variables["GOLDEN_DIR"])
    return pipeline, run_job(pipeline, checkout, {"APP_IMAGE": image, "GOLDEN_SHA256": sha256 or real_sha256,
                                                  "VENV": str(ENVCHECK_BIN.parent)})


def _gate(name: str, checkout: Path, team_golden, image: str, expected: ExitCode,
          sha256: str | None = None) -> tuple[Pipeline, JobRun, str]:
    """Run the pipeline; its check step ended with `expected`, and the job failed unless that is 0.
    Returns the pipeline, the job and the check step's name."""
    pipeline, job = _run(name, checkout, team_golden, image, sha256)
    check_step, _ = _check_command(pipeline)
    assert job.statuses[check_step] == expected and job.failed == (expected != ExitCode.OK), job.statuses
    return pipeline, job, check_step


def _published_and_posted(name: str, checkout: Path, team_golden, image: str, expected: ExitCode) -> dict[str, Path]:
    """Run the pipeline to `expected`; every report is published and the Markdown posted, whatever the verdict."""
    pipeline, job, _ = _gate(name, checkout, team_golden, image, expected)
    reports = _published(pipeline, job)
    assert _posted(pipeline, job) == [reports["--markdown"]], job.calls
    return reports


def _published(pipeline: Pipeline, job: JobRun) -> dict[str, Path]:
    """Each report the check wrote, at the path the pipeline names, and kept by its artefact paths."""
    _, argv = _check_command(pipeline)
    reports = {option: job.path(_option(argv, option)) for option in ("--junit", "--html", "--markdown", "--json")}
    for option, path in reports.items():
        assert path.is_file(), f"{option} report missing at {path}"
        assert any(path in _artefact_files(job, pattern) for pattern in pipeline.artifacts), \
            f"{path} is not in the artefacts {pipeline.artifacts}"
    if pipeline.junit:
        assert job.path(pipeline.junit) == reports["--junit"]
    return reports


def _artefact_files(job: JobRun, pattern: str) -> list[Path]:
    """The files an artefact path keeps: a folder (`dir/`, `dir/**`) keeps everything under it."""
    pattern = _expand(pattern, job.environment)
    folder = re.sub(r"/?\*\*$", "", pattern).rstrip("/")
    if folder != pattern or pattern.endswith("/"):
        return [p for p in job.checkout.glob(f"{folder}/**/*") if p.is_file()]
    return [p for p in job.checkout.glob(pattern) if p.is_file()]


def _posted(pipeline: Pipeline, job: JobRun) -> list[Path]:
    posted = []
    for call in job.calls:
        body = pipeline.posts_comment(call["argv"])
        if body is not None:
            posted.append(Path(call["cwd"]) / body)
    return posted


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_the_reference_image_passes_the_gate_and_the_markdown_is_posted(name, checkout, team_golden):
    reports = _published_and_posted(name, checkout, team_golden, REFERENCE, ExitCode.OK)
    document = json.loads(reports["--json"].read_text())
    assert document["exit_code"] == 0 and document["targets"][0]["spec"] == f"docker:{REFERENCE}"
    assert document["targets"][0]["verdict"] in ("IDENTICAL", "PASS", "WARN")
    assert reports["--markdown"].read_text().startswith("### ✅ envcheck passed (exit 0)")
    if name == "github-actions.yml":
        assert (checkout.parent / "step-summary.md").read_text() == reports["--markdown"].read_text()
    if name == "gitlab-ci.yml":   # the registry login for --pull is a Docker config envcheck's client can read
        config = json.loads((checkout.parent / "home" / ".docker" / "config.json").read_text())
        assert base64.b64decode(config["auths"]["registry.invalid"]["auth"]) == b"ci-user:ci-password"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_drifting_image_fails_the_job_and_the_reports_are_still_published(name, checkout, team_golden):
    reports = _published_and_posted(name, checkout, team_golden, DRIFTING, ExitCode.DRIFT)
    assert json.loads(reports["--json"].read_text())["targets"][0]["verdict"] == "FAIL"
    assert "<failure" in reports["--junit"].read_text()
    assert "exit 1" in reports["--markdown"].read_text().splitlines()[0]


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_golden_that_is_not_the_pinned_one_fails_the_job_with_nothing_to_post(name, checkout, team_golden):
    pipeline, job, check_step = _gate(name, checkout, team_golden, REFERENCE, ExitCode.UNDECIDED, sha256="0" * 64)
    # The steps that run always cope with reports that were never written: no comment, no error.
    assert _posted(pipeline, job) == []
    assert all(status == 0 for step, status in job.statuses.items() if step != check_step and status is not None), \
        job.statuses
