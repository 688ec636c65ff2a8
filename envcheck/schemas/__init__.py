"""The on-disk formats as published JSON Schemas (draft 2020-12), and the one place that applies them.

Each `*.schema.json` beside this file is a contract users' own CI can validate against with any
JSON Schema tool; envcheck applies the same files with `jsonschema`, the reference validator, at
every read. Version rule: fields are only ever added within a schema version, so a document of a
newer version is refused with an upgrade message rather than half-read.

jsonschema is imported on first use only: `envcheck --help` must stay instant.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPORT_SCHEMA = "envcheck.report/1"
"""The JSON report's schema: written by report.json, read by the review."""
SCHEMA_DIR = Path(__file__).parent
# schema string (the document's own "schema" key) -> schema file; the policy has no such key.
SCHEMA_FILES = {
    "envcheck.golden/1": "golden-1.schema.json",
    "envcheck.capture/1": "capture-1.schema.json",
    "envcheck.report/1": "report-1.schema.json",
    "envcheck.layers/1": "layers-1.schema.json",
    "policy": "policy-1.schema.json",
    "fleet": "fleet-1.schema.json",
}
_VERSIONED = re.compile(r"^envcheck\.([a-z]+)/([0-9]+)$")
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One way a document breaks its schema, located by the path of keys / list indexes to it."""

    path: tuple[str | int, ...]
    message: str
    """In words, without the location (e.g. `unknown key; did you mean 'policy'?`)."""
    keyword: str
    """The schema keyword that failed: type, enum, const, minimum, required, additionalProperties, …"""
    instance: Any = None
    expected: Any = None
    """The keyword's value in the schema (the allowed types, the enum, the minimum …)."""
    suggestion: str | None = None
    """For an unknown key: the nearest known one, if any is close."""

    def __str__(self) -> str:
        """`$.path.to[0].field: what is wrong`."""
        return f"{json_path(self.path)}: {self.message}"


def json_path(path: tuple[str | int, ...]) -> str:
    """`$.targets[2].verdict`, with keys that are not identifiers quoted: `$.files['inputs.npz']`."""
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _BARE_KEY.match(part):
            text += f".{part}"
        else:
            text += "[" + json.dumps(part, ensure_ascii=False).replace('"', "'") + "]"
    return text


def load_schema(name: str) -> dict[str, Any]:
    """The schema for a schema string (`envcheck.capture/1`) or `policy`, as published."""
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[name]).read_text(encoding="utf-8"))


@functools.cache
def _inlined(name: str) -> dict[str, Any]:
    # NOTE: the published files use $ref (to $defs, and from the golden manifest to the policy);
    # jsonschema resolves each $ref on every visit, several times slower. The formats are not
    # recursive, so both validators below work on a copy with every $ref inlined.
    schema = load_schema(name)
    return _inline(schema, schema)


@functools.cache
def _validator(name: str):
    """The reference validator (jsonschema): decides, and words every problem."""
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(load_schema(name))
    return Draft202012Validator(_inlined(name))


@functools.cache
def _shortcut(name: str):
    """A fast yes for valid documents (see fast.py); None if the schema uses a keyword it lacks."""
    from envcheck.schemas.fast import compile_schema

    try:
        return compile_schema(_inlined(name))
    except ValueError:
        return None


@functools.cache
def _bytes_check(name: str):
    """A fast yes for valid bytes (see typed.py); None if the schema cannot be typed soundly."""
    from envcheck.schemas.typed import Untranslatable, compile_bytes_check

    try:
        return compile_bytes_check(_inlined(name))
    except Untranslatable:
        return None


def loads(content: bytes) -> Any:
    """The JSON document in `content`, exactly as json.loads reads it, at twice its speed: msgspec parses,
    and what it refuses (NaN, a BOM, UTF-16, a lone surrogate, malformed text) goes to json.loads, which
    reads it or raises its ValueError (RecursionError for absurd nesting)."""
    import msgspec

    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return json.loads(content)


