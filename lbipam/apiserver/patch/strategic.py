"""Schema knowledge for merging (list types, merge keys) and the strategic merge patch.

Owned by the patches owner. `schema_for(rtype)` is what both the strategic merge patch (here) and
server-side apply (managedfields.py) use to learn, at any point of an object, whether a list is
atomic, a set or a map keyed by some fields, and which list merge key strategic merge uses.

Built-in kinds are described by `BUILTIN_SHAPES`, copied from Kubernetes 1.32's OpenAPI
(`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`,
`x-kubernetes-patch-merge-key`) for the kinds this server serves; every other list is atomic, as
in Kubernetes. Custom kinds read the same extensions from their CRD's openAPIV3Schema.

`strategic_merge(original, patch, schema)` follows k8s.io/apimachinery/pkg/util/strategicpatch with
the directives kubectl sends: `$patch` (replace/delete/merge), `$retainKeys`,
`$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.storage import jsonsafe
from lbipam.apiserver.storage.registry import ResourceType


@dataclass(frozen=True)
class Shape:
    """How the value at one point of an object merges."""

    list_type: str = "atomic"  # for lists: "atomic" | "set" | "map" (server-side apply)
    keys: tuple[str, ...] = ()  # list-map keys (server-side apply)
    key_defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    atomic_map: bool = False  # x-kubernetes-map-type: atomic
    smp_merge: bool = False  # x-kubernetes-patch-strategy contains "merge"
    smp_key: str = ""  # x-kubernetes-patch-merge-key


ATOMIC = Shape()
_CONDITIONS = Shape("map", ("type",), smp_merge=True, smp_key="type")
_METADATA: dict[tuple[str, ...], Shape] = {
    ("metadata", "finalizers"): Shape("set", smp_merge=True),
    ("metadata", "ownerReferences"): Shape("map", ("uid",), smp_merge=True, smp_key="uid"),
}
# Paths skip list elements: ("spec", "ports", "name") is the name of any port.
BUILTIN_SHAPES: dict[str, dict[tuple[str, ...], Shape]] = {
    "Service": {
        # SSA keys ports by port+protocol (protocol defaults to TCP); strategic merge by port alone.
        ("spec", "ports"): Shape(
            "map", ("port", "protocol"), {"protocol": "TCP"}, smp_merge=True, smp_key="port"
        ),
        ("spec", "selector"): Shape(atomic_map=True),
        ("status", "conditions"): _CONDITIONS,
    },
    "Node": {
        ("spec", "podCIDRs"): Shape("set", smp_merge=True),
        ("status", "addresses"): Shape("map", ("type",), smp_merge=True, smp_key="type"),
        ("status", "conditions"): _CONDITIONS,
    },
    "Namespace": {("status", "conditions"): _CONDITIONS},
    "EndpointSlice": {("endpoints", "addresses"): Shape("set")},
    "CustomResourceDefinition": {("status", "conditions"): Shape("map", ("type",))},
}


class Schema(Protocol):
    """A point in an object's schema: its shape and how to descend."""

    @property
    def shape(self) -> Shape: ...

    def field(self, name: str) -> Schema: ...

    def items(self) -> Schema: ...

    def is_map_type(self) -> bool:
        """True for a map of arbitrary keys (additionalProperties), False for a struct."""
        ...


class TableSchema:
    """A built-in kind, described by BUILTIN_SHAPES and the shared ObjectMeta shapes."""

    __slots__ = ("_path", "_table")

    def __init__(self, table: dict[tuple[str, ...], Shape], path: tuple[str, ...] = ()) -> None:
        self._table = table
        self._path = path

    @property
    def shape(self) -> Shape:
        return self._table.get(self._path) or _METADATA.get(self._path) or ATOMIC

    def field(self, name: str) -> TableSchema:
        return TableSchema(self._table, (*self._path, name))

    def items(self) -> TableSchema:
        return self

    def is_map_type(self) -> bool:
        return self._path[-1:] in (("labels",), ("annotations",), ("data",), ("stringData",))


_EMPTY_TABLE: dict[tuple[str, ...], Shape] = {}


class OpenAPISchema:
    """A custom kind, described by its CRD's openAPIV3Schema (metadata as for built-ins)."""

    __slots__ = ("_node", "_root")

    def __init__(self, node: dict[str, Any], root: bool = False) -> None:
        self._node = node
        self._root = root

    @property
    def shape(self) -> Shape:
        n = self._node
        list_type = n.get("x-kubernetes-list-type", "atomic")
        keys = tuple(n.get("x-kubernetes-list-map-keys") or ())
        props = (n.get("items") or {}).get("properties") or {}
        defaults = {k: props[k]["default"] for k in keys if "default" in props.get(k, {})}
        return Shape(list_type, keys, defaults, atomic_map=n.get("x-kubernetes-map-type") == "atomic")

    def field(self, name: str) -> Schema:
        if self._root and name == "metadata":
            return TableSchema(_EMPTY_TABLE, ("metadata",))
        props = self._node.get("properties") or {}
        if name in props:
            return OpenAPISchema(props[name])
        extra = self._node.get("additionalProperties")
        return OpenAPISchema(extra if isinstance(extra, dict) else {})

    def items(self) -> Schema:
        return OpenAPISchema(self._node.get("items") or {})

    def is_map_type(self) -> bool:
        return isinstance(self._node.get("additionalProperties"), dict)


