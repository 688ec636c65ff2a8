"""Running `envcheck check` on an endpoint target with the built-in edge golden, and reading its one target."""
from __future__ import annotations

EDGE = ("--golden", "builtin:edge")


def check(run_cli, *argv: str):
    """(exit code, stdout, stderr, the one target's report record)."""
    code, out, err, document = run_cli("check", *EDGE, *argv)
    assert "Traceback" not in out + err
    return code, out, err, (document["targets"][0] if document else None)


def judged(target: dict) -> list[dict]:
    """The fingerprint differences that decide (warn or fail)."""
    return [d for d in target["fingerprint_diff"] if d["severity"] in ("warn", "fail")]
