"""Offline checks of the generated CRDs: is a schema structural, does an object pass it.

Owns an approximation of what the Kubernetes API server does with a CRD's openAPIV3Schema:
`structural_problems` applies the structural-schema rules to a schema, and `schema_errors`
validates an object with `jsonschema` plus Kubernetes' formats (cidr, ipv4, ipv6) and list types
(`x-kubernetes-list-type` set/map), after dropping nulls as the API server prunes them. Used by
the tests and by anyone checking manifests without a cluster; pure, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

Schema = Mapping[str, Any]

_JUNCTORS = ("anyOf", "oneOf", "allOf")
# Keywords the API server forbids inside anyOf/oneOf/allOf/not of a structural schema.
_NOT_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")
# Regex syntax outside the common subset of Go RE2 and ECMAScript.
_NON_PORTABLE = re.compile(r"\\[AZz]|\(\?<?[=!]|\(\?P?<\w")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("ipv4", raises=ValueError)
def _ipv4(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv4Address(value))


@FORMATS.checks("ipv6", raises=ValueError)
def _ipv6(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.IPv6Address(value))


@FORMATS.checks("cidr", raises=ValueError)
def _cidr(value: object) -> bool:
    # Like Go's net.ParseCIDR, which Kubernetes uses: host bits may be set.
    return not isinstance(value, str) or ("/" in value and bool(ipaddress.ip_network(value, strict=False)))


def _list_type(
    validator: Validator, list_type: str, instance: Any, schema: Schema
) -> Iterator[jsonschema.ValidationError]:
    """x-kubernetes-list-type: a `set` has no duplicates, a `map` no two items with one key."""
    if not validator.is_type(instance, "array") or list_type not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: set[str] = set()
    for item in instance:
        key = repr(item) if list_type == "set" else repr([item.get(k) for k in keys])
        if key in seen:
            yield jsonschema.ValidationError(f"duplicate entry {key} in a list of type {list_type}")
        seen.add(key)


CRDValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped in the stubs
    jsonschema.Draft202012Validator, {"x-kubernetes-list-type": _list_type}
)


def without_nulls(value: Any) -> Any:
    """`value` without null map entries, as the API server prunes them before validation."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def crd_schema(crd: Schema, version: str | None = None) -> Schema:
    """The openAPIV3Schema of a CRD's version (default: the storage version)."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version or (version is None and entry.get("storage")):
            schema: Schema = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"CRD {crd['metadata']['name']} has no version {version!r}")


def schema_errors(obj: Any, schema: Schema) -> list[str]:
    """Why `obj` fails `schema` (an openAPIV3Schema), as `path: message` lines; [] when valid."""
    validator = CRDValidator(schema, format_checker=FORMATS)
    errors = sorted(validator.iter_errors(without_nulls(obj)), key=lambda e: list(map(str, e.path)))
    return [f"{e.json_path.removeprefix('$.') or '(object)'}: {e.message}" for e in errors]


def structural_problems(schema: Schema, path: str = "") -> list[str]:
    """Where `schema` breaks the rules of a Kubernetes structural schema; [] when none."""
    problems: list[str] = []
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '(root)'}: no type")
    problems += _keyword_problems(schema, path)
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            problems += structural_problems(schema[key], f"{path}.{key}")
    for sub, where in _junctor_branches(schema, path):
        problems += _value_validation_problems(sub, where)
    return problems


def _keyword_problems(schema: Schema, path: str) -> list[str]:
    problems = []
    if "$ref" in schema or "$defs" in schema or "definitions" in schema:
        problems.append(f"{path}: $ref/$defs are not allowed")
    if "additionalProperties" in schema and (
        "properties" in schema or schema["additionalProperties"] is False
    ):
        problems.append(f"{path}: additionalProperties together with properties, or false")
    if "const" in schema or isinstance(schema.get("exclusiveMinimum"), int | float):
        problems.append(f"{path}: const and numeric exclusiveMinimum are not OpenAPI v3.0")
    if schema.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems: true is forbidden (use x-kubernetes-list-type: set)")
    pattern = schema.get("pattern")
    if pattern is not None and _NON_PORTABLE.search(pattern):
        problems.append(f"{path}: pattern {pattern!r} is not valid in both RE2 and ECMAScript")
    return problems


def _junctor_branches(schema: Schema, path: str) -> Iterator[tuple[Schema, str]]:
    for key in _JUNCTORS:
        for index, sub in enumerate(schema.get(key, [])):
            yield sub, f"{path}.{key}[{index}]"
    if isinstance(schema.get("not"), Mapping):
        yield schema["not"], f"{path}.not"


def _value_validation_problems(schema: Schema, path: str) -> list[str]:
    problems = [f"{path}: {k} is not allowed in a value validation" for k in _NOT_IN_JUNCTORS if k in schema]
    problems += _keyword_problems(schema, path)
    for sub, where in _junctor_branches(schema, path):
        problems += _value_validation_problems(sub, where)
    for name, sub in schema.get("properties", {}).items():
        problems += _value_validation_problems(sub, f"{path}.{name}")
    return problems