def schema_for(rtype: ResourceType) -> Schema:
    """The merge schema of a resource type's objects."""
    if rtype.builtin:
        return TableSchema(BUILTIN_SHAPES.get(rtype.kind, _EMPTY_TABLE))
    return OpenAPISchema(rtype.schema or {}, root=True)


# --- strategic merge patch -------------------------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def _bad(message: str, code: int = 400) -> StatusError:
    if code == 422:
        # The real server answers these with NewGenericServerResponse(422): a generic message.
        return StatusError(422, "the server rejected our request due to an error in our request")
    return StatusError(code, message)


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Apply a strategic merge patch; returns a new object. Raises StatusError 400/422."""
    return _merge_map(jsonsafe.copy(original), patch, schema)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != _DIRECTIVE}, schema)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _bad(f"unknown patch type: {directive} in map: {patch}")
    retain = patch.get(_RETAIN)
    if retain is not None:
        if not isinstance(retain, list):
            raise _bad("invalid patch format of retainKeys")
        if any(not k.startswith("$") and k not in retain for k in patch):
            raise _bad("patch content doesn't match retainKeys list", 422)
        original = {k: v for k, v in original.items() if k in retain}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith(_DELETE_PRIMITIVE):
            if not isinstance(value, list):
                raise _bad("invalid patch format of primitive list")
            name = key[len(_DELETE_PRIMITIVE) :]
            if isinstance(original.get(name), list):
                original[name] = [x for x in original[name] if x not in value]
        elif key.startswith(_ORDER):
            if not isinstance(value, list):
                raise _bad("invalid patch format of setElementOrder list")
            orders[key[len(_ORDER) :]] = value
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        sub = schema.field(key)
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict):
            base = original.get(key)
            original[key] = _merge_map(base if isinstance(base, dict) else {}, value, sub)
        elif isinstance(value, list):
            base = original.get(key)
            old = base if isinstance(base, list) else []
            original[key] = _merge_list(old, value, sub, orders.get(key))
        else:
            original[key] = value
    for name, order in orders.items():
        if name not in patch and isinstance(original.get(name), list):
            original[name] = _order(original[name], original[name], order, schema.field(name))
    return original


def _strip(value: Any, schema: Schema) -> Any:
    """A patch value added where nothing was, with its directives processed."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        return _merge_list([], value, schema, None)
    return value


def _merge_list(original: list[Any], patch: list[Any], schema: Schema, order: list[Any] | None) -> list[Any]:
    shape = schema.shape
    if not shape.smp_merge:
        return [_strip(v, schema.items()) for v in patch]
    if any(isinstance(v, dict) for v in patch + original) and shape.smp_key:
        merged = _merge_keyed(original, patch, schema.items(), shape.smp_key)
    else:
        merged = _uniqify([*original, *patch])
    return _order(merged, original, order, schema) if order is not None else merged


def _merge_keyed(original: list[Any], patch: list[Any], items: Schema, key: str) -> list[Any]:
    result = list(original)
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise _bad(f"unable to merge a list of maps with a non-map element: {item}")
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise _bad(f"map: {item} does not contain declared merge key: {key}")
            result = [x for x in result if not (isinstance(x, dict) and x.get(key) == item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _bad("merging lists cannot yet be specified in the patch")
        else:
            raise _bad(f"unknown patch type: {directive} in map: {item}")
    if replace:
        return [_strip(v, items) for v in plain]
    for item in plain:
        if key not in item:
            raise _bad(f"map: {item} does not contain declared merge key: {key}")
        for i, existing in enumerate(result):
            if isinstance(existing, dict) and existing.get(key) == item[key]:
                result[i] = _merge_map(existing, item, items)
                break
        else:
            result.append(_strip(item, items))
    return result


def _uniqify(values: list[Any]) -> list[Any]:
    """strategicpatch's uniqifyScalars, order quirks included (a duplicate takes the last value's place)."""
    s = list(values)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if s[i] == s[j]:
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def _order(merged: list[Any], server: list[Any], order: list[Any], schema: Schema) -> list[Any]:
    """Apply `$setElementOrder`: ordered items first by `order`, server-only ones where they were."""
    key = schema.shape.smp_key

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    order_ids = [ident(x) for x in order]
    server_ids = [ident(x) for x in server]
    patched = sorted((x for x in merged if ident(x) in order_ids), key=lambda x: order_ids.index(ident(x)))
    server_only = [x for x in merged if ident(x) not in order_ids]
    server_only.sort(key=lambda x: server_ids.index(ident(x)) if ident(x) in server_ids else len(server_ids))
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patched):
        if j >= len(patched) or (
            i < len(server_only) and _before(server_only[i], patched[j], server_ids, ident)
        ):
            out.append(server_only[i])
            i += 1
        else:
            out.append(patched[j])
            j += 1
    return out


def _before(left: Any, right: Any, server_ids: list[Any], ident: Any) -> bool:
    li, ri = ident(left), ident(right)
    if li in server_ids and ri in server_ids:
        return server_ids.index(li) < server_ids.index(ri)
    return False
