"""Custom objects against their CRD's openAPIV3Schema: null pruning, pruning, defaulting, validation.

What the apiextensions server does with a structural schema, in its order: non-nullable nulls are
dropped, unknown fields pruned (not under `x-kubernetes-preserve-unknown-fields`), `default`s
applied, then the object validated. Validation uses `jsonschema` for the heavy lifting with the
Kubernetes semantics bolted on (OpenAPI `nullable`, `x-kubernetes-int-or-string`, list types
`set`/`map`, Kubernetes formats, and `pattern` evaluated like Go's RE2: `$` only at the very end),
and every error is mapped to a Kubernetes field cause (`spec.blocks[0].cidr`, `Invalid value:
"...": ... in body must be of type cidr`). Pure; called by `crd.py`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from lbipam.apiserver.errors import Cause, duplicate, go_value, invalid, not_supported, required
from lbipam.apiserver.kinds import formats

Schema = dict[str, Any]
META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)

# -- pruning and defaulting ----------------------------------------------------------------


def prune(obj: Any, schema: Schema, path: str = "", root: bool = True) -> list[str]:
    """Drop fields the schema does not know (in place); returns their paths."""
    if not isinstance(obj, dict):
        if isinstance(obj, list) and isinstance(schema.get("items"), dict):
            found: list[str] = []
            for index, item in enumerate(obj):
                found += prune(item, schema["items"], f"{path}[{index}]", False)
            return found
        return []
    pruned: list[str] = []
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep_all = schema.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    for key in list(obj):
        child = _join(path, key, props)
        if root or embedded:
            if key in ("apiVersion", "kind"):
                continue
            if key == "metadata" and isinstance(obj[key], dict):
                for unknown in [k for k in obj[key] if k not in META_FIELDS]:
                    pruned.append(f"{child}.{unknown}")
                    del obj[key][unknown]
                continue
        if key in props:
            pruned += prune(obj[key], props[key], child, False)
        elif isinstance(extra, dict):
            pruned += prune(obj[key], extra, child, False)
        elif not keep_all and extra is not True:
            pruned.append(child)
            del obj[key]
    return pruned


def drop_nulls(obj: Any, schema: Schema) -> None:
    """Remove null fields whose schema is not nullable (in place), as the API server does."""
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            drop_nulls(item, schema["items"])
        return
    if not isinstance(obj, dict):
        return
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key in list(obj):
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is None:
            continue
        if obj[key] is None and not sub.get("nullable"):
            del obj[key]
        else:
            drop_nulls(obj[key], sub)


def apply_defaults(obj: Any, schema: Schema) -> None:
    """Fill in `default`s of absent fields (in place), recursively."""
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])
        return
    if not isinstance(obj, dict):
        return
    for key, sub in (schema.get("properties") or {}).items():
        if key not in obj and "default" in sub:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            apply_defaults(obj[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in obj.items():
            if key not in (schema.get("properties") or {}):
                apply_defaults(value, extra)


def _join(path: str, key: str, props: dict[str, Any]) -> str:
    if key in props or re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


# -- validation ----------------------------------------------------------------------------


def _type(validator: Any, types: Any, instance: Any, schema: Schema) -> Iterator[ValidationError]:
    if instance is None and schema.get("nullable"):
        return
    names = types if isinstance(types, list) else [types]
    if not any(_is_type(instance, name) for name in names):
        yield ValidationError(f"must be of type {names[0]}", validator="type", validator_value=types)


def _is_type(instance: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(instance, int) and not isinstance(instance, bool)) or (
            isinstance(instance, float) and instance.is_integer()
        )
    if name == "number":
        return isinstance(instance, int | float) and not isinstance(instance, bool)
    checks = {"string": str, "boolean": bool, "object": dict, "array": list}
    return isinstance(instance, checks.get(name, object))


def _int_or_string(validator: Any, value: Any, instance: Any, schema: Schema) -> Iterator[ValidationError]:
    if value and not (isinstance(instance, str) or _is_type(instance, "integer")):
        yield ValidationError(
            "must be of type int-or-string", validator="type", validator_value="int-or-string"
        )


def _pattern(validator: Any, pattern: str, instance: Any, schema: Schema) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not go_regexp(pattern).search(instance):
        yield ValidationError(f"should match '{pattern}'", validator="pattern", validator_value=pattern)


def _list_type(validator: Any, kind: str, instance: Any, schema: Schema) -> Iterator[ValidationError]:
    if not isinstance(instance, list) or kind not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    for index, item in enumerate(instance):
        ident = item if kind == "set" else {k: item.get(k) for k in keys if isinstance(item, dict)}
        text = repr(ident)
        if text in seen:
            yield ValidationError(
                "duplicate", validator="x-kubernetes-list-type", validator_value=ident, path=[index]
            )
        seen.add(text)


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped in the stubs
    jsonschema.Draft4Validator,
    {
        "type": _type,
        "pattern": _pattern,
        "x-kubernetes-int-or-string": _int_or_string,
        "x-kubernetes-list-type": _list_type,
    },
)


@lru_cache(maxsize=1024)
def go_regexp(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled with Go RE2 meanings: `$` and `\\z` only match at the very end."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            out.append("\\Z" if pair == "\\z" and not in_class else pair)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append("\\Z" if ch == "$" and not in_class else ch)
        i += 1
    return re.compile("".join(out), re.ASCII)


def validate(obj: Any, schema: Schema) -> list[Cause]:
    """Every way `obj` fails `schema`, as Kubernetes field causes (sorted by field)."""
    validator = _Validator(schema, format_checker=formats.CHECKER)
    causes: list[Cause] = []
    for error in validator.iter_errors(obj):
        causes += _causes(error, schema)
    return sorted(causes, key=lambda c: c.field)


def _path(error: ValidationError, schema: Schema) -> str:
    path, node = "", schema
    part: Any
    for part in error.absolute_path:
        if isinstance(part, int):
            path += f"[{part}]"
            items = node.get("items")
            node = items if isinstance(items, dict) else {}
        else:
            path = _join(path, part, node.get("properties") or {})
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            node = props.get(part) or (extra if isinstance(extra, dict) else {})
    return path


def _causes(error: ValidationError, schema: Schema) -> list[Cause]:
    path = _path(error, schema)
    value: Any = error.instance
    keyword = str(error.validator)
    limit: Any = error.validator_value
    where = path or "<nil>"
    if keyword == "required":
        present = value if isinstance(value, dict) else {}
        missing = [p for p in limit if p not in present]
        return [required(_join(path, p, {p: {}})) for p in missing]
    if keyword == "enum":
        return [not_supported(path, value, [str(v) for v in limit])]
    if keyword == "x-kubernetes-list-type":
        return [duplicate(path, limit)]
    if keyword == "maxItems":
        return [
            Cause(
                path,
                f"Too many: {len(value)}: must have at most {limit} items",
                "FieldValueTooMany",
            )
        ]
    if keyword == "maxLength":
        return [Cause(path, f"Too long: may not be more than {limit} bytes", "FieldValueTooLong")]
    if keyword in ("anyOf", "oneOf"):
        subs = [
            c
            for e in error.context or []
            for c in _causes(e, schema)
            if c.field != path or keyword == "anyOf"
        ]
        if keyword == "oneOf":
            valid = len(limit) - len({e.schema_path[0] for e in error.context or []})
            detail = "must validate one and only one schema (oneOf)"
            detail += f". Found {valid} valid alternatives" if valid > 1 else ""
            return [invalid(path, _go_kind(value), f"{where} in body {detail}"), *([] if valid > 1 else subs)]
        return [
            invalid(path, _go_kind(value), f"{where} in body must validate at least one schema (anyOf)"),
            *subs,
        ]
    return [invalid(path, _shown(keyword, value), f"{where} in body {_message(keyword, error, value)}")]


def _shown(keyword: str, value: Any) -> Any:
    if keyword in ("type", "not", "minProperties", "maxProperties"):
        return _go_kind(value) if keyword == "type" else value
    if keyword == "minItems":
        return len(value)
    return value


def _go_kind(value: Any) -> str:
    if value is None:
        return "null"
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def _message(keyword: str, error: ValidationError, value: Any) -> str:
    limit: Any = error.validator_value
    where: Any = error.schema
    if keyword == "type":
        wanted = limit if isinstance(limit, str) else limit[0]
        return f"must be of type {wanted}: {go_value(_go_kind(value))}"
    if keyword == "format":
        return f"must be of type {limit}: {go_value(value)}"
    if keyword in ("minimum", "maximum"):
        exclusive = where.get("exclusiveMinimum" if keyword == "minimum" else "exclusiveMaximum")
        side = "greater" if keyword == "minimum" else "less"
        return f"should be {side} than {'' if exclusive else 'or equal to '}{limit}"
    messages = {
        "pattern": "should match '{}'",
        "minLength": "should be at least {} chars long",
        "minItems": "should have at least {} items",
        "minProperties": "should have at least {} properties",
        "maxProperties": "should have at most {} properties",
        "multipleOf": "should be a multiple of {}",
        "not": "must not validate the schema (not)",
        "uniqueItems": "shouldn't contain duplicates",
    }
    template = messages.get(keyword)
    return template.format(limit) if template else error.message
