"""Validation of CustomResourceDefinitions, as the apiextensions server does it on create and update.

Names (`<plural>.<group>`, DNS labels, a group with a dot), scope, versions (unique names, exactly
one storage version, a schema for each), and the structural-schema rules for each schema: a type on
every node, no `additionalProperties` beside `properties`, nothing but value validations inside
`anyOf`/`oneOf`/`allOf`/`not`, `metadata` restricting only name and generateName, and patterns
that compile as Go RE2 regular expressions. Pure; called by `crd.py`.
"""

from __future__ import annotations

import re
from typing import Any

from lbipam.apiserver.errors import Cause, forbidden, invalid, not_supported, required
from lbipam.apiserver.kinds.validation import dns1035_label, dns1123_label, dns1123_subdomain

_JUNCTORS = ("anyOf", "oneOf", "allOf")
_NOT_IN_JUNCTORS = ("type", "default", "additionalProperties", "nullable", "description")
# Perl syntax Go's RE2 rejects: lookaround, backreferences, atomic groups, possessive quantifiers.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]|\(\?P=|[*+?}]\+|\(\?\(")


def crd_causes(crd: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    causes = _name_causes(crd, spec)
    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    causes += _version_causes(spec)
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("scope") and scope != old_spec["scope"]:
            causes.append(invalid("spec.scope", scope, "field is immutable"))
        stored = (old.get("status") or {}).get("storedVersions") or []
        names = {v.get("name") for v in spec.get("versions") or [] if isinstance(v, dict)}
        for index, version in enumerate(stored):
            if version not in names:
                causes.append(
                    invalid(f"status.storedVersions[{index}]", version, "must appear in spec.versions")
                )
    return causes


def _name_causes(crd: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    group = spec.get("group") or ""
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    plural = names.get("plural") or ""
    if not group:
        causes.append(required("spec.group"))
    else:
        causes += [invalid("spec.group", group, p) for p in dns1123_subdomain(group)]
        if "." not in group:
            causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        causes.append(required("spec.names.plural"))
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        causes += [invalid(f"spec.names.{key}", value, p) for p in dns1123_label(value)] if value else []
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if not value and key == "kind":
            causes.append(required("spec.names.kind"))
        elif value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", value):
            causes.append(
                invalid(
                    f"spec.names.{key}",
                    value,
                    "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
                )
            )
    for index, short in enumerate(names.get("shortNames") or []):
        causes += [invalid(f"spec.names.shortNames[{index}]", short, p) for p in dns1123_label(short)]
    name = crd["metadata"].get("name", "")
    if group and plural and name != f"{plural}.{group}":
        causes.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return causes


def _version_causes(spec: dict[str, Any]) -> list[Cause]:
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        return [
            invalid(
                "spec.versions", versions or [], "must have exactly one version marked as storage version"
            )
        ]
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, version in enumerate(versions):
        path = f"spec.versions[{index}]"
        if not isinstance(version, dict):
            causes.append(invalid(path, version, "must be an object"))
            continue
        name = version.get("name") or ""
        if not name:
            causes.append(required(f"{path}.name"))
        else:
            causes += [invalid(f"{path}.name", name, p) for p in dns1035_label(name)]
            if name in seen:
                causes.append(invalid(f"{path}.name", name, "must be unique"))
            seen.add(name)
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            causes.append(required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
        else:
            causes += structural_causes(schema, f"{path}.schema.openAPIV3Schema", root=True)
        status = (version.get("subresources") or {}).get("status", {})
        if not isinstance(status, dict):
            causes.append(invalid(f"{path}.subresources.status", status, "must be an object"))
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage") is True]
    if len(storage) != 1:
        causes.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in versions if isinstance(v, dict)],
                "must have exactly one version marked as storage version",
            )
        )
    if not any(isinstance(v, dict) and v.get("served") is True for v in versions):
        causes.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in versions if isinstance(v, dict)],
                "must have at least one version marked as served",
            )
        )
    return causes


