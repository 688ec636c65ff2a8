"""`envcheck compare` of captures brought back from sites: each keeps its own identity."""
from __future__ import annotations

import json

from envcheck.errors import ExitCode
from hostile.cases import good_capture


def _without_site(directory):
    document = json.loads((directory / "capture.json").read_text())
    document["target"]["site"] = None
    (directory / "capture.json").write_text(json.dumps(document))
    return directory


def test_captures_without_a_site_are_named_by_their_folder(run_cli, tmp_path):
    first = _without_site(good_capture(tmp_path, "capture-shenzhen-3"))
    second = _without_site(good_capture(tmp_path, "capture-beijing-1"))
    code, _, _, report = run_cli("compare", str(first), str(second))
    assert code == ExitCode.OK
    assert [t["site"] for t in report["targets"]] == ["capture-shenzhen-3", "capture-beijing-1"]


def test_a_named_site_is_kept(run_cli, tmp_path):
    code, _, _, report = run_cli("compare", str(good_capture(tmp_path)))
    assert code == ExitCode.OK and report["targets"][0]["site"] == "line-7"
