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
Built-in kinds print the columns kube-apiserver prints for them; others get Name and Created At.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .registry import ResourceType

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
_NAME_DOC = "Name must be unique within a namespace. Cannot be updated."
_AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created."

Obj = dict[str, Any]


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


def _column(name: str, description: str, kind: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


CellsFn = Callable[[Obj, datetime], list[Any]]


def _printer(rtype: ResourceType) -> tuple[list[Obj], CellsFn]:
    if not rtype.builtin:
        return _crd_printer(rtype)
    spec = _BUILTIN.get((rtype.group, rtype.kind))
    if spec is None:
        cols = [_column("Name", _NAME_DOC, fmt="name"), _column("Created At", _AGE_DOC, "date")]
        return cols, lambda o, _: [_name(o), _meta(o).get("creationTimestamp")]
    names, fn = spec
    cols = []
    for entry in names.split("|"):
        name = entry.lstrip("*")
        fmt = "name" if name == "Name" else ""
        cols.append(_column(name, _DOCS.get(name, name), fmt=fmt, priority=1 if entry[0] == "*" else 0))
    return cols, fn


# --- custom resources ------------------------------------------------------------------------------


def _crd_printer(rtype: ResourceType) -> tuple[list[Obj], CellsFn]:
    cols = [_column("Name", _NAME_DOC, fmt="name")]
    paths: list[tuple[list[tuple[str, Any]], str]] = []
    for col in rtype.printer_columns:
        path = str(col.get("jsonPath", ""))
        desc = col.get("description") or f"Custom resource definition column (in JSONPath format): {path}"
        cols.append(
            _column(
                col["name"],
                desc,
                col.get("type", "string"),
                int(col.get("priority", 0)),
                col.get("format", ""),
            )
        )
        paths.append((parse_jsonpath(path), col.get("type", "string")))

    def cells(obj: Obj, now: datetime) -> list[Any]:
        out: list[Any] = [_name(obj)]
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
        when = _parse_time(value)
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


# --- ages ---------------------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(obj: Obj, now: datetime) -> str:
    when = _parse_time(str(_meta(obj).get("creationTimestamp") or ""))
    return human_duration(now - when) if when else "<unknown>"


def human_duration(delta: Any) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours = seconds // 60, seconds // 3600
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


# --- built-in kinds: kube-apiserver's printers (pkg/printers/internalversion) -----------------


def _service(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    kind = spec.get("type") or "ClusterIP"
    external = ",".join(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = [
            i.get("ip") or i.get("hostname") or ""
            for i in (status.get("loadBalancer") or {}).get("ingress") or []
        ]
        lb = ",".join(x for x in ingress if x)
        if len(lb) > 16:
            lb = lb[:13] + "..."
        external = ",".join(x for x in (external, lb) if x) or "<pending>"
    elif kind == "ExternalName":
        external = spec.get("externalName", "")
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = f"{p['port']}:{p['nodePort']}" if p.get("nodePort") else f"{p.get('port')}"
        ports.append(f"{node_port}/{proto}")
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        _name(o),
        kind,
        spec.get("clusterIP") or "<none>",
        external or "<none>",
        ",".join(ports) or "<none>",
        age(o, now),
        selector or "<none>",
    ]


def _node(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    ready = {c.get("type"): c.get("status") for c in status.get("conditions") or []}.get("Ready")
    state = {"True": "Ready", "False": "NotReady"}.get(str(ready), "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = _meta(o).get("labels") or {}
    roles = sorted(
        {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        _name(o),
        state,
        ",".join(r for r in roles if r) or "<none>",
        age(o, now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _endpointslice(o: Obj, now: datetime) -> list[Any]:
    ports = [str(p["port"]) for p in o.get("ports") or [] if p.get("port") is not None]
    addresses = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
    return [_name(o), o.get("addressType", ""), ",".join(ports) or "<unset>", shown or "<unset>", age(o, now)]


def _event(o: Obj, now: datetime) -> list[Any]:
    last = o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
    when = _parse_time(str(last or ""))
    involved = o.get("involvedObject") or {}
    obj = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    source = (o.get("source") or {}).get("component") or o.get("reportingComponent") or ""
    first = _parse_time(str(o.get("firstTimestamp") or ""))
    return [
        human_duration(now - when) if when else "<unknown>",
        o.get("type", ""),
        o.get("reason", ""),
        obj,
        involved.get("fieldPath", ""),
        source,
        str(o.get("message", "")).strip(),
        human_duration(now - first) if first else "<unknown>",
        int(o.get("count") or 1),
        _name(o),
    ]


# Column names, "*" marking those only `-o wide` shows (priority 1).
_BUILTIN: dict[tuple[str, str], tuple[str, CellsFn]] = {
    ("", "Service"): ("Name|Type|Cluster-IP|External-IP|Port(s)|Age|*Selector", _service),
    ("", "Node"): (
        "Name|Status|Roles|Age|Version|*Internal-IP|*External-IP|*OS-Image|*Kernel-Version|*Container-Runtime",
        _node,
    ),
    ("", "Namespace"): (
        "Name|Status|Age",
        lambda o, now: [_name(o), (o.get("status") or {}).get("phase", "Active"), age(o, now)],
    ),
    ("", "Secret"): (
        "Name|Type|Data|Age",
        lambda o, now: [_name(o), o.get("type", "Opaque"), len(o.get("data") or {}), age(o, now)],
    ),
    ("", "ConfigMap"): (
        "Name|Data|Age",
        lambda o, now: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o, now)],
    ),
    ("", "Event"): (
        "Last Seen|Type|Reason|Object|*Subobject|*Source|Message|*First Seen|*Count|*Name",
        _event,
    ),
    ("discovery.k8s.io", "EndpointSlice"): ("Name|AddressType|Ports|Endpoints|Age", _endpointslice),
    ("coordination.k8s.io", "Lease"): (
        "Name|Holder|Age",
        lambda o, now: [_name(o), (o.get("spec") or {}).get("holderIdentity", ""), age(o, now)],
    ),
}
_DOCS = {
    "Name": _NAME_DOC,
    "Age": _AGE_DOC,
    "Type": "The type of the object.",
    "Cluster-IP": "clusterIP is the IP address of the service.",
    "External-IP": "The external addresses of the service: externalIPs and load-balancer ingress.",
    "Port(s)": "The list of ports that are exposed by this service.",
    "Selector": "Route service traffic to pods with label keys and values matching this selector.",
    "Data": "The number of keys in the data.",
}
