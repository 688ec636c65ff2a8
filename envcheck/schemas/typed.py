"""A yes for valid JSON *bytes*: a schema translated into msgspec types, checked in C while decoding.

Why: `envcheck review` of 100,000 reports validated each parsed report in Python (fast.py: ~200 µs
a report, twice the cost of parsing it). msgspec checks a typed decode of the same bytes in ~30 µs.

The translation is sound, never loose: every type accepts the same values as its schema or fewer (an
`integer` refuses 1.0, `prefixItems` become a tuple of exactly that length, an unknown keyword makes the
translation fail), so a "no" only means "ask the reference". Conditionals (if/then/else) cannot be types:
they are left out of the types and kept in a residual schema (the same navigation — properties, items,
allOf — down to each conditional, nothing else), which fast.py checks on the parsed document.

valid = the typed decode accepts the bytes and the residual accepts the document; anything else goes
to jsonschema, which decides and words the problem (schemas.problems).
"""
from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from envcheck.schemas.fast import ANNOTATIONS, compile_schema

CONDITIONALS = frozenset({"if", "then", "else"})
NAVIGATION = ("properties", "additionalProperties", "items", "prefixItems", "allOf")
"""The keywords that lead from a value to the values inside it: the residual keeps only these."""
_KNOWN = {
    "string": {"type", "pattern", "minLength"},
    "number": {"type", "minimum", "maximum"},
    "integer": {"type", "minimum", "maximum"},
    "boolean": {"type"},
    "array": {"type", "items", "prefixItems", "minItems", "maxItems"},
    "object": {"type", "properties", "required", "additionalProperties", "propertyNames", "minProperties"},
}
_SAFE_FLOAT_BOUND = 2 ** 53
"""msgspec reads a JSON integer into a float field: beyond 2**53 the rounding could let one past a bound."""
_struct_names = itertools.count()


class Untranslatable(ValueError):
    """The schema uses a keyword (or a combination) with no exact-or-stricter type."""


def compile_bytes_check(schema: Any) -> Callable[[bytes, Any], bool]:
    """check(content, document): True when `content` (whose parse is `document`) is valid for `schema`.
    Untranslatable when the schema cannot be typed soundly."""
    try:
        decoder = msgspec.json.Decoder(translate(schema))
    except TypeError as error:  # a union msgspec cannot decode (two object types, …)
        raise Untranslatable(str(error)) from None
    leftover = residual(schema)
    conditions = compile_schema(leftover) if leftover is not None else None

    def check(content: bytes, document: Any) -> bool:
        try:
            decoder.decode(content)
        except msgspec.DecodeError:  # (ValidationError is one)
            return False
        return conditions is None or conditions(document)

    return check


def translate(schema: Any) -> Any:
    """The msgspec type of `schema`'s values, conditionals left out."""
    schema = _meaningful(schema)
    if schema is True or schema == {}:
        return Any
    if schema is False:
        raise Untranslatable("false")
    if "allOf" in schema:
        parts = [_meaningful(part) for part in schema["allOf"]]
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        return translate(_merge([part for part in parts + [rest] if part not in ({}, True)]))
    if "enum" in schema or "const" in schema:
        values = schema["enum"] if "enum" in schema else [schema["const"]]
        kinds = schema.get("type", ["string", "integer"])
        allowed = {kinds} if isinstance(kinds, str) else set(kinds)
        if set(schema) - {"enum", "type"} and set(schema) - {"const", "type"}:  # (both, or other keywords)
            raise Untranslatable(f"enum with {sorted(schema)}")
        if not all(_fits(value, allowed) for value in values):
            raise Untranslatable(f"enum {values!r} beside type {kinds!r}")
        return Literal[tuple(values)]  # (each value one its `type` allows)
    kinds = schema.get("type")
    if kinds is None:  # keywords of objects only: typed as an object (stricter: other values refused)
        kinds = "object"
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    types = [_one(kind, schema) for kind in kinds if kind != "null"]
    if "null" in kinds:
        types.append(type(None))
    return functools.reduce(operator.or_, types)


def _fits(value: Any, allowed: set[str]) -> bool:
    """Whether an enum value is a text or an integer (what a Literal holds exactly: a JSON 1.0 is refused where
    1 is listed, stricter, never looser) of a type the schema allows beside the enum."""
    if type(value) is str:
        return "string" in allowed
    return type(value) is int and bool({"integer", "number"} & allowed)


