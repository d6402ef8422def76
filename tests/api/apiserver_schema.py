"""What the Kubernetes API server checks against a CRD's schema, for tests without a cluster.

A small validator of the structural-schema subset the CRD uses, with the API server's semantics:
RE2 patterns (google-re2), CEL ``x-kubernetes-validations`` (cel-python), ``x-kubernetes-list-type:
set``, and unknown fields pruned rather than rejected. A transition rule (one that names ``oldSelf``)
is checked on an update only, against the stored value (``old``), as the API server does.
"""

from __future__ import annotations

import re
from typing import Any

import celpy
import re2
from celpy.adapter import json_to_cel

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def _type_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, _TYPES[kind])


# No stored value: a create, or a value the API server cannot pair with a stored one.
_NO_OLD: Any = object()
_NAMES_OLD_SELF = re.compile(r"\boldSelf\b")


def schema_errors(schema: dict[str, Any], value: Any, path: str = "", *, old: Any = _NO_OLD) -> list[str]:
    """Every rule of ``schema`` that ``value`` breaks, as 'path: rule' strings; ``old`` is the
    stored value on an update (object fields are paired with their stored ones, list items are not)."""
    here = path or "<root>"
    kind = schema.get("type")
    if kind and not _type_ok(kind, value):
        return [f"{here}: must be of type {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{here}: must be one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re2.search(schema["pattern"], value):
            errors.append(f"{here}: must match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{here}: length out of range")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{here}: out of range")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{here}: item count out of range")
        if schema.get("x-kubernetes-list-type") == "set" and len(set(map(repr, value))) != len(value):
            errors.append(f"{here}: duplicate items in a set")
        for index, item in enumerate(value):
            errors += schema_errors(schema.get("items", {}), item, f"{path}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: Required value" if path else f"{name}: Required value")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            child = f"{path}.{name}" if path else name
            if name in properties:
                stored = old.get(name, _NO_OLD) if isinstance(old, dict) else _NO_OLD
                errors += schema_errors(properties[name], item, child, old=stored)
            elif isinstance(extra, dict):
                errors += schema_errors(extra, item, child)
    for rule in schema.get("x-kubernetes-validations", []):
        transition = _NAMES_OLD_SELF.search(rule["rule"]) is not None
        if transition and old is _NO_OLD:
            continue
        if not errors and not _cel_holds(rule["rule"], value, old if transition else _NO_OLD):
            errors.append(f"{here}: {rule['message']}")
    return errors


def _cel_holds(rule: str, value: Any, old: Any = _NO_OLD) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(rule))
    activation = {"self": json_to_cel(value)}
    if old is not _NO_OLD:
        activation["oldSelf"] = json_to_cel(old)
    return bool(program.evaluate(activation))


def structural_violations(schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``schema`` breaks Kubernetes' structural-schema rules (the subset a generator can break)."""
    here = path or "<root>"
    found: list[str] = []
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "not", "title", "$defs", "nullable"):
        if forbidden in schema:
            found.append(f"{here}: has {forbidden}")
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        found.append(f"{here}: has no type")
    if "properties" in schema and "additionalProperties" in schema:
        found.append(f"{here}: has both properties and additionalProperties")
    if schema.get("type") == "array" and "items" not in schema:
        found.append(f"{here}: array without items")
    for name, child in schema.get("properties", {}).items():
        found += structural_violations(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += structural_violations(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += structural_violations(schema["additionalProperties"], f"{path}{{}}")
    return found


def patterns(schema: dict[str, Any]) -> list[str]:
    """Every regular expression in ``schema``."""
    found = [schema["pattern"]] if "pattern" in schema else []
    for child in schema.get("properties", {}).values():
        found += patterns(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += patterns(schema[key])
    return found
