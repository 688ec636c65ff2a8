"""Strings that came from a target (its site name, environment values, error text) reach a terminal or a CI log
only as inert text: no control sequence is obeyed and no line starts a CI workflow command."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from contract.conftest import in_shell
from hostile.cases import good_capture

HOSTILE = {
    "osc-link": "\x1b]8;;http://attacker.example/\x07click\x1b]8;;\x07",
    "clear-screen": "\x1b[2J\x1b[H",
    "carriage-return": "ok\rFAIL",
    "mask-command": "x\n::add-mask::hunter2",
    "error-command": "::error file=a.py::boom",
    "azure-command": "##vso[task.setvariable variable=x]y",
    "bidi-override": "abc\u202edcba",
}
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_capture(root: Path, text: str) -> Path:
    """A drifted capture whose site and an environment value hold `text` (a difference the report shows)."""
    capture = good_capture(root)
    document = json.loads((capture / "capture.json").read_text())
    document["target"]["site"] = f"line-7 {text}"
    document["fingerprint"].setdefault("env", {})["TF_ENABLE_ONEDNN_OPTS"] = text
    (capture / "capture.json").write_text(json.dumps(document))
    return capture


def _assert_inert(output: str) -> None:
    assert not RAW_CONTROL.search(output), f"raw control character in: {output!r}"
    for line in output.splitlines():
        assert not line.lstrip().startswith(("::", "##[", "##vso[")), f"a workflow command reached the log: {line!r}"


@pytest.mark.parametrize("text", [pytest.param(value, id=key) for key, value in HOSTILE.items()])
@pytest.mark.parametrize("output", ["plain", "markdown"])
def test_target_strings_reach_the_log_inert(text: str, output: str, workdir: Path):
    capture = hostile_capture(workdir, text)
    argv = ["compare", str(capture), "--no-reports"]
    if output == "markdown":  # a merge-request comment, often echoed into the CI log too
        argv += ["--markdown", str(workdir / "summary.md")]
    result = in_shell(argv, "{cmd}", workdir)
    assert result.returncode in (0, 1), result.stderr
    _assert_inert(result.stdout)
    _assert_inert(result.stderr)
    if output == "markdown":
        _assert_inert((workdir / "summary.md").read_text())
