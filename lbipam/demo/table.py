"""The demo's printed tables: Services with their IPs and pools, the routes each node's speaker
announces, and what Ctrl-C withdrew. Pure formatting of API objects, route plans and sessions;
called by `lbipam.demo.main`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bgp.views import RoutePlan, SessionSummary

Obj = dict[str, Any]
ALLOCATED_FROM = "lbipam.io/allocated-from"
CONDITION = "lbipam.io/IPAMRequestSatisfied"


def service_key(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def ips(svc: Obj) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(i["ip"]) for i in ingress if i.get("ip")]


def pools(svc: Obj) -> str:
    return str(((svc.get("metadata") or {}).get("annotations") or {}).get(ALLOCATED_FROM, ""))


def condition(svc: Obj) -> str:
    for cond in (svc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == CONDITION:
            if cond.get("status") == "True":
                return ""
            return f"{cond.get('reason')}: {cond.get('message')}"
    return "pending"


def grid(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, like `kubectl get`."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def announcers(key: str, plans: Mapping[str, RoutePlan | None]) -> str:
    """The nodes whose plan announces some prefix of Service `key` to some peer."""
    nodes = sorted(
        node
        for node, plan in plans.items()
        if plan is not None and any(d.service == key and d.reason == "announced" for d in plan.decisions)
    )
    return ", ".join(nodes) or "-"


def services_table(services: Iterable[Obj], plans: Mapping[str, RoutePlan | None]) -> str:
    rows = []
    for svc in sorted(services, key=service_key):
        if (svc.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        key = service_key(svc)
        shown = ", ".join(ips(svc)) or "<pending>"
        rows.append([key, shown, pools(svc) or "-", announcers(key, plans), condition(svc)])
    return grid(["SERVICE", "IPS", "POOL", "ANNOUNCED BY", "PROBLEM"], rows)


def routes_table(plans: Mapping[str, RoutePlan | None], sessions: Mapping[str, Mapping[str, str]]) -> str:
    """One row per (node, peer, prefix) with its attributes and the session state."""
    rows = []
    for node in sorted(plans):
        plan = plans[node]
        for peer, routes in sorted((plan.routes if plan else {}).items()):
            state = sessions.get(node, {}).get(peer, "?")
            for prefix, attrs in sorted(routes.items()):
                extras = [
                    f"communities {' '.join(attrs.communities)}" if attrs.communities else "",
                    f"large {' '.join(attrs.large_communities)}" if attrs.large_communities else "",
                    f"local-pref {attrs.local_pref}" if attrs.local_pref is not None else "",
                    f"med {attrs.med}" if attrs.med is not None else "",
                ]
                rows.append([node, f"{peer} ({state})", prefix, " ".join(e for e in extras if e)])
    return grid(["NODE", "PEER (SESSION)", "PREFIX", "ATTRIBUTES"], rows)


def withdrawn(sessions: Mapping[str, Mapping[str, SessionSummary]]) -> str:
    """What stopping withdrew: the routes each node had announced on each session that was up."""
    lines = [
        f"  {node}: {_routes(s.advertised)} from {peer} ({s.address})"
        for node in sorted(sessions)
        for peer, s in sorted(sessions[node].items())
        if s.state == "Established" and s.advertised
    ]
    if not lines:
        return "Stopped. No session was up, so no router held a route: nothing to withdraw."
    return "\n".join(["Stopped. Withdrawn:", *lines])


def _routes(count: int) -> str:
    return f"{count} route" if count == 1 else f"{count} routes"
