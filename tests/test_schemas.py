"""The published JSON Schemas (envcheck/schemas/*.schema.json): valid draft 2020-12, usable on their own
by any tool, satisfied by every real document (recorded reports, the committed golden, a capture the
real probe wrote), strict where it matters, open to added fields, and refusing newer versions with an
upgrade message. The fast shortcut agrees with jsonschema on valid and broken documents; the typed
check of bytes (typed.py) never accepts a broken one."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import RECORDED_REPORTS, set_at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from envcheck import schemas
from envcheck.capture import CAPTURE_SCHEMA, save_capture_dir
from envcheck.golden import (
    GOLDEN_SCHEMA,
    MANIFEST_FILE,
    builtin_golden_dir,
    load_golden,
)
from envcheck.model import Capture, TargetFailure
from envcheck.review import review
from envcheck.schemas import REPORT_SCHEMA
from envcheck.targets.exits import ChildExit, read_outcome
from envcheck.targets.probe_app import probe_app_path

REPORTS = sorted(RECORDED_REPORTS.glob("*.json"))
VERSIONED = [GOLDEN_SCHEMA, CAPTURE_SCHEMA, REPORT_SCHEMA]


def _manifest() -> dict:
    return json.loads((builtin_golden_dir() / MANIFEST_FILE).read_text())


def _report(name: str = "shenzhen-3") -> dict:
    return json.loads((RECORDED_REPORTS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def probe_captures(tmp_path_factory) -> tuple[dict, dict]:
    """What the real probe writes (here without site-packages, so it stops at importing TensorFlow:
    quick, and a real failed capture), and that capture as `envcheck probe --out` saves it."""
    work = tmp_path_factory.mktemp("probe")
    subprocess.run([sys.executable, "-I", "-S", str(probe_app_path()), "--bundle", str(builtin_golden_dir()),
                    "--out", str(work / "raw")], check=False, capture_output=True, timeout=120)
    raw = json.loads((work / "raw" / "capture.json").read_text())
    outcome = read_outcome(work / "raw", "host", ChildExit(returncode=1), target_info={"kind": "python"})
    save_capture_dir(outcome, work / "raw", work / "saved", "0" * 64)
    return raw, json.loads((work / "saved" / "capture.json").read_text())


# ---------------------------------------------------------------------------- the files themselves

@pytest.mark.parametrize("name", sorted(schemas.SCHEMA_FILES))
def test_every_schema_file_is_a_valid_draft_2020_12_schema(name):
    schema = schemas.load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schemas.SCHEMA_FILES[name]
    if name not in ("policy", "fleet"):  # the two TOML files people write have no `schema` key
        assert schema["properties"]["schema"] == {"const": name}


def test_published_files_validate_on_their_own_with_any_tool():
    """As a user's CI would: the files from disk, $refs resolved by file name, no envcheck code."""
    resources = [(path.name, Resource.from_contents(json.loads(path.read_text())))
                 for path in sorted(schemas.SCHEMA_DIR.glob("*.schema.json"))]
    registry = Registry().with_resources(resources)

    def validator(file: str) -> Draft202012Validator:
        return Draft202012Validator(registry.contents(file), registry=registry)

    assert validator("golden-1.schema.json").is_valid(_manifest())
    assert not validator("golden-1.schema.json").is_valid(dict(_manifest(), policy={"tolerence": {}}))
    for path in REPORTS:
        assert validator("report-1.schema.json").is_valid(json.loads(path.read_text())), path.name
    assert sorted(schemas.SCHEMA_FILES.values()) == sorted(name for name, _ in resources)


# ------------------------------------------------------------------------- real documents validate

@pytest.mark.parametrize("path", REPORTS, ids=lambda p: p.stem)
def test_every_recorded_report_validates(path):
    assert schemas.problems(REPORT_SCHEMA, json.loads(path.read_text())) == []


def test_committed_golden_manifest_validates():
    assert schemas.problems(GOLDEN_SCHEMA, _manifest()) == []


def test_capture_written_by_the_real_probe_validates(probe_captures):
    raw, saved = probe_captures
    assert raw["status"] == "error" and raw["error"]["kind"] == "tensorflow-not-importable"
    assert schemas.problems(CAPTURE_SCHEMA, raw) == []
    assert schemas.problems(CAPTURE_SCHEMA, saved) == []
    assert saved["target"]["info"] == {"kind": "python"} and saved["error"]["exit_code"] == 1


