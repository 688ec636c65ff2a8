"""A hostile report: a recorded real report with a script, attribute, link or markup payload in every
string field a renderer may show (and in some it does not show, such as image labels and tags).

The fleet review reads only reports that match envcheck/schemas/report-1.schema.json, so its variant keeps
the fields that schema restricts to a few words (verdicts, severities, output statuses, `created`) real and
carries the payloads everywhere else."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

# Each breaks out of a different place if it is not escaped: text, an attribute (either quote), a URL,
# Markdown link, emphasis and table syntax.
PAYLOADS = ('"><script>window.__pwned=1</script>', '<img src=x onerror="window.__pwned=1">',
            "' onmouseover='window.__pwned=1", "javascript:window.__pwned=1", "[click](https://evil.example)",
            "<b>bold</b>", "**strong** _em_ ~~struck~~ cell|split")
ALL_PAYLOADS = " ".join(PAYLOADS)
VALID_CREATED = "2026-11-26T11:41:39Z"


class Hostile:
    """The report, and every payload value it holds by field name (`spec#0`, `hint#1.0`…). With
    `schema_valid`, fields the report schema restricts to a few words keep valid values instead."""

    def __init__(self, recorded: dict, schema_valid: bool = False) -> None:
        self.values: dict[str, str] = {}
        self.schema_valid = schema_valid
        self.report = report = copy.deepcopy(recorded)
        report["envcheck_version"] = self.put("envcheck_version")
        report["created"] = self.put("created", valid=VALID_CREATED)
        report["golden"]["path"] = self.put("golden.path")
        for i, target in enumerate(report["targets"]):
            self._target(i, target)
        report["summary"] = dict(Counter(t["verdict"] for t in report["targets"]))

    def put(self, field: str, valid: str | None = None) -> str:
        if self.schema_valid and valid is not None:
            return valid
        self.values[field] = f"{field}: {ALL_PAYLOADS}"
        return self.values[field]

    def _target(self, i: int, target: dict) -> None:
        target["verdict"] = self.put(f"verdict#{i}", valid=target["verdict"])
        for key in ("spec", "site"):
            target[key] = self.put(f"{key}#{i}")
        if target["error"]:
            for key in ("kind", "message", "stderr_tail"):
                target["error"][key] = self.put(f"error.{key}#{i}")
        if target["outputs"]:
            # The first output keeps a status that draws its ULP histogram; the other's status is a payload.
            (_, stats), *rest = target["outputs"].items()
            outputs = {self.put(f"output#{i}.0"): dict(stats, status="drift", reason=self.put(f"reason#{i}.0"),
                                                       ulp_histogram=[[self.put(f"bucket#{i}.{b}"), count] for b, (_, count)
                                                                      in enumerate(stats["ulp_histogram"][:3])])}
            for n, (_, other) in enumerate(rest, 1):
                outputs[self.put(f"output#{i}.{n}")] = dict(other, status=self.put(f"status#{i}.{n}", valid="noise"),
                                                            reason=self.put(f"reason#{i}.{n}"))
            target["outputs"] = outputs
        diffs = []
        for n, diff in enumerate(target["fingerprint_diff"][:2]):
            diffs.append({"path": self.put(f"diff.path#{i}.{n}"), "golden": self.put(f"diff.golden#{i}.{n}"),
                          "target": self.put(f"diff.target#{i}.{n}"),
                          "severity": self.put(f"severity#{i}.{n}", valid="warn")})
        diffs.append({"path": self.put(f"diff.path#{i}.set"), "golden": ["a"], "target": ["b"], "severity": "warn",
                      "missing": [self.put(f"missing#{i}")], "extra": [self.put(f"extra#{i}")]})
        diffs.append({"path": self.put(f"diff.path#{i}.info"), "golden": self.put(f"diff.golden#{i}.info"),
                      "target": self.put(f"diff.target#{i}.info"), "severity": "info"})
        target["fingerprint_diff"] = diffs
        target["findings"] = [{key: self.put(f"finding.{key}#{i}", valid="warn" if key == "severity" else None)
                               for key in ("code", "severity", "message", "hint")}]
        target["hints"] = [self.put(f"hint#{i}.{n}") for n in range(2)]
        image = (target.get("target") or {}).get("image")
        if image:
            image["tags"] = [self.put(f"image.tag#{i}")]
            image["labels"] = {"org.opencontainers.image.title": self.put(f"image.label#{i}")}


@pytest.fixture
def hostile(recorded_reports) -> Hostile:
    """shenzhen-3: two targets with outputs, two that failed (error, stderr), Docker image metadata."""
    return Hostile(recorded_reports["shenzhen-3"])


@pytest.fixture
def hostile_fleet(recorded_reports, tmp_path) -> tuple[Path, Hostile]:
    """A folder for the fleet review: the schema-valid hostile report, and a truncated file whose name is
    itself a payload (the review lists it as skipped)."""
    hostile = Hostile(recorded_reports["shenzhen-3"], schema_valid=True)
    root = tmp_path / "fleet"
    root.mkdir()
    (root / "hostile.json").write_text(json.dumps(hostile.report))
    (root / '<img src=x onerror="window.__pwned=1">.json').write_text('{"schema": "envcheck.report/1", "targ')
    return root, hostile
