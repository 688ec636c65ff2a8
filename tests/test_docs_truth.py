"""The docs say what the committed files and the tests say: the README's sentence about the machine that made the
built-in golden names what its manifest's `reference` records (CPU vendor and family, AVX-512, AMX, oneDNN,
TensorFlow), its examples of another class are another class, every mention of that CPU in the README and docs/
gives it the ISA the manifest records, and the oldest Python the probe is claimed to run on (docs/files.md,
probe_app.py) is the oldest a test runs it on.

Each claim is read from the text by a small pattern: a reworded sentence that the pattern no longer finds fails
here, to be matched again, rather than passing unread."""
from __future__ import annotations

import json
import re

import pytest

from envcheck.golden import builtin_golden_dir
from helpers import REPO

README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").rglob("*.md"))]


def _flat(text: str) -> str:
    """The text with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((builtin_golden_dir() / "manifest.json").read_text())["reference"]


@pytest.fixture(scope="module")
def golden_paragraph() -> str:
    """The README's paragraph about the machine that made the built-in golden."""
    text = _flat(README.read_text())
    found = re.search(r"The built-in golden was made on one machine class.*?for a bitwise baseline\.", text)
    assert found, "the README no longer has its paragraph about the built-in golden's machine"
    return found.group(0)


def _isa_claims(clause: str) -> dict[str, bool]:
    """What a clause says about AVX-512 and AMX: {"AVX-512": has it, "AMX": has it}, for what it mentions."""
    claims = {}
    for isa in ("AVX-512", "AMX"):
        if re.search(rf"\b(no|without)\b[^.;]*?\b{isa}\b", clause):
            claims[isa] = False
        elif re.search(rf"\b{isa}\b", clause):
            claims[isa] = True
    if re.search(r"\bAVX2(\s+only\b|\))", clause):  # "AVX2 only", "(…, AVX2)": nothing above AVX2
        claims.setdefault("AVX-512", False)
        claims.setdefault("AMX", False)
    return claims


def _isa_facts(reference: dict) -> dict[str, bool]:
    flags = set(reference["tf_flags"])
    return {"AVX-512": "avx512f" in flags, "AMX": "amx_tile" in flags}


def test_the_readme_names_the_machine_the_manifest_records(reference, golden_paragraph):
    clause = re.search(r"\(`reference`: (.*?)\)\. On the same class", golden_paragraph)
    assert clause, golden_paragraph
    said = clause.group(1)
    assert said.startswith(f"an {reference['cpu']} ") or said.startswith(f"a {reference['cpu']} "), said
    assert _isa_claims(said) == _isa_facts(reference), said
    assert ("oneDNN on" if reference["onednn_enabled"] else "oneDNN off") in said
    assert f"TensorFlow {reference['tensorflow']}" in said


def test_the_readme_s_other_class_is_another_class_and_its_flag_examples_are_true(reference, golden_paragraph):
    other = re.search(r"On another class — (.*?) — expect", golden_paragraph)
    assert other, golden_paragraph
    assert reference["cpu"] not in other.group(1)
    flags = set(reference["tf_flags"])
    examples = re.findall(r"`(missing|extra) ([a-z0-9_, ]+?)(?:, …)?`", golden_paragraph)
    assert examples, "the paragraph gives no example of cpu.tf_flags differing"
    for kind, listed in examples:
        named = {flag.strip() for flag in listed.split(",")}
        # `missing`: in the golden, not on the target; `extra`: on the target, not in the golden.
        assert named <= flags if kind == "missing" else not named & flags, (kind, named)


def test_every_mention_of_the_golden_s_cpu_gives_it_the_manifest_s_isa(reference):
    facts = _isa_facts(reference)
    mentions = 0
    for path in DOCS:
        text = _flat(path.read_text())
        for found in re.finditer(re.escape(reference["cpu"]), text):
            window = re.split(r"(?<=[a-z0-9)])[.;] |, the |, 40 | with the ", text[found.end():found.end() + 90])[0]
            claims = _isa_claims(window)
            mentions += bool(claims)
            assert all(facts[isa] == has for isa, has in claims.items()), (path.name, window)
    assert mentions >= 3, "the docs no longer say which ISA the measuring machine has"


def _claimed_minimums(text: str) -> list[tuple[int, int]]:
    """Every claim in the text of the oldest Python the probe runs on, as (major, minor)."""
    claims = []
    for found in re.finditer(r"runs on Python ≥ (3)\.(\d+)|any Python >= (3)\.(\d+) runs", text):
        major, minor = [int(part) for part in found.groups() if part is not None]
        claims.append((major, minor))
    return claims


def test_the_oldest_python_claimed_for_the_probe_is_the_oldest_a_test_runs_it_on():
    tested = [(3, int(found.group(1))) for path in (REPO / "tests").rglob("test_probe_python3*.py")
              if (found := re.search(r"test_probe_python3(\d+)\.py$", path.name))]
    assert tested, "no test runs the probe on an older Python"
    in_docs = [claim for path in DOCS for claim in _claimed_minimums(_flat(path.read_text()))]
    in_probe_app = _claimed_minimums(_flat((REPO / "envcheck" / "targets" / "probe_app.py").read_text()))
    assert in_docs, "the docs no longer say the oldest Python the probe runs on"
    assert in_probe_app, "probe_app.py no longer says the oldest Python the probe runs on"
    assert set(in_docs + in_probe_app) == {min(tested)}
