"""kube-apiserver's printers for the built-in kinds: the Table columns `kubectl get` shows.

Follows pkg/printers/internalversion (the server always prints the wide form; kubectl hides the
priority-1 columns unless `-o wide`): Services, Nodes (INTERNAL-IP and EXTERNAL-IP are the first
address of each type), Namespaces, Secrets, ConfigMaps, EndpointSlices, Leases and Events. An
events.k8s.io/v1 Event prints as the core/v1 Event it is stored as, as in Kubernetes. Also the
age and time helpers both printers and `tables.py` use. Pure; called by `tables.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from lbipam.apiserver.kinds.events import to_core

Obj = dict[str, Any]
CellsFn = Callable[[Obj, datetime], list[Any]]
NAME_DOC = "Name must be unique within a namespace. Cannot be updated."
AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created."


def column(name: str, description: str, kind: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


def builtin(group: str, kind: str) -> tuple[list[Obj], CellsFn]:
    """The columns and the cell function of a built-in kind (Name and Created At when it has none)."""
    spec = _BUILTIN.get((group, kind))
    if spec is None:
        cols = [column("Name", NAME_DOC, fmt="name"), column("Created At", AGE_DOC, "date")]
        return cols, lambda o, _: [name_of(o), meta_of(o).get("creationTimestamp")]
    names, fn = spec
    cols = []
    for entry in names.split("|"):
        name = entry.lstrip("*")
        fmt = "name" if name == "Name" else ""
        cols.append(column(name, _DOCS.get(name, name), fmt=fmt, priority=1 if entry[0] == "*" else 0))
    return cols, fn


# --- ages ---------------------------------------------------------------------------------------------


def parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, "<unknown>" when it is unset."""
    when = parse_time(str(value or ""))
    return human_duration(now - when) if when else "<unknown>"


def age(obj: Obj, now: datetime) -> str:
    return since(meta_of(obj).get("creationTimestamp"), now)


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


def meta_of(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return str(meta_of(obj).get("name", ""))


# --- the kinds ------------------------------------------------------------------------------------


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
        name_of(o),
        kind,
        spec.get("clusterIP") or "<none>",
        external or "<none>",
        ",".join(ports) or "<none>",
        age(o, now),
        selector or "<none>",
    ]


def first_address(node: Obj, kind: str) -> str:
    """getNodeInternalIP / getNodeExternalIP: the first address of that type, or <none>."""
    for address in (node.get("status") or {}).get("addresses") or []:
        if isinstance(address, dict) and address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def _node(o: Obj, now: datetime) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    ready = {c.get("type"): c.get("status") for c in status.get("conditions") or []}.get("Ready")
    state = {"True": "Ready", "False": "NotReady"}.get(str(ready), "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = meta_of(o).get("labels") or {}
    roles = sorted(
        {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    info = status.get("nodeInfo") or {}
    return [
        name_of(o),
        state,
        ",".join(r for r in roles if r) or "<none>",
        age(o, now),
        info.get("kubeletVersion", ""),
        first_address(o, "InternalIP"),
        first_address(o, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _endpointslice(o: Obj, now: datetime) -> list[Any]:
    ports = [str(p["port"]) for p in o.get("ports") or [] if p.get("port") is not None]
    addresses = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
    return [
        name_of(o),
        o.get("addressType", ""),
        ",".join(ports) or "<unset>",
        shown or "<unset>",
        age(o, now),
    ]


def _event(o: Obj, now: datetime) -> list[Any]:
    """printEvent: first seen falls back to eventTime, last seen to first seen, a series wins."""
    first = since(o.get("firstTimestamp") or o.get("eventTime"), now)
    last = since(o.get("lastTimestamp"), now) if o.get("lastTimestamp") else first
    count = o.get("count") or 1
    series = o.get("series")
    if isinstance(series, dict):
        last, count = since(series.get("lastObservedTime"), now), series.get("count") or 0
    involved = o.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target += f"/{involved['name']}"
    source = o.get("source") or {}
    component = source.get("component") or o.get("reportingComponent") or ""
    instance = source.get("host") or o.get("reportingInstance") or ""
    return [
        last,
        o.get("type", ""),
        o.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(o.get("message", "")).strip(),
        first,
        int(count),
        name_of(o),
    ]


_EVENT_COLUMNS = "Last Seen|Type|Reason|Object|*Subobject|*Source|Message|*First Seen|*Count|*Name"
# Column names, "*" marking those only `-o wide` shows (priority 1).
_BUILTIN: dict[tuple[str, str], tuple[str, CellsFn]] = {
    ("", "Service"): ("Name|Type|Cluster-IP|External-IP|Port(s)|Age|*Selector", _service),
    ("", "Node"): (
        "Name|Status|Roles|Age|Version|*Internal-IP|*External-IP|*OS-Image|*Kernel-Version|*Container-Runtime",
        _node,
    ),
    ("", "Namespace"): (
        "Name|Status|Age",
        lambda o, now: [name_of(o), (o.get("status") or {}).get("phase", "Active"), age(o, now)],
    ),
    ("", "Secret"): (
        "Name|Type|Data|Age",
        lambda o, now: [name_of(o), o.get("type", "Opaque"), len(o.get("data") or {}), age(o, now)],
    ),
    ("", "ConfigMap"): (
        "Name|Data|Age",
        lambda o, now: [name_of(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o, now)],
    ),
    ("", "Event"): (_EVENT_COLUMNS, _event),
    ("events.k8s.io", "Event"): (_EVENT_COLUMNS, lambda o, now: _event(to_core(o), now)),
    ("discovery.k8s.io", "EndpointSlice"): ("Name|AddressType|Ports|Endpoints|Age", _endpointslice),
    ("coordination.k8s.io", "Lease"): (
        "Name|Holder|Age",
        lambda o, now: [name_of(o), (o.get("spec") or {}).get("holderIdentity", ""), age(o, now)],
    ),
}
_DOCS = {
    "Name": NAME_DOC,
    "Age": AGE_DOC,
    "Type": "The type of the object.",
    "Cluster-IP": "clusterIP is the IP address of the service.",
    "External-IP": "The external addresses of the service: externalIPs and load-balancer ingress.",
    "Port(s)": "The list of ports that are exposed by this service.",
    "Selector": "Route service traffic to pods with label keys and values matching this selector.",
    "Data": "The number of keys in the data.",
    "Last Seen": "The time at which the most recent occurrence of this event was recorded.",
    "Reason": "This should be a short, machine understandable string that gives the reason for the "
    "transition into the object's current status.",
    "Object": "The object that this event is about.",
    "Subobject": "If referring to a piece of an object instead of an entire object, this string should "
    "contain a valid JSON/Go-field access statement, such as desiredState.manifest.containers[2].",
    "Source": "The component reporting this event.",
    "Message": "A human-readable description of the status of this operation.",
    "First Seen": "The time at which the event was first recorded.",
    "Count": "The number of times this event has occurred.",
    "Internal-IP": "The node's first InternalIP address.",
}