def test_reports_written_by_compare_validate(tmp_path, run_cli):
    """The writer and the schema agree: identical, drifted (outputs and fingerprint) and failed targets."""
    golden = load_golden()
    drifted = {name: (array * np.float32(1.001)).astype(array.dtype) for name, array in golden.expected.items()}
    fingerprint = copy.deepcopy(golden.fingerprint)
    fingerprint.setdefault("env", {})["TF_ENABLE_ONEDNN_OPTS"] = "0"
    fingerprint.setdefault("cpu", {})["tf_flags"] = ["avx", "sse4_1"]
    outcomes = [Capture(spec="host", fingerprint=golden.fingerprint, outputs=golden.expected, site="a"),
                Capture(spec="docker:x", fingerprint=fingerprint, outputs=drifted, timings={"run_s": 0.5}),
                TargetFailure(spec="docker:y", kind="sigill", message="illegal instruction", exit_code=132,
                              stage="import-tensorflow", target_info={"image_ref": "y"})]
    directories = []
    for index, outcome in enumerate(outcomes):
        directories.append(str(tmp_path / f"capture-{index}"))
        save_capture_dir(outcome, tmp_path / "none", Path(directories[-1]), golden.sha256)
    code, _, _, report = run_cli("compare", *directories)
    assert code == 3 and [t["verdict"] for t in report["targets"]] == ["IDENTICAL", "FAIL", "ERROR"]
    assert schemas.problems(REPORT_SCHEMA, report) == []


def test_fields_may_be_added_to_reports_and_captures_but_not_to_the_manifest(probe_captures):
    report = _report()
    report["policy"] = {"tolerance": {"atol": 1e-5}}
    report["host_tool"] = {"new": True}
    target = report["targets"][0]
    target["new_key"] = [1, 2]
    target["fingerprint_diff"][0].update(missing=["avx512f"], extra=["amx_tile"])
    target["outputs"]["class_probs"].update(max_rel=None, max_ulp=None, p99_ulp=None, p99_rel=None, new_stat=3)
    assert schemas.problems(REPORT_SCHEMA, report) == []
    _, capture = probe_captures
    assert schemas.problems(CAPTURE_SCHEMA, dict(capture, new_field={"x": 1})) == []
    (problem,) = schemas.problems(GOLDEN_SCHEMA, dict(_manifest(), signed_by="me"))
    assert str(problem) == ("$.signed_by: unknown key (known: 'batch_size', 'calibration', 'created', 'description', "
                            "'determinism', 'envcheck_version', 'expected_digests', 'files', 'latency', 'layers', 'policy', 'reference', 'reference_image', 'schema', 'tflite')")


# ---------------------------------------------------------------------- broken documents are named

def _set(path: tuple, value):
    def change(document):
        set_at(document, path, value)
    return change


BROKEN = [
    pytest.param(REPORT_SCHEMA, _set(("targets", 0, "verdict"), "MAYBE"), "$.targets[0].verdict: must be one of",
                 id="report-verdict"),
    pytest.param(REPORT_SCHEMA, _set(("targets", 1, "fingerprint_diff", 0, "severity"), "loud"),
                 "$.targets[1].fingerprint_diff[0].severity: must be one of", id="report-severity"),
    pytest.param(REPORT_SCHEMA, _set(("targets", 0, "outputs", "class_probs", "max_ulp"), "5"),
                 "$.targets[0].outputs.class_probs.max_ulp: must be a number or null", id="report-stat-type"),
    pytest.param(REPORT_SCHEMA, _set(("targets", 2, "error"), None), "$.targets[2].error: must be an object",
                 id="report-error-without-error"),
    pytest.param(REPORT_SCHEMA, _set(("exit_code",), 7), "$.exit_code: must be one of 0, 1, 3", id="report-exit"),
    pytest.param(REPORT_SCHEMA, _set(("targets",), {}), "$.targets: must be an array", id="report-targets"),
    pytest.param(REPORT_SCHEMA, _set(("golden",), KeyError), "$.golden: required but missing", id="report-golden"),
    pytest.param(REPORT_SCHEMA, _set(("summary", "GREAT"), 1), "$.summary", id="report-summary-key"),
    pytest.param(REPORT_SCHEMA, _set(("created",), "yesterday"), "$.created: 'yesterday' does not match",
                 id="report-created"),
    pytest.param(GOLDEN_SCHEMA, _set(("files", "model/saved_model.pb"), 42),
                 "$.files['model/saved_model.pb']: must be a string, got 42", id="manifest-digest"),
    pytest.param(GOLDEN_SCHEMA, _set(("policy", "severity"), {"x": "loud"}), "$.policy.severity.x: must be one of",
                 id="manifest-policy"),
    pytest.param(CAPTURE_SCHEMA, _set(("status",), "ok"), "$.error: must be null", id="capture-ok-with-error"),
    pytest.param(CAPTURE_SCHEMA, _set(("target", "info"), "docker"), "$.target.info: must be an object",
                 id="capture-target-info"),
    pytest.param(CAPTURE_SCHEMA, _set(("golden_sha256",), "abc"), "$.golden_sha256: 'abc' does not match",
                 id="capture-golden"),
]


