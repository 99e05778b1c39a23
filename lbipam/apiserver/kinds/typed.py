"""A body of a built-in kind against its Kubernetes definition, as Go's typed decoder reads it.

The real server decodes a body into the kind's Go structs: a field the struct does not have is
dropped (and named in a `Warning: 299` header, or refused under `?fieldValidation=Strict`), a value
of the wrong JSON type or an integer outside its field's range (int32, int64) is a 400 BadRequest
naming the field. `check` does both against the vendored definitions (`definitions.py`):

    check(rtype, obj) -> [unknown field paths]      # pruned from obj in place; StatusError 400
    prune_unknown(rtype, obj, opts)                 # check, then warn or refuse as opts say

Paths are written as Kubernetes writes them in warnings: `spec.ports[0].foo`. Fields without a
declared structure (RawExtension, FieldsV1, apiextensions JSON) hold anything. Custom kinds are
checked by their CRD schema instead (`schema.py`). Pure; called by `objects.py` and, for
apply configurations, `wire/handlers.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds import definitions
from lbipam.apiserver.kinds.shapes import json_type
from lbipam.apiserver.kinds.strategy import WriteOptions
from lbipam.apiserver.storage.registry import ResourceType

INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(slots=True)
class _Node:
    """A compiled schema: `kind` is struct, map, array, leaf, oneof or any."""

    kind: str
    props: dict[str, Any] | None = None  # struct: field -> _Node, or a definition name until walked
    sub: Any = None  # map values / array items: _Node, or a definition name until walked
    types: tuple[str, ...] = ()  # leaf / oneof: JSON types allowed (string, integer, number, boolean)
    fmt: str = ""  # leaf: the integer format (int32, int64)
    go: str = ""  # the Go type name for messages
    python: tuple[type, ...] = ()  # leaf / oneof: the Python types a decoded value may have


_ANY = _Node("any")
_PYTHON = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


def _leaf_node(kind: str, types: tuple[str, ...], fmt: str, go: str) -> _Node:
    python = tuple({p for t in types for p in _PYTHON.get(t, ())})
    return _Node(kind, types=types, fmt=fmt if fmt in INT_RANGES else "", go=go, python=python)


def check(rtype: ResourceType, obj: dict[str, Any], only: frozenset[str] | None = None) -> list[str]:
    """Prune the fields `rtype`'s definition does not have; return their paths. StatusError 400
    for a value of the wrong type or out of its integer range. Kinds without a definition: [].
    `only`: the top-level fields the write keeps (a /status write keeps status); the others are
    left to the write, which drops them."""
    name = definitions.builtin_name(rtype)
    if name is None or name not in definitions.upstream():
        return []
    unknown: list[str] = []
    node = _compiled(name)
    if only is None:
        problem = _walk(obj, node, [], rtype.kind, unknown)
    else:
        kept = {key: value for key, value in obj.items() if key in only}
        problem = _walk(kept, node, [], rtype.kind, unknown)
        for key in only & obj.keys():
            if key in kept:
                obj[key] = kept[key]
            else:
                del obj[key]
    if problem is not None:
        raise StatusError(
            400, f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {problem}'
        )
    return unknown


def prune_unknown(
    rtype: ResourceType, obj: dict[str, Any], opts: WriteOptions, only: frozenset[str] | None = None
) -> None:
    """`check`, and what the real server does with the unknown fields it found: named in
    warnings (fieldValidation=Warn, the default), a 400 under Strict, dropped silently under
    Ignore."""
    unknown = [f'unknown field "{path}"' for path in check(rtype, obj, only)]
    if unknown and opts.field_validation == "Strict":
        raise StatusError(
            400,
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
            f"strict decoding error: {', '.join(unknown)}",
        )
    if opts.field_validation == "Warn":
        opts.warnings += unknown


@functools.cache
def _compiled(name: str) -> _Node:
    return _compile(definitions.upstream().get(name, {}))


def _compile(schema: dict[str, Any]) -> _Node:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _compiled(ref.rsplit("/", 1)[-1])
    if "oneOf" in schema:
        types = tuple(t for option in schema["oneOf"] for t in _types(option))
        if "integer" in types:
            return _leaf_node("oneof", types, "int32", "intstr.IntOrString")
        return _leaf_node("oneof", types, "", "resource.Quantity")
    types = tuple(_types(schema))
    if "properties" in schema:
        props = {key: _ref_or_node(value) for key, value in schema["properties"].items()}
        return _Node("struct", props=props, go="struct")
    if isinstance(schema.get("additionalProperties"), dict):
        return _Node("map", sub=_ref_or_node(schema["additionalProperties"]), go="map")
    if "array" in types:
        return _Node("array", sub=_ref_or_node(schema.get("items") or {}), go="slice")
    leaf = [t for t in types if t in ("string", "integer", "number", "boolean")]
    if leaf:
        fmt = schema.get("format", "")
        go = {"string": "string", "integer": fmt or "int64", "number": "float64", "boolean": "bool"}[leaf[0]]
        return _leaf_node("leaf", tuple(leaf), fmt, go)
    return _ANY  # an object without declared fields, or no type at all: anything goes


def _ref_or_node(schema: Any) -> Any:
    """Definition names stay names until walked (the definitions refer to themselves)."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and len(schema) == 1:
        return schema["$ref"].rsplit("/", 1)[-1]
    return _compile(schema) if isinstance(schema, dict) else _ANY


