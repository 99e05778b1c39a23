"""The built-in kinds' Go types, as far as their JSON and protobuf forms show them.

The real server decodes every body into Go structs and writes them back with Go's encoding/json:
a non-pointer struct field is always written (a Node created with only a name reads back with
`"spec": {}`), a field without `omitempty` is written even when zero (`DaemonEndpoint.Port: 0`),
pointers are written only when set. `data/kubernetes-1.32-types.json` holds those facts next to the
protobuf field numbers, for every message the served kinds reach; it is generated from Kubernetes'
`generated.proto` and `types.go` by `tests/data/k8s-types/generate.py` (sources named there).

`fill` gives a stored object the fields Go would always write; `wire/protobuf.py` builds its
protobuf descriptors from the same messages. Pure (reads the vendored file once).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

VENDORED = "kubernetes-1.32-types.json"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIME, MICRO_TIME, DURATION, FIELDS = META + "Time", META + "MicroTime", META + "Duration", META + "FieldsV1"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
CRD = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1."
RAW_JSON = CRD + "JSON"
DELETE_OPTIONS = META + "DeleteOptions"
# Types with a JSON form of their own (Go MarshalJSON): no struct to walk.
SCALAR_LIKE = frozenset({TIME, MICRO_TIME, DURATION, FIELDS, INT_OR_STRING, QUANTITY, RAW_JSON})
SCHEMA_OR = frozenset(
    {CRD + n for n in ("JSONSchemaPropsOrArray", "JSONSchemaPropsOrBool", "JSONSchemaPropsOrStringArray")}
)
_OWN_JSON = SCALAR_LIKE | SCHEMA_OR

# (group, version, kind) -> the message of that kind.
KINDS = {
    ("", "v1", "Namespace"): "k8s.io.api.core.v1.Namespace",
    ("", "v1", "Node"): "k8s.io.api.core.v1.Node",
    ("", "v1", "Service"): "k8s.io.api.core.v1.Service",
    ("", "v1", "Secret"): "k8s.io.api.core.v1.Secret",
    ("", "v1", "ConfigMap"): "k8s.io.api.core.v1.ConfigMap",
    ("", "v1", "Event"): "k8s.io.api.core.v1.Event",
    ("discovery.k8s.io", "v1", "EndpointSlice"): "k8s.io.api.discovery.v1.EndpointSlice",
    ("coordination.k8s.io", "v1", "Lease"): "k8s.io.api.coordination.v1.Lease",
    ("events.k8s.io", "v1", "Event"): "k8s.io.api.events.v1.Event",
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"): CRD + "CustomResourceDefinition",
}

_ZERO = {"string": "", "bool": False, "bytes": ""}


@dataclass(frozen=True)
class Field:
    """One field of a message: its protobuf number and type, and its Go struct tag."""

    number: int
    name: str  # the protobuf name
    type: str  # a scalar ("string", "int32", ...), a message's full name, or "map<K,V>"
    repeated: bool
    json: str  # the JSON name ("" for inline, "-" for none)
    pointer: bool
    inline: bool
    always: bool  # no omitempty

    @property
    def map_types(self) -> tuple[str, str] | None:
        if not self.type.startswith("map<"):
            return None
        key, value = self.type[4:-1].split(",", 1)
        return key, value

    @property
    def is_message(self) -> bool:
        return "." in self.type and self.map_types is None


def _field(entry: dict[str, Any]) -> Field:
    return Field(
        number=entry["n"],
        name=entry["name"],
        type=entry["type"],
        repeated=entry.get("repeated", False),
        json=entry.get("json", entry["name"]),
        pointer=entry.get("pointer", False),
        inline=entry.get("inline", False),
        always=entry.get("always", False),
    )


@functools.cache
def messages() -> dict[str, tuple[Field, ...]]:
    """Every vendored message by full name, its fields in field-number order."""
    raw = json.loads((resources.files(__package__) / "data" / VENDORED).read_text())
    return {name: tuple(_field(f) for f in fields) for name, fields in raw["messages"].items()}


def message_of(group: str, version: str, kind: str) -> str | None:
    return KINDS.get((group, version, kind))


def fill_object(obj: dict[str, Any]) -> None:
    """`fill` for a stored object of a built-in kind, by its apiVersion and kind (custom objects
    and CRDs, whose schemas have JSON forms of their own, are left as they are)."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    message = message_of(group, version, str(obj.get("kind", "")))
    if message is not None and not message.startswith(CRD):
        fill(message, obj)


def fill(message: str, obj: dict[str, Any]) -> None:
    """Add in place what Go's encoding/json writes for `obj` as `message` although nobody set it:
    non-pointer structs (`{}`, filled in turn) and fields without omitempty (their zero value).
    Times stay absent rather than null (a Go zero Time is written as null; clients read both
    the same), lists and maps too (null in Go when nil)."""
    for step, key, arg in _plan(message):
        value = obj.get(key)
        if step == _ZERO_VALUE:
            if value is None:
                obj[key] = arg
        elif step == _STRUCT:
            if value is None:
                value = obj[key] = {}
            if isinstance(value, dict):
                fill(arg, value)
        elif step == _SET_STRUCT:
            if isinstance(value, dict):
                fill(arg, value)
        else:  # _ITEMS: the struct elements of a list or map
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            for item in items:
                if isinstance(item, dict):
                    fill(arg, item)


_ZERO_VALUE, _STRUCT, _SET_STRUCT, _ITEMS = range(4)


@functools.cache
def _plan(message: str) -> tuple[tuple[int, str, Any], ...]:
    """The steps `fill` takes for `message`, worked out once: only the fields it can change
    (a message that contains itself, like a JSON schema, is never filled: CRDs are left alone)."""
    if message in _PLANNING:
        raise ValueError(f"{message} contains itself: fill cannot walk it")
    _PLANNING.add(message)
    try:
        return _steps(message)
    finally:
        _PLANNING.discard(message)


_PLANNING: set[str] = set()


def _steps(message: str) -> tuple[tuple[int, str, Any], ...]:
    steps: list[tuple[int, str, Any]] = []
    for field in messages()[message]:
        if field.json in ("", "-"):
            continue
        if field.repeated or field.map_types is not None:
            element = field.map_types[1] if field.map_types else field.type
            if _walkable(element) and _plan(element):
                steps.append((_ITEMS, field.json, element))
        elif _walkable(field.type):
            if not field.pointer:
                steps.append((_STRUCT, field.json, field.type))
            elif _plan(field.type):
                steps.append((_SET_STRUCT, field.json, field.type))
        elif not field.pointer:
            zero = _zero(field)
            if zero is not None:
                steps.append((_ZERO_VALUE, field.json, zero))
    return tuple(steps)


def _walkable(kind: str) -> bool:
    """A struct `fill` walks: a vendored message without a JSON form of its own."""
    return kind in messages() and kind not in _OWN_JSON


def _zero(field: Field) -> Any:
    """The zero value Go writes for a non-pointer field that is not a struct to walk (None: none)."""
    if field.type == INT_OR_STRING:
        return 0  # a struct: Go writes it even with omitempty
    if field.is_message or not field.always:
        return None  # times are null, quantities and the like absent
    return _ZERO.get(field.type, 0)