def structural_causes(schema: dict[str, Any], path: str, root: bool = False) -> list[Cause]:
    """Where `schema` is not a structural schema (or has a pattern Go cannot compile)."""
    causes: list[Cause] = []
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    if root and schema.get("type") != "object":
        causes.append(
            required(f"{path}.type", "must not be empty at the root")
            if "type" not in schema
            else invalid(f"{path}.type", schema["type"], "must be object at the root")
        )
    elif "type" not in schema and not preserve and not int_or_string:
        causes.append(required(f"{path}.type", "must not be empty for specified object fields"))
    if "additionalProperties" in schema and "properties" in schema:
        causes.append(
            forbidden(
                f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"
            )
        )
    if schema.get("additionalProperties") is False:
        causes.append(forbidden(f"{path}.additionalProperties", "must not be false"))
    if "$ref" in schema:
        causes.append(forbidden(f"{path}.$ref", "$ref is not supported"))
    if schema.get("uniqueItems") is True:
        causes.append(
            forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    causes += _pattern_causes(schema, path)
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            here = f"{path}.properties[{name}]"
            causes += (
                _metadata_causes(sub, here) if root and name == "metadata" else structural_causes(sub, here)
            )
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            causes += structural_causes(schema[key], f"{path}.{key}")
    for sub, where in _branches(schema, path):
        causes += _value_validation_causes(sub, where)
    return causes


def _metadata_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    causes = structural_causes(schema, path)
    extra = set(schema.get("properties") or {}) - {"name", "generateName"}
    if extra:
        causes.append(
            forbidden(f"{path}.properties", "must not specify anything other than name and generateName")
        )
    return causes


def _branches(schema: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    found = [
        (sub, f"{path}.{key}[{index}]")
        for key in _JUNCTORS
        for index, sub in enumerate(schema.get(key) or [])
        if isinstance(sub, dict)
    ]
    if isinstance(schema.get("not"), dict):
        found.append((schema["not"], f"{path}.not"))
    return found


def _value_validation_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    causes = [
        forbidden(f"{path}.{key}", "must be empty to be structural")
        for key in _NOT_IN_JUNCTORS
        if key in schema
    ]
    causes += _pattern_causes(schema, path)
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            causes += _value_validation_causes(sub, f"{path}.properties[{name}]")
    if isinstance(schema.get("items"), dict):
        causes += _value_validation_causes(schema["items"], f"{path}.items")
    for sub, where in _branches(schema, path):
        causes += _value_validation_causes(sub, where)
    return causes


def _pattern_causes(schema: dict[str, Any], path: str) -> list[Cause]:
    pattern = schema.get("pattern")
    if pattern is None:
        return []
    problem = None
    if not isinstance(pattern, str):
        problem = "must be a string"
    else:
        bad = _NOT_RE2.search(pattern)
        if bad:
            problem = f"error parsing regexp: invalid or unsupported Perl syntax: `{bad.group(0)}`"
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problem = f"error parsing regexp: {exc}"
    if problem is None:
        return []
    return [invalid(f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {problem}")]


_NUMBER = (int, float)
_KEYWORD_TYPES: dict[str, Any] = {
    "type": str,
    "format": str,
    "title": str,
    "description": str,
    "pattern": str,
    "$ref": str,
    "minimum": _NUMBER,
    "maximum": _NUMBER,
    "multipleOf": _NUMBER,
    "exclusiveMinimum": bool,
    "exclusiveMaximum": bool,
    "minLength": int,
    "maxLength": int,
    "minItems": int,
    "maxItems": int,
    "minProperties": int,
    "maxProperties": int,
    "uniqueItems": bool,
    "nullable": bool,
    "required": list,
    "enum": list,
    "properties": dict,
    "allOf": list,
    "anyOf": list,
    "oneOf": list,
    "not": dict,
    "items": dict,
    "x-kubernetes-preserve-unknown-fields": bool,
    "x-kubernetes-embedded-resource": bool,
    "x-kubernetes-int-or-string": bool,
    "x-kubernetes-list-type": str,
    "x-kubernetes-map-type": str,
    "x-kubernetes-list-map-keys": list,
    "x-kubernetes-validations": list,
}
_TYPES = ["array", "boolean", "integer", "number", "object", "string"]


def schema_type_problem(schema: Any, path: str) -> str | None:
    """Where a schema has a keyword of the wrong JSON type (a decoding error, 400); None if none.

    The real server decodes openAPIV3Schema into typed JSONSchemaProps, so these never reach
    validation there either.
    """
    if not isinstance(schema, dict):
        return f"{path}: must be an object"
    for key in [k for k, v in schema.items() if v is None and k in _KEYWORD_TYPES]:
        del schema[key]  # a null keyword decodes as absent
    for key, value in schema.items():
        wanted = _KEYWORD_TYPES.get(key)
        if wanted is None or value is None:
            continue
        if (isinstance(value, bool) and wanted is not bool) or not isinstance(value, wanted):
            return f"{path}.{key}: cannot be a {type(value).__name__}"
    if isinstance(schema.get("type"), str) and schema["type"] not in _TYPES:
        return f'{path}.type: unsupported type "{schema["type"]}"'
    for key in ("required", "x-kubernetes-list-map-keys"):
        if any(not isinstance(v, str) for v in schema.get(key) or []):
            return f"{path}.{key}: must be a list of strings"
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool | dict):
        return f"{path}.additionalProperties: must be a boolean or a schema"
    children = [(f"{path}.properties[{k}]", v) for k, v in (schema.get("properties") or {}).items()]
    children += [(f"{path}.{k}", schema[k]) for k in ("items", "not") if schema.get(k) is not None]
    children += [(f"{path}.additionalProperties", extra)] if isinstance(extra, dict) else []
    children += [(f"{path}.{k}[{i}]", s) for k in _JUNCTORS for i, s in enumerate(schema.get(k) or [])]
    for where, child in children:
        problem = schema_type_problem(child, where)
        if problem:
            return problem
    return None