def residual(schema: Any) -> Any:
    """What the types leave out: the navigation to each conditional and the conditional itself (None:
    nothing is left out)."""
    if not isinstance(schema, dict):
        return None
    kept: dict[str, Any] = {key: schema[key] for key in CONDITIONALS if key in schema}
    for key in NAVIGATION:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            inner = {name: sub for name, sub in ((n, residual(s)) for n, s in value.items()) if sub is not None}
            found: Any = inner or None
        elif isinstance(value, list):  # prefixItems, allOf: positions matter, a gap is `true`
            subs = [residual(sub) for sub in value]
            found = [True if sub is None else sub for sub in subs] if any(s is not None for s in subs) else None
        else:
            found = residual(value)
        if found is not None:
            kept[key] = found
    if "items" in kept and "prefixItems" in schema:  # `items` counts from the end of prefixItems
        kept.setdefault("prefixItems", [True] * len(schema["prefixItems"]))
    if "additionalProperties" in kept and "properties" in schema:  # "additional" means "not named"
        kept["properties"] = {name: kept.get("properties", {}).get(name, True) for name in schema["properties"]}
    return kept or None


def _meaningful(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    return {key: value for key, value in schema.items() if key not in ANNOTATIONS and key not in CONDITIONALS}


def _merge(parts: list[dict[str, Any]]) -> Any:
    """allOf of object schemas (a $ref with sibling properties) as one: each property named by one part."""
    if not parts:
        return True
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, Any] = {"properties": {}, "required": []}
    for part in parts:
        if set(part) - {"type", "properties", "required"} or ("type" in part and "type" in merged):
            raise Untranslatable(f"allOf part {sorted(part)}")
        if set(part.get("properties", {})) & set(merged["properties"]):
            raise Untranslatable("allOf parts name one property twice")
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
        if "type" in part:
            merged["type"] = part["type"]
    return merged


def _limited(base: Any, **limits: Any) -> Any:
    limits = {key: value for key, value in limits.items() if value is not None}
    return Annotated[base, msgspec.Meta(**limits)] if limits else base


def _one(kind: str, schema: dict[str, Any]) -> Any:
    """The type of one JSON type's values under `schema`'s keywords for it."""
    if kind not in _KNOWN:
        raise Untranslatable(f"type {kind!r}")
    unknown = set(schema) - set().union(*_KNOWN.values())
    if unknown:
        raise Untranslatable(f"keywords {sorted(unknown)}")
    if kind == "string":
        return _limited(str, pattern=schema.get("pattern"), min_length=schema.get("minLength"))
    if kind in ("number", "integer"):
        bounds = [schema[key] for key in ("minimum", "maximum") if key in schema]
        if kind == "number" and any(abs(bound) >= _SAFE_FLOAT_BOUND for bound in bounds):
            raise Untranslatable(f"a bound of {bounds} on a number")
        return _limited(float if kind == "number" else int, ge=schema.get("minimum"), le=schema.get("maximum"))
    if kind == "boolean":
        return bool
    if kind == "array":
        return _array(schema)
    return _object(schema)


def _array(schema: dict[str, Any]) -> Any:
    if "prefixItems" in schema:  # exactly those items (stricter where more or fewer are allowed)
        length = len(schema["prefixItems"])
        if not schema.get("minItems", 0) <= length <= schema.get("maxItems", length):
            raise Untranslatable("minItems or maxItems beyond prefixItems")
        return tuple[tuple(translate(sub) for sub in schema["prefixItems"])]  # type: ignore[misc]
    return _limited(list[translate(schema.get("items", True))],  # type: ignore[misc]
                    min_length=schema.get("minItems"), max_length=schema.get("maxItems"))


def _key(names: Any) -> Any:
    """The type of an object's keys under `propertyNames`: keys are texts, so only rules on texts are typed
    (msgspec would read the key "1" as the integer 1)."""
    meaningful = _meaningful(names)
    if residual(names) is not None or not isinstance(meaningful, dict) or meaningful.get("type", "string") != "string":
        raise Untranslatable(f"propertyNames {names!r}")
    if not all(isinstance(value, str) for value in meaningful.get("enum", []) + [meaningful.get("const", "")]):
        raise Untranslatable(f"propertyNames {names!r}")
    return translate(dict(meaningful, type="string"))


def _object(schema: dict[str, Any]) -> Any:
    properties = schema.get("properties", {})
    required = list(schema.get("required", ()))
    key = _key(schema["propertyNames"]) if "propertyNames" in schema else str
    if not properties and not required:
        return _limited(dict[key, translate(schema.get("additionalProperties", True))],  # type: ignore[misc,valid-type]
                        min_length=schema.get("minProperties"))
    if schema.get("additionalProperties", True) is not True or "propertyNames" in schema or "minProperties" in schema:
        raise Untranslatable("named properties with rules for the others")
    fields: list[tuple[Any, ...]] = []
    names = list(properties) + [name for name in required if name not in properties]
    for number, name in enumerate(names):
        value = translate(properties.get(name, True))
        if name in required:
            fields.append((f"f{number}", value))
        else:  # absent is fine; present must be valid (null only where the schema allows it)
            fields.append((f"f{number}", value | msgspec.UnsetType, msgspec.UNSET))
    # (fields are renamed: a JSON key need not be a Python name; unknown keys are ignored, as the schema allows)
    rename = {f"f{number}": name for number, name in enumerate(names)}
    return msgspec.defstruct(f"Object{next(_struct_names)}", fields, rename=rename, kw_only=True)
