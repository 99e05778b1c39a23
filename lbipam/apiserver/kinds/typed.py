"""A body of a built-in kind against its Kubernetes definition, as Go's typed decoder reads it.

The real server decodes a body into the kind's Go structs: a field the struct does not have is
dropped (and named in a `Warning: 299` header, or refused under `?fieldValidation=Strict`), a value
of the wrong JSON type or an integer outside its field's range (int32, int64) is a 400 BadRequest
naming the field. `check` does both against the vendored definitions (`definitions.py`):

    check(rtype, obj) -> [unknown field paths]      # pruned from obj in place; StatusError 400

Paths are written as Kubernetes writes them in warnings: `spec.ports[0].foo`. Fields without a
declared structure (RawExtension, FieldsV1, apiextensions JSON) hold anything. Custom kinds are
checked by their CRD schema instead (`schema.py`). Pure; called by `objects.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds import definitions
from lbipam.apiserver.storage.registry import ResourceType

INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled schema: `kind` is struct, map, array, leaf, oneof or any."""

    kind: str
    props: dict[str, Any] | None = None  # struct: field -> _Node or a definition name (str)
    sub: Any = None  # map values / array items: _Node or a definition name
    types: tuple[str, ...] = ()  # leaf / oneof: JSON types allowed (string, integer, number, boolean)
    fmt: str = ""  # leaf: the integer format (int32, int64)
    go: str = ""  # the Go type name for messages


_ANY = _Node("any")


def check(rtype: ResourceType, obj: dict[str, Any]) -> list[str]:
    """Prune the fields `rtype`'s definition does not have; return their paths. StatusError 400
    for a value of the wrong type or out of its integer range. Kinds without a definition: []."""
    name = definitions.builtin_name(rtype)
    if name is None or name not in definitions.upstream():
        return []
    unknown: list[str] = []
    problem = _walk(obj, _compiled(name), "", rtype.kind, unknown)
    if problem is not None:
        raise StatusError(
            400, f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: {problem}'
        )
    return unknown


@functools.cache
def _compiled(name: str) -> _Node:
    return _compile(definitions.upstream().get(name, {}))


def _resolve(node: Any) -> _Node:
    return _compiled(node) if isinstance(node, str) else node


def _compile(schema: dict[str, Any]) -> _Node:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _compiled(ref.rsplit("/", 1)[-1])
    if "oneOf" in schema:
        types = tuple(t for option in schema["oneOf"] for t in _types(option))
        if "integer" in types:
            return _Node("oneof", types=types, fmt="int32", go="intstr.IntOrString")
        return _Node("oneof", types=types, go="resource.Quantity")
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
        return _Node("leaf", types=tuple(leaf), fmt=fmt if fmt in INT_RANGES else "", go=go)
    return _ANY  # an object without declared fields, or no type at all: anything goes


def _ref_or_node(schema: Any) -> Any:
    """Definition names stay names until walked (the definitions refer to themselves)."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and len(schema) == 1:
        return schema["$ref"].rsplit("/", 1)[-1]
    return _compile(schema) if isinstance(schema, dict) else _ANY


def _types(schema: dict[str, Any]) -> tuple[str, ...]:
    declared = schema.get("type", [])
    return (declared,) if isinstance(declared, str) else tuple(t for t in declared if t != "null")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _walk(value: Any, node: _Node, path: str, struct: str, unknown: list[str]) -> str | None:
    """The first type problem under `value` (pruning unknown fields on the way), or None."""
    if value is None or node.kind == "any":
        return None
    if node.kind == "struct":
        if not isinstance(value, dict):
            return _mismatch(value, node, path, struct)
        assert node.props is not None
        for key in [k for k in value if k not in node.props]:
            unknown.append(f"{path}.{key}" if path else key)
            del value[key]
        for key, sub in value.items():
            found = _walk(sub, _resolve(node.props[key]), f"{path}.{key}" if path else key, struct, unknown)
            if found is not None:
                return found
        return None
    if node.kind == "map":
        if not isinstance(value, dict):
            return _mismatch(value, node, path, struct)
        sub_node = _resolve(node.sub)
        for key, sub in value.items():
            found = _walk(sub, sub_node, f"{path}.{key}" if path else key, struct, unknown)
            if found is not None:
                return found
        return None
    if node.kind == "array":
        if not isinstance(value, list):
            return _mismatch(value, node, path, struct)
        sub_node = _resolve(node.sub)
        for index, sub in enumerate(value):
            found = _walk(sub, sub_node, f"{path}[{index}]", struct, unknown)
            if found is not None:
                return found
        return None
    return _leaf(value, node, path, struct)


def _leaf(value: Any, node: _Node, path: str, struct: str) -> str | None:
    kind = _json_type(value)
    allowed = {"string": "string", "integer": "number", "number": "number", "boolean": "bool"}
    if kind not in {allowed[t] for t in node.types}:
        return _mismatch(value, node, path, struct)
    if kind != "number":
        return None
    if "number" not in node.types and isinstance(value, float):
        return _mismatch(value, node, path, struct, f"number {value}")
    low, high = INT_RANGES.get(node.fmt, (None, None))
    if isinstance(value, int) and low is not None and high is not None and not low <= value <= high:
        return _mismatch(value, node, path, struct, f"number {value}")
    return None


def _mismatch(value: Any, node: _Node, path: str, struct: str, got: str = "") -> str:
    field = _without_indexes(f"{struct}.{path}" if path else struct)
    return f"json: cannot unmarshal {got or _json_type(value)} into Go struct field {field} of type {node.go}"


def _without_indexes(path: str) -> str:
    """Go's decoder names struct fields without list indexes: Service.spec.ports.port."""
    out, skip = [], False
    for char in path:
        if char == "[":
            skip = True
        elif char == "]":
            skip = False
        elif not skip:
            out.append(char)
    return "".join(out)
