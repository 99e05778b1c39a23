"""Field sets for server-side apply: the structured-merge-diff algebra over plain JSON objects.

Owned by the patches owner; used by managedfields.py (server-side apply and managedFields).

A path is a tuple of serialized path elements exactly as they appear in `fieldsV1`:
`f:<field>`, `k:{"port":80,"protocol":"TCP"}` (an item of a map list), `v:"x"` (an item of a set),
`i:<n>` (an item of a list whose keys are missing). A field set is a Python set of such paths;
`encode`/`decode` convert it to and from the FieldsV1 tree (`.` marks a node that is itself a member).

The walkers mirror sigs.k8s.io/structured-merge-diff: `to_set` (ToFieldSet), `compare` (Compare:
added/modified/removed), `merge` (Merge, with its list ordering), `remove` (RemoveItems).
"""

from __future__ import annotations

import json
from typing import Any

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.patch.strategic import Schema, Shape

Path = tuple[str, ...]
FieldSet = set[Path]
_MISSING: Any = object()


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it (compact, HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def item_element(item: Any, shape: Shape, index: int, strict: bool) -> str:
    """The path element of a list item: `k:` for map lists, `v:` for sets.

    A map-list item without a key field (and no default) fails an apply with 422; for updates
    (`strict=False`) it is tracked by index, so a bad stored object never blocks a write.
    """
    if shape.list_type == "set":
        return "v:" + go_json(item)
    key: dict[str, Any] = {}
    for name in shape.keys:
        if isinstance(item, dict) and name in item:
            key[name] = item[name]
        elif name in shape.key_defaults:
            key[name] = shape.key_defaults[name]
        elif strict:
            raise StatusError(
                422,
                f"associative list with keys has an element that omits key field {name!r} "
                "(and doesn't have default value)",
            )
        else:
            return f"i:{index}"
    return "k:" + go_json(key)


def _granular_list(shape: Shape) -> bool:
    return shape.list_type in ("set", "map")


# --- ToFieldSet --------------------------------------------------------------------------------


def to_set(value: Any, schema: Schema, strict: bool = True) -> FieldSet:
    out: FieldSet = set()
    _to_set(value, schema, (), out, strict)
    return out


def _to_set(value: Any, schema: Schema, path: Path, out: FieldSet, strict: bool) -> None:
    if isinstance(value, dict):
        if schema.shape.atomic_map and path:
            out.add(path)
            return
        is_map = schema.is_map_type()
        for key, child in value.items():
            p = (*path, "f:" + key)
            _to_set(child, schema.field(key), p, out, strict)
            if child == {} or is_map:
                out.add(p)
    elif isinstance(value, list):
        shape = schema.shape
        if not _granular_list(shape):
            out.add(path)
            return
        items = schema.items()
        for i, child in enumerate(value):
            p = (*path, item_element(child, shape, i, strict))
            _to_set(child, items, p, out, strict)
            out.add(p)
    elif path:
        out.add(path)


# --- Compare -------------------------------------------------------------------------------------


class Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: FieldSet = set()
        self.modified: FieldSet = set()
        self.removed: FieldSet = set()


def compare(lhs: Any, rhs: Any, schema: Schema) -> Comparison:
    """What changed from lhs to rhs, as structured-merge-diff's Compare reports it."""
    out = Comparison()
    _compare(lhs, rhs, schema, (), out)
    return out


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _leaf(lhs: Any, rhs: Any, path: Path, out: Comparison) -> None:
    if not path:
        return
    if lhs is _MISSING:
        out.added.add(path)
    elif rhs is _MISSING:
        out.removed.add(path)
    elif not _same(lhs, rhs):
        out.modified.add(path)


def _compare(lhs: Any, rhs: Any, schema: Schema, path: Path, out: Comparison) -> None:
    if lhs is rhs or (lhs is not _MISSING and rhs is not _MISSING and lhs == rhs):
        return  # most of an object is unchanged: skip the walk (JSON 1 == 1.0 is equal here)
    present = [v for v in (lhs, rhs) if v is not _MISSING]
    if all(isinstance(v, dict) for v in present):
        empty = all(not v for v in present)
        if schema.shape.atomic_map or empty:
            _leaf(lhs, rhs, path, out)
            return
        left = lhs if lhs is not _MISSING else {}
        right = rhs if rhs is not _MISSING else {}
        for key in {**left, **right}:
            sub = schema.field(key)
            _compare(left.get(key, _MISSING), right.get(key, _MISSING), sub, (*path, "f:" + key), out)
    elif all(isinstance(v, list) for v in present):
        shape = schema.shape
        if not _granular_list(shape) or all(not v for v in present):
            _leaf(lhs, rhs, path, out)
            return
        left_items = _index(lhs if lhs is not _MISSING else [], shape)
        right_items = _index(rhs if rhs is not _MISSING else [], shape)
        items = schema.items()
        for pe in {**left_items, **right_items}:
            l_item, r_item = left_items.get(pe, _MISSING), right_items.get(pe, _MISSING)
            _compare(l_item, r_item, items, (*path, pe), out)
    else:
        _leaf(lhs, rhs, path, out)
        return
    if path and lhs is _MISSING:
        out.added.add(path)
    elif path and rhs is _MISSING:
        out.removed.add(path)


def _index(items: list[Any], shape: Shape) -> dict[str, Any]:
    return {item_element(item, shape, i, False): item for i, item in enumerate(items)}


# --- Merge ---------------------------------------------------------------------------------------


def merge(live: Any, config: Any, schema: Schema) -> Any:
    """The live object with the applied configuration merged in (config wins on leaves)."""
    if live is _MISSING or live is None:
        return config
    if isinstance(live, dict) and isinstance(config, dict) and not schema.shape.atomic_map:
        out = dict(live)
        for key, value in config.items():
            merged = merge(live.get(key, _MISSING), value, schema.field(key))
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        return out
    if isinstance(live, list) and isinstance(config, list) and _granular_list(schema.shape):
        return _merge_list(live, config, schema)
    return config


def _merge_list(lhs: list[Any], rhs: list[Any], schema: Schema) -> list[Any]:
    """structured-merge-diff's list merge, including where new and retained items land."""
    shape, items = schema.shape, schema.items()
    l_pes = [item_element(x, shape, i, True) for i, x in enumerate(lhs)]
    r_pes = [item_element(x, shape, i, True) for i, x in enumerate(rhs)]
    l_map, r_map = dict(zip(l_pes, lhs, strict=True)), dict(zip(r_pes, rhs, strict=True))
    shared = iter([pe for pe in r_pes if pe in l_map])
    next_shared = next(shared, None)
    out: list[Any] = []
    merged_rhs: set[str] = set()
    li = ri = 0
    while li < len(l_pes) or ri < len(r_pes):
        if li < len(l_pes) and ri < len(r_pes):
            pe = l_pes[li]
            if pe == r_pes[ri]:
                merged_rhs.add(pe)
                out.append(merge(l_map[pe], r_map[pe], items))
                li, ri = li + 1, ri + 1
                next_shared = next(shared, None)
                continue
            if pe in r_map and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(l_pes):
            pe = l_pes[li]
            if pe not in r_map:
                out.append(l_map[pe])
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
        if ri < len(r_pes):
            pe = r_pes[ri]
            merged_rhs.add(pe)
            out.append(merge(l_map.get(pe, _MISSING), r_map[pe], items))
            ri += 1
            if next_shared == pe:
                next_shared = next(shared, None)
    return out


# --- RemoveItems ---------------------------------------------------------------------------------


def remove(value: Any, paths: FieldSet, schema: Schema) -> Any:
    """The value without the fields and list items that are members of `paths`."""
    return _remove(value, _trie(paths), schema)


def _remove(value: Any, trie: dict[str, Any], schema: Schema) -> Any:
    if isinstance(value, dict) and not schema.shape.atomic_map:
        out: dict[str, Any] = {}
        for key, child in value.items():
            node = trie.get("f:" + key)
            if node is None:
                out[key] = child
            elif not _is_member(node):
                kept = _remove(child, node, schema.field(key))
                if kept is not None:
                    out[key] = kept
        return out or None
    if isinstance(value, list) and _granular_list(schema.shape):
        shape, items = schema.shape, schema.items()
        kept_items = []
        for i, child in enumerate(value):
            node = trie.get(item_element(child, shape, i, False))
            if node is None:
                kept_items.append(child)
            elif not _is_member(node):
                kept_items.append(_remove(child, node, items))
        return kept_items or None
    return value


def with_named_fields(paths: FieldSet) -> FieldSet:
    """EnsureNamedFieldsAreMembers: every prefix ending in a field name becomes a member too."""
    out = set(paths)
    for path in paths:
        for n in range(1, len(path)):
            if path[n - 1].startswith("f:"):
                out.add(path[:n])
    return out


# --- FieldsV1 encoding ---------------------------------------------------------------------------


def _trie(paths: FieldSet) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for pe in path:
            node = node.setdefault(pe, {})
        node["."] = {}
    return root


def _is_member(node: dict[str, Any]) -> bool:
    return "." in node


def _value_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, int | float):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    return (3, go_json(v))