@pytest.mark.parametrize("name, change, says", BROKEN)
def test_broken_documents_are_refused_naming_the_path(name, change, says, probe_captures):
    document = {REPORT_SCHEMA: _report(), GOLDEN_SCHEMA: _manifest(), CAPTURE_SCHEMA: probe_captures[1]}[name]
    document = copy.deepcopy(document)
    change(document)
    found = schemas.problems(name, document)
    assert found and any(says in str(problem) for problem in found), [str(p) for p in found]
    assert schemas.check(document, name, "some.json").startswith(f"some.json: {found[0]}")


@pytest.mark.parametrize("expected", VERSIONED)
def test_a_newer_version_is_refused_with_an_upgrade_message(expected):
    newer = expected.replace("/1", "/2")
    assert schemas.check({"schema": newer}, expected, "x.json") == (
        f"x.json was written by a newer envcheck (schema {newer}; this envcheck reads {expected}): upgrade envcheck")
    assert "upgrade" not in schemas.check({"schema": "acme/7"}, expected, "x.json")
    assert "upgrade" not in schemas.check({"schema": expected.replace("/1", "/0")}, expected, "x.json")
    assert "no 'schema' key" in schemas.check({}, expected, "x.json")


def test_review_skips_newer_and_invalid_reports_with_the_reason(tmp_path):
    good = _report("beijing-1")
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "newer.json").write_text(json.dumps(dict(good, schema="envcheck.report/2")))
    broken = copy.deepcopy(good)
    broken["targets"][0]["outputs"]["class_probs"]["status"] = 7
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "bad-time.json").write_text(json.dumps(dict(good, created="2026-13-45T99:00:00Z")))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "list.json").write_text("[1, 2]")
    reviewed = review([tmp_path])
    skipped = {Path(path).name: why for path, why in reviewed.skipped}
    assert reviewed.files_read == 1 and set(skipped) == {"newer.json", "broken.json", "bad-time.json", "deep.json",
                                                         "list.json"}
    assert skipped["newer.json"].endswith("(schema envcheck.report/2; this envcheck reads envcheck.report/1): "
                                          "upgrade envcheck")
    assert skipped["broken.json"].startswith("$.targets[0].outputs.class_probs.status: must be one of")
    assert "created" in skipped["bad-time.json"] and "not an envcheck report" in skipped["list.json"]


# --------------------------------------------------------- the fast shortcut agrees with jsonschema

def _corpus() -> list[tuple[str, dict]]:
    raw = json.loads((RECORDED_REPORTS / "shenzhen-3.json").read_text())
    capture = {"schema": CAPTURE_SCHEMA, "probe_version": "1", "started": "2026-11-26T11:18:52Z",
               "status": "error", "stage": "import-tensorflow", "fingerprint": {"python": {"version": "3.8"}},
               "timings": {"total_s": 0.5}, "outputs": {"a": {"shape": [2, 3], "dtype": "float32"}},
               "error": {"kind": "sigill", "message": "m", "exit_code": -4, "stage": None, "stderr_tail": "",
                         "traceback": ""},
               "target": {"spec": "host", "site": None, "info": {}}, "golden_sha256": "0" * 64}
    policy = {"tolerance": {"atol": 1e-5, "rtol": 0, "outputs": {"e": {"atol": 1, "classification": True}}},
              "severity": {"env.X": "warn"}}
    for target in raw["targets"]:
        target["fingerprint"] = {"trimmed": True}  # free content: mutating it proves nothing
    return [(REPORT_SCHEMA, raw), (GOLDEN_SCHEMA, _manifest()), (CAPTURE_SCHEMA, capture), ("policy", policy)]


