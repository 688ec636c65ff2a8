"""The progress shown while targets run: rich's live display on a terminal, plain lines otherwise (CI logs),
where rich's live display is not even imported."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from envcheck import cli, console


class _Failed:
    kind = "image-not-found"


def test_a_terminal_gets_a_live_line_per_target_with_its_state(monkeypatch):
    monkeypatch.setattr(console, "is_terminal", lambda stream: True)
    progress = cli._progress(["docker:a", "host"])
    with progress:
        progress.started(0, "docker:a")
        progress.finished(0, "docker:a", _Failed())
        progress.started(1, "host")
        progress.finished(1, "host", object())
    assert progress.progress is not None
    states = [task.fields["state"] for task in progress.progress.tasks]
    assert states == ["[magenta]failed: image-not-found", "[green]captured"]
    assert all(task.finished for task in progress.progress.tasks)


def test_a_log_gets_plain_lines_and_no_live_display():
    code = ("import sys\n"
            "from envcheck import cli\n"
            "p = cli._progress(['docker:a'])\n"
            "with p:\n"
            "    p.started(0, 'docker:a')\n"
            "    p.finished(0, 'docker:a', object())\n"
            "assert 'rich.progress' not in sys.modules, 'live display imported for a log'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    probing, captured = done.stderr.splitlines()
    assert probing == "envcheck: [1/1] docker:a: probing…"
    assert captured.startswith("envcheck: [1/1] docker:a: captured (") and captured.endswith(" s)")