def element_sort_key(pe: str) -> tuple[int, Any]:
    """structured-merge-diff's PathElement order: fields, then keys, then values, then indexes."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((name, _value_key(v)) for name, v in sorted(json.loads(body).items())))
    if kind == "v":
        return (2, _value_key(json.loads(body)))
    return (3, int(body))


def encode(paths: FieldSet) -> dict[str, Any]:
    """The FieldsV1 tree of a field set, in structured-merge-diff's order."""
    return _encode_node(_trie(paths), include_self=False)


def _encode_node(node: dict[str, Any], include_self: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    children = {k: v for k, v in node.items() if k != "."}
    if include_self and _is_member(node) and children:
        out["."] = {}
    for pe in sorted(children, key=element_sort_key):
        out[pe] = _encode_node(children[pe], include_self=True)
    return out


def decode(fields: Any, path: Path = ()) -> FieldSet:
    """The field set of a FieldsV1 tree; raises ValueError on a malformed one."""
    if not isinstance(fields, dict):
        raise ValueError("fieldsV1 must be an object")
    out: FieldSet = set()
    if path and (not fields or "." in fields):
        out.add(path)
    for key, sub in fields.items():
        if key == ".":
            continue
        if len(key) < 2 or key[1] != ":" or key[0] not in "fkvi":
            raise ValueError(f"invalid path element {key!r}")
        out |= decode(sub, (*path, key))
    return out


def element_string(pe: str) -> str:
    """A path element as structured-merge-diff prints it in conflict messages."""
    kind, body = pe[0], pe[2:]
    if kind == "f":
        return "." + body
    if kind == "k":
        parts = [f"{name}={_to_string(v)}" for name, v in sorted(json.loads(body).items())]
        return "[" + ",".join(parts) + "]"
    if kind == "v":
        return "[=" + _to_string(json.loads(body)) + "]"
    return f"[{body}]"


def path_string(path: Path) -> str:
    return "".join(element_string(pe) for pe in path)


def _to_string(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int | float):
        return str(v)
    return go_json(v)
