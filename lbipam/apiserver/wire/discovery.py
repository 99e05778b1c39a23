"""Discovery documents for the embedded server: /version, /api, /apis and the resource lists.

Owned by the discovery owner; the HTTP layer serves what these return (all pure functions of the
registry's resource types).

    version_info() -> dict                                   # GET /version
    core_api_versions(server_address) -> dict                # GET /api  (APIVersions)
    api_group_list(rtypes) -> dict                           # GET /apis (APIGroupList)
    api_resource_list(group_version, rtypes) -> dict         # GET /api/v1, /apis/<g>/<v> (APIResourceList)
    aggregated_discovery(rtypes, core: bool) -> dict         # GET /api or /apis, aggregated
    wants_aggregated(accept_header) -> bool

Aggregated discovery (what kubectl >= 1.30 asks for first): when `wants_aggregated(Accept)` is
true, answer GET /api with `aggregated_discovery(rtypes, core=True)` and GET /apis with
`aggregated_discovery(rtypes, core=False)`, with Content-Type `AGGREGATED_CONTENT_TYPE`
exactly; otherwise answer the legacy document as `application/json`. client-go decides which
document it got from the Content-Type alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from lbipam.apiserver.storage.registry import ResourceType

KUBE_MAJOR, KUBE_MINOR = "1", "32"
GIT_VERSION = f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-lbipam"
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_STATUS_VERBS = ["get", "patch", "update"]
# kube-aggregator's group priorities, so `kubectl api-resources` lists groups in the real order;
# groups from CRDs come after, by name.
_GROUP_PRIORITY = {
    "events.k8s.io": 17750,
    "apiextensions.k8s.io": 16700,
    "coordination.k8s.io": 16500,
    "discovery.k8s.io": 16200,
}


def version_info() -> dict[str, str]:
    """GET /version: a Kubernetes 1.32 the kubectl dispatcher maps to its kubectl 1.32."""
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _groups(rtypes: Iterable[ResourceType]) -> list[tuple[str, list[str], str]]:
    """(group, versions newest-preferred first, preferred version) for every named group."""
    versions: dict[str, list[str]] = {}
    preferred: dict[str, str] = {}
    for t in rtypes:
        if not t.group:
            continue
        if t.version not in versions.setdefault(t.group, []):
            versions[t.group].append(t.version)
        if t.preferred:
            preferred.setdefault(t.group, t.version)
    out = []
    for group, vs in versions.items():
        pref = preferred.get(group, vs[0])
        ordered = [pref, *sorted((v for v in vs if v != pref), key=_version_priority)]
        out.append((group, ordered, pref))
    out.sort(key=lambda g: (-_GROUP_PRIORITY.get(g[0], 1000), g[0]))
    return out


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA before beta before alpha, higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (1, 0, 0)
    stage = {"alpha": 0, "beta": 1}.get(m.group(2) or "", 2)
    return (-stage, -int(m.group(1)), -int(m.group(3) or 0))


def api_group_list(rtypes: Iterable[ResourceType]) -> dict[str, Any]:
    groups = []
    for group, versions, pref in _groups(rtypes):
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append(
            {
                "name": group,
                "versions": gvs,
                "preferredVersion": {"groupVersion": f"{group}/{pref}", "version": pref},
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group_version: str, rtypes: Iterable[ResourceType]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for t in sorted((t for t in rtypes if t.group_version == group_version), key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular or t.kind.lower(),
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in sorted(t.subresources):
            resources.append(
                {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": list(_STATUS_VERBS),
                }
            )
    doc: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}
    if "/" in group_version:
        doc["apiVersion"] = "v1"
    return doc


def wants_aggregated(accept_header: str | None) -> bool:
    """Whether the client accepts the apidiscovery.k8s.io/v2 APIGroupDiscoveryList."""
    for part in (accept_header or "").split(","):
        params = {
            p.split("=", 1)[0].strip(): p.split("=", 1)[-1].strip() for p in part.split(";")[1:] if "=" in p
        }
        if (
            params.get("g") == "apidiscovery.k8s.io"
            and params.get("v") == "v2"
            and params.get("as") == "APIGroupDiscoveryList"
        ):
            return True
    return False


def aggregated_discovery(rtypes: Iterable[ResourceType], core: bool) -> dict[str, Any]:
    """The apidiscovery.k8s.io/v2 document for /api (core=True) or /apis."""
    types = list(rtypes)
    items = []
    if core:
        items.append(_discovery_group("", ["v1"], types))
    else:
        for group, versions, _ in _groups(types):
            items.append(_discovery_group(group, versions, types))
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def _discovery_group(group: str, versions: list[str], types: list[ResourceType]) -> dict[str, Any]:
    out = []
    for version in versions:
        resources = [
            _discovery_resource(t)
            for t in sorted(types, key=lambda t: t.plural)
            if t.group == group and t.version == version
        ]
        out.append({"version": version, "resources": resources, "freshness": "Current"})
    metadata: dict[str, Any] = (
        {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
    )
    return {"metadata": metadata, "versions": out}


def _discovery_resource(t: ResourceType) -> dict[str, Any]:
    kind = {"group": t.group, "version": t.version, "kind": t.kind}
    entry: dict[str, Any] = {
        "resource": t.plural,
        "responseKind": kind,
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular or t.kind.lower(),
        "verbs": list(t.verbs),
    }
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    if t.subresources:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": kind, "verbs": list(_STATUS_VERBS)}
            for sub in sorted(t.subresources)
        ]
    return entry
