"""Server-side printing: meta.k8s.io/v1 Tables for `kubectl get`.

Owned by the patches/discovery owner; the HTTP layer calls these for GET and watch requests.

    wants_table(accept_header) -> bool
        True when the Accept header asks for `as=Table;g=meta.k8s.io;v=v1` (kubectl get does,
        with JSON as its fallback). The response Content-Type is then
        `application/json;as=Table;v=v1;g=meta.k8s.io`.
    include_object(query_value) -> str
        The `includeObject` query parameter ("None" | "Metadata" (default) | "Object").
    render_table(rtype, objects, *, list_meta, include_object="Metadata", no_headers=False, now=None)
        A Table of `objects` (a list or a single get). `list_meta` carries resourceVersion,
        continue and remainingItemCount of the list (or {} for a get).
        Watch: when the request asked for a Table, every event's object is
        `render_table(rtype, [obj], list_meta={}, no_headers=True)` except the first event of
        the stream, which carries the column definitions (no_headers=False); ERROR and BOOKMARK
        events are sent unchanged (a Status, an object with only metadata.resourceVersion).

Custom kinds print their CRD's additionalPrinterColumns (JSONPath subset: `.a.b`, `[n]`, `[*]`,
`['key']`, filters `[?(@.a.b=="v")]` with == or != and a string, number or boolean), evaluated
like apiextensions' table convertor (the first match; dates as ages).
Built-in kinds print the columns kube-apiserver prints for them (`printers.py`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.wire import printers
from lbipam.apiserver.wire.printers import CellsFn, Obj, column, human_duration, name_of, parse_time

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wants_table(accept_header: str | None) -> bool:
    """Whether the first acceptable type is a meta.k8s.io/v1 Table."""
    for part in (accept_header or "").split(","):
        params = {
            p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:] if "=" in p
        }
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return True
    return False


def include_object(value: str | None) -> str:
    return value if value in ("None", "Metadata", "Object") else "Metadata"


def render_table(
    rtype: ResourceType,
    objects: list[Obj],
    *,
    list_meta: dict[str, Any],
    include_object: str = "Metadata",
    no_headers: bool = False,
    now: datetime | None = None,
) -> Obj:
    now = now or datetime.now(UTC)
    columns, cells = _printer(rtype)
    meta = {
        k: v for k, v in list_meta.items() if k in ("resourceVersion", "continue", "remainingItemCount") and v
    }
    table: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    if not no_headers:
        table["columnDefinitions"] = columns
    table["rows"] = [_row(obj, cells(obj, now), include_object) for obj in objects]
    return table


def _row(obj: Obj, cells: list[Any], include: str) -> Obj:
    row: Obj = {"cells": cells}
    if include == "Object":
        row["object"] = obj
    elif include == "Metadata":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {},
        }
    return row


def _printer(rtype: ResourceType) -> tuple[list[Obj], CellsFn]:
    if not rtype.builtin:
        return _crd_printer(rtype)
    return printers.builtin(rtype.group, rtype.kind)


# --- custom resources ------------------------------------------------------------------------------


def _crd_printer(rtype: ResourceType) -> tuple[list[Obj], CellsFn]:
    cols = [column("Name", printers.NAME_DOC, fmt="name")]
    paths: list[tuple[list[tuple[str, Any]], str]] = []
    for col in rtype.printer_columns:
        path = str(col.get("jsonPath", ""))
        desc = col.get("description") or f"Custom resource definition column (in JSONPath format): {path}"
        cols.append(
            column(
                col["name"],
                desc,
                col.get("type", "string"),
                int(col.get("priority", 0)),
                col.get("format", ""),
            )
        )
        paths.append((parse_jsonpath(path), col.get("type", "string")))

    def cells(obj: Obj, now: datetime) -> list[Any]:
        out: list[Any] = [name_of(obj)]
        for tokens, kind in paths:
            found = find(obj, tokens)
            out.append(_cell(kind, found[0], now) if found else None)
        return out

    return cols, cells


_TOKEN = re.compile(r"\.([^.\[\]]+)|\[\*\]|\[(-?\d+)\]|\[['\"]([^'\"]*)['\"]\]|\.\*")
_FILTER = re.compile(
    r"""\[\?\(@((?:\.[\w-]+)+)\s*(==|!=)\s*("[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false)\)\]"""
)


def _literal(text: str) -> Any:
    """A filter's right-hand side: a quoted string, a number, true or false."""
    if text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return float(text) if "." in text else int(text)


def parse_jsonpath(path: str) -> list[tuple[str, Any]]:
    """Tokens of a simple JSONPath: ("field", name) | ("index", n) | ("all", None) |
    ("filter", (tokens of the item's field, "==" or "!=", the literal))."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        f = _FILTER.match(text, pos)
        if f is not None:
            item_path = [("field", name) for name in f.group(1).split(".")[1:]]
            tokens.append(("filter", (item_path, f.group(2), _literal(f.group(3)))))
            pos = f.end()
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            return [("invalid", text)]
        if m.group(1) is not None:
            tokens.append(("field", m.group(1)))
        elif m.group(2) is not None:
            tokens.append(("index", int(m.group(2))))
        elif m.group(3) is not None:
            tokens.append(("field", m.group(3)))
        else:
            tokens.append(("all", None))
        pos = m.end()
    return tokens


def find(obj: Any, tokens: list[tuple[str, Any]]) -> list[Any]:
    """Every value the path reaches (missing keys are skipped, as AllowMissingKeys does)."""
    values = [obj]
    for kind, arg in tokens:
        nxt: list[Any] = []
        for v in values:
            if kind == "field" and isinstance(v, dict) and arg in v:
                nxt.append(v[arg])
            elif kind == "all" and isinstance(v, list):
                nxt.extend(v)
            elif kind == "all" and isinstance(v, dict):
                nxt.extend(v[k] for k in sorted(v))
            elif kind == "index" and isinstance(v, list) and -len(v) <= arg < len(v):
                nxt.append(v[arg])
            elif kind == "filter" and isinstance(v, list):
                path, op, wanted = arg
                nxt.extend(item for item in v if _matches(find(item, path), op, wanted))
        values = nxt
    return values


def _matches(found: list[Any], op: str, wanted: Any) -> bool:
    """A filter's test on an item: a missing field never matches, as in Kubernetes' jsonpath."""
    if not found:
        return False
    equal = found[0] == wanted and isinstance(found[0], bool) == isinstance(wanted, bool)
    return equal if op == "==" else not equal


def _cell(kind: str, value: Any, now: datetime) -> Any:
    if kind == "string":
        return go_print(value)
    if value is None:
        return None
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        when = parse_time(value)
        return human_duration(now - when) if when else "<invalid>"
    return None


def go_print(value: Any) -> str:
    """A value as Go's fmt.Print shows it (what kubectl shows for a string column)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)