def _types(schema: dict[str, Any]) -> tuple[str, ...]:
    declared = schema.get("type", [])
    return (declared,) if isinstance(declared, str) else tuple(t for t in declared if t != "null")


def _walk(value: Any, node: _Node, trail: list[Any], struct: str, unknown: list[str]) -> str | None:
    """The first type problem under `value` (pruning unknown fields on the way), or None.

    `trail` is the path walked so far (keys and indexes), turned into text only when needed."""
    if value is None or node.kind == "any":
        return None
    if node.kind == "struct":
        if type(value) is not dict:
            return _mismatch(value, node, trail, struct)
        props = node.props
        assert props is not None
        for key in [k for k in value if k not in props]:
            unknown.append(_text([*trail, key]))
            del value[key]
        for key, sub in value.items():
            if sub is None:
                continue
            child = props[key]
            if type(child) is str:
                child = props[key] = _compiled(child)
            found = None if _plainly_fits(sub, child) else _walk_at(key, sub, child, trail, struct, unknown)
            if found is not None:
                return found
        return None
    if node.kind in ("map", "array"):
        if type(value) is not (dict if node.kind == "map" else list):
            return _mismatch(value, node, trail, struct)
        child = node.sub
        if type(child) is str:
            child = node.sub = _compiled(child)
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, sub in pairs:
            found = None if _plainly_fits(sub, child) else _walk_at(key, sub, child, trail, struct, unknown)
            if found is not None:
                return found
        return None
    return _leaf(value, node, trail, struct)


def _walk_at(
    key: Any, value: Any, node: _Node, trail: list[Any], struct: str, unknown: list[str]
) -> str | None:
    """`_walk` of the field or item `key` (the trail one step longer meanwhile)."""
    trail.append(key)
    found = _walk(value, node, trail, struct, unknown)
    trail.pop()
    return found


def _plainly_fits(value: Any, node: _Node) -> bool:
    """The common leaf case decided without a call of `_walk`: a value of an allowed type that
    needs no range check (most fields are strings)."""
    kind = type(value)
    return node.kind == "leaf" and kind in node.python and (kind is not int or not node.fmt)


def _leaf(value: Any, node: _Node, trail: list[Any], struct: str) -> str | None:
    kind = type(value)
    if kind not in node.python:
        if kind is int and float in node.python:
            return None  # an integer is a number
        return _mismatch(value, node, trail, struct, f"number {value}" if kind is float else "")
    if kind is int and node.fmt:
        low, high = INT_RANGES[node.fmt]
        if not low <= value <= high:
            return _mismatch(value, node, trail, struct, f"number {value}")
    return None


def _text(trail: list[Any]) -> str:
    """spec.ports[0].name, as Kubernetes writes field paths."""
    out = ""
    for step in trail:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _mismatch(value: Any, node: _Node, trail: list[Any], struct: str, got: str = "") -> str:
    field = ".".join([struct, *(str(s) for s in trail if not isinstance(s, int))])
    return f"json: cannot unmarshal {got or json_type(value)} into Go struct field {field} of type {node.go}"