CORPUS = _corpus()


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 4), st.floats(allow_nan=True, allow_infinity=True), st.just(1.0),
    st.sampled_from(["", "x", "ERROR", "MAYBE", "warn", "loud", "identical", "ok", "error", "running",
                     "envcheck.report/1", "envcheck.golden/1", "0" * 64, "2026-11-26T11:18:52Z", "float32"]),
    st.lists(st.one_of(st.integers(-1, 3), st.text(max_size=2)), max_size=3),
    st.dictionaries(st.sampled_from(["kind", "message", "atol", "status", "x", "classification"]),
                    st.one_of(st.integers(-1, 2), st.text(max_size=2), st.booleans()), max_size=3))


def _mutated(data, corpus) -> tuple[str, dict]:
    """A corpus document with one or two values replaced, deleted or added (Hypothesis draws which)."""
    name, original = data.draw(st.sampled_from(corpus))
    document = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(list(_paths(document))[1:] or [()]))
        if not path:
            break
        *parents, last = path
        holder = document
        for part in parents:
            holder = holder[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(holder, dict):
            del holder[last]
        elif action == "add" and isinstance(holder, dict):
            holder[data.draw(st.sampled_from(["extra", "polcy", "error", "stage"]))] = data.draw(JSON_VALUES)
        else:
            holder[last] = data.draw(JSON_VALUES)
    return name, document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_shortcut_agrees_with_jsonschema(data):
    name, document = _mutated(data, CORPUS)
    shortcut = schemas._shortcut(name)
    assert shortcut is not None
    assert shortcut(document) == schemas._validator(name).is_valid(document)


TYPED_CORPUS = [(name, document) for name, document in CORPUS if name in (REPORT_SCHEMA, CAPTURE_SCHEMA)]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_typed_check_of_bytes_never_says_yes_to_an_invalid_document(data):
    """typed.py may refuse a valid document (jsonschema then decides), never accept an invalid one;
    written as json.dumps writes it (NaN included), parsed as the review parses it."""
    name, document = _mutated(data, TYPED_CORPUS)
    content = json.dumps(document).encode()
    typed = schemas._bytes_check(name)
    assert typed is not None
    if typed(content, schemas.loads(content)):
        assert schemas._validator(name).is_valid(document)


@pytest.mark.parametrize("name, document", TYPED_CORPUS + [(REPORT_SCHEMA, json.loads(p.read_bytes())) for p in REPORTS],
                         ids=[name for name, _ in TYPED_CORPUS] + [p.name for p in REPORTS])
def test_typed_check_says_yes_to_real_documents(name, document):
    """What envcheck writes takes the fast path (else the review would be as slow as before)."""
    content = json.dumps(document).encode()
    assert schemas._bytes_check(name)(content, document) and schemas._validator(name).is_valid(document)


@pytest.mark.parametrize("schema", [
    {"type": "string", "enum": ["a", 1]},  # an enum value its type refuses
    {"enum": ["a", "b"], "const": "a"},
    {"type": "object", "propertyNames": {"type": "integer"}},  # msgspec would read the key "1" as 1
    {"type": "object", "propertyNames": {"enum": [1]}},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}], "maxItems": 1},
    {"type": "number", "maximum": 2 ** 53},  # an integer read into a float is rounded near the bound
    {"type": "string", "format": "date"},  # a keyword it does not know
    {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
])
def test_what_cannot_be_typed_soundly_is_not_typed(schema):
    """typed.py refuses to translate rather than translate loosely (fast.py and jsonschema then decide)."""
    from envcheck.schemas.typed import Untranslatable, compile_bytes_check

    with pytest.raises(Untranslatable):
        compile_bytes_check(schema)


@pytest.mark.parametrize("content", [b'{"a": NaN}', b"\xef\xbb\xbf[1]", '{"a": "\u00e9"}'.encode("utf-16"),
                                     b'"\\ud800"', b"[1e400, 123456789012345678901234567890, -0.0]", b'{"a":1,"a":2}'])
def test_loads_reads_what_json_reads(content):
    assert repr(schemas.loads(content)) == repr(json.loads(content))


@pytest.mark.parametrize("content", [b"{", b"", b"[1,]", b"\xff"])
def test_loads_refuses_what_json_refuses(content):
    with pytest.raises(ValueError):
        json.loads(content)
    with pytest.raises(ValueError):
        schemas.loads(content)


@pytest.mark.parametrize("name, document", CORPUS, ids=[name for name, _ in CORPUS])
def test_shortcut_says_yes_to_the_corpus(name, document):
    assert schemas._shortcut(name)(document) and schemas._validator(name).is_valid(document)
