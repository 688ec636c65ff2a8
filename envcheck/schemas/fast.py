"""A yes/no shortcut for valid documents: the schema's keywords compiled into nested closures.

Why: jsonschema re-dispatches every keyword on every value; a report with a hundred fingerprint
differences took ~5 ms to validate, which made `envcheck review` of 10,000 reports half a minute
slower. Only the keywords envcheck's schemas use are compiled, with jsonschema's semantics (a bool
is not a number, 1.0 is an integer, keywords ignore values of other types). jsonschema stays the
reference: whenever this says "invalid" — or meets a keyword it does not know — jsonschema decides
and words the problem; tests/test_schemas.py checks the two agree on valid and broken documents.
"""
from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"})

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: _number(v),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def compile_schema(schema: Any) -> Check:
    """A function that says whether a value is valid; ValueError for a keyword it cannot compile."""
    if schema is True:
        return lambda value: True
    if schema is False:
        return lambda value: False
    compiled = (_keyword(key, value, schema) for key, value in schema.items() if key not in ANNOTATIONS)
    checks: list[Check] = [check for check in compiled if check is not None]
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: true and 1 differ (Python says they are equal)."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return one == two


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _keyword(key: str, value: Any, schema: dict[str, Any]) -> Check | None:
    if key == "type":
        tests = [_TYPES[name] for name in ([value] if isinstance(value, str) else value)]
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(test(v) for test in tests)
    if key == "enum":
        if all(isinstance(allowed, str) for allowed in value):  # the usual case: a set lookup
            words = frozenset(value)
            return lambda v: isinstance(v, str) and v in words
        return lambda v: any(_equal(v, allowed) for allowed in value)
    if key == "const":
        return lambda v: _equal(v, value)
    if key == "required":
        return lambda v: not isinstance(v, dict) or all(name in v for name in value)
    if key == "properties":
        named = [(name, compile_schema(sub)) for name, sub in value.items()]
        return lambda v: not isinstance(v, dict) or all(check(v[name]) for name, check in named if name in v)
    if key == "additionalProperties":
        rest, known = compile_schema(value), frozenset(schema.get("properties", {}))
        return lambda v: not isinstance(v, dict) or all(rest(item) for name, item in v.items() if name not in known)
    if key == "propertyNames":
        names = compile_schema(value)
        return lambda v: not isinstance(v, dict) or all(names(name) for name in v)
    if key in ("minProperties", "minItems", "maxItems", "minLength"):
        kind = str if key == "minLength" else dict if key == "minProperties" else list
        if key == "maxItems":
            return lambda v: not isinstance(v, kind) or len(v) <= value
        return lambda v: not isinstance(v, kind) or len(v) >= value
    if key == "prefixItems":
        firsts = [compile_schema(sub) for sub in value]
        return lambda v: not isinstance(v, list) or all(check(item) for check, item in zip(firsts, v, strict=False))
    if key == "items":
        each, skip = compile_schema(value), len(schema.get("prefixItems", ()))
        return lambda v: not isinstance(v, list) or all(each(item) for item in v[skip:])
    if key == "minimum":
        return lambda v: not _number(v) or not v < value
    if key == "exclusiveMinimum":
        return lambda v: not _number(v) or not v <= value
    if key == "maximum":
        return lambda v: not _number(v) or not v > value
    if key == "pattern":
        pattern = re.compile(value)
        return lambda v: not isinstance(v, str) or pattern.search(v) is not None
    if key == "allOf":
        parts = [compile_schema(sub) for sub in value]
        return lambda v: all(part(v) for part in parts)
    if key == "if":
        condition = compile_schema(value)
        then, otherwise = compile_schema(schema.get("then", True)), compile_schema(schema.get("else", True))
        return lambda v: then(v) if condition(v) else otherwise(v)
    if key in ("then", "else"):
        return None  # compiled with "if"
    raise ValueError(f"no shortcut for the keyword {key!r}")