def _inline(node: Any, root: dict[str, Any]) -> Any:
    """`node` with every $ref replaced by what it points to (a local `#/$defs/…` or a sibling file)."""
    if isinstance(node, list):
        return [_inline(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: value for key, value in node.items() if key not in ("$id", "$schema") or node is root}
    reference = node.pop("$ref", None)
    inlined = {key: _inline(value, root) for key, value in node.items() if key != "$defs"}
    if reference is None:
        return inlined
    if reference.startswith("#/$defs/"):
        target = _inline(root["$defs"][reference.removeprefix("#/$defs/")], root)
    else:  # another published file, e.g. "policy-1.schema.json"
        other = json.loads((SCHEMA_DIR / reference).read_text(encoding="utf-8"))
        target = _inline({k: v for k, v in other.items() if k not in ("$id", "$schema")}, other)
    # A $ref with sibling keywords means both apply (2020-12): keep them side by side.
    return {"allOf": [target, inlined]} if inlined else target


def problems(name: str, document: Any) -> list[Problem]:
    """Every schema violation of `document`, ordered by location (empty: valid)."""
    shortcut = _shortcut(name)
    if shortcut is not None and shortcut(document):  # the common case: valid, said fast
        return []
    found: dict[tuple, Problem] = {}
    for error in _validator(name).iter_errors(document):
        for problem in _problems_of(error):
            found.setdefault((problem.path, problem.message), problem)
    return sorted(found.values(), key=lambda p: ([str(part) for part in p.path], p.keyword))


def _problems_of(error) -> list[Problem]:
    """jsonschema's error as Problems; if/then/allOf wrappers are unwrapped to the real failure."""
    path = tuple(error.absolute_path)
    if error.context:  # a combinator: report what failed inside it
        return [p for sub in error.context for p in _problems_of(sub)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        return [_unknown_key(path + (key,), key, known) for key in error.instance if key not in known]
    if error.validator == "required":
        # (one error per missing key, each with the whole list: problems() drops the repeats)
        return [Problem(path + (key,), "required but missing", "required", None, error.validator_value)
                for key in error.validator_value if isinstance(error.instance, dict) and key not in error.instance]
    if error.validator == "const":
        message = f"must be {json.dumps(error.validator_value)}, got {_shown(error.instance)}"
    elif error.validator == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        message = f"must be one of {allowed}, got {_shown(error.instance)}"
    elif error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        message = f"must be {' or '.join(_TYPE_WORDS.get(t, str(t)) for t in types)}, got {_shown(error.instance)}"
    else:
        message = error.message
    return [Problem(path, message, str(error.validator), error.instance, error.validator_value)]


def _unknown_key(path: tuple[str | int, ...], key: str, known: list[str]) -> Problem:
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        message = f"unknown key; did you mean {close[0]!r}?"
    elif known:
        message = f"unknown key (known: {', '.join(repr(k) for k in known)})"
    else:
        message = "unknown key"
    return Problem(path, message, "additionalProperties", key, known, close[0] if close else None)


_TYPE_WORDS = {"object": "an object", "array": "an array", "string": "a string", "number": "a number",
               "integer": "an integer", "boolean": "true or false", "null": "null"}


def _shown(value: Any) -> str:
    """A value as the user wrote it, short, with its JSON type when that is the point."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return f"{json.dumps(value[:80], ensure_ascii=False)} (a string)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def describe(found: list[Problem]) -> str:
    """One line for a person: the first problem, and how many more there are."""
    more = f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return f"{found[0]}{more}"


def version_problem(found: Any, expected: str, what: str) -> str | None:
    """Why a document declaring schema `found` cannot be read as `expected`; None when it can.

    A newer version of the same format is told apart from a foreign file: the fix is an upgrade.
    """
    if found == expected:
        return None
    mine, theirs = _VERSIONED.match(expected), _VERSIONED.match(found) if isinstance(found, str) else None
    if mine and theirs and mine.group(1) == theirs.group(1) and int(theirs.group(2)) > int(mine.group(2)):
        return (f"{what} was written by a newer envcheck (schema {found}; this envcheck reads {expected}): "
                "upgrade envcheck")
    if found is None:
        return f"{what} has no 'schema' key: not an envcheck {expected.split('/', maxsplit=1)[0]} document (expected {expected})"
    return f"{what} has schema {found!r}, expected {expected!r}"


def check(document: Any, expected: str, what: str, content: bytes | None = None) -> str | None:
    """The version rule, then the schema: None when `document` is a valid `expected` document,
    else one line naming `what` (usually the file) and the JSON path of the first problem.
    `content`: the bytes `document` was parsed from, which are checked fastest (typed.py)."""
    if not isinstance(document, dict):
        return f"{what} is not a JSON object ({_shown(document)})"
    problem = version_problem(document.get("schema"), expected, what)
    if problem:
        return problem
    typed = _bytes_check(expected) if content is not None else None
    if typed is not None and typed(content, document):  # the common case: valid, said fastest
        return None
    found = problems(expected, document)
    return f"{what}: {describe(found)}" if found else None
