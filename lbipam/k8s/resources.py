"""What lbipam talks to: one frozen `Resource` descriptor per kind, and the URL paths they live at.

Everything in `lbipam.k8s` addresses the API through these descriptors instead of generated API
classes, so a kind is one line here (group, version, plural, kind, scope, whether it has /status).
Callers pass the constants (`SERVICES`, `LBPOOLS`, ...) to `Kube`, `Informer` and `StatusWriter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource: `group` is "" for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool = False

    @property
    def api_version(self) -> str:
        """The apiVersion written in objects: "v1" or "group/version"."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """The group-version root: /api/v1 or /apis/<group>/<version>."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection, or of one object (and its subresource).

        A namespaced collection without a namespace is the all-namespaces list; a namespaced
        object needs its namespace, and a cluster-scoped one must not have one.
        """
        if namespace and not self.namespaced:
            raise ValueError(f"{self.kind} is cluster-scoped: namespace {namespace!r} makes no sense")
        if name is not None and self.namespaced and not namespace:
            raise ValueError(f"{self.kind} {name!r}: a namespaced object needs metadata.namespace")
        if subresource is not None and name is None:
            raise ValueError(f"{self.kind}: subresource {subresource!r} needs an object name")
        if subresource == "status" and not self.has_status:
            raise ValueError(f"{self.kind} has no status subresource")
        path = self.prefix
        if namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.plural}"
        if name is not None:
            if not name:
                raise ValueError(f"{self.kind}: empty object name")
            path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object; namespace is "" for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def describe(obj: Mapping[str, Any]) -> str:
    """A short "namespace/name" (or "name") for messages."""
    namespace, name = object_key(obj)
    return f"{namespace}/{name}" if namespace else name


LBIPAM_GROUP = "lbipam.io"
LBIPAM_VERSION = "v1alpha1"

SERVICES = Resource("", "v1", "services", "Service", namespaced=True, has_status=True)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False, has_status=True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False, has_status=True)
SECRETS = Resource("", "v1", "secrets", "Secret", namespaced=True)
CORE_EVENTS = Resource("", "v1", "events", "Event", namespaced=True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event", namespaced=True)
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    namespaced=False,
    has_status=True,
)


def _lbipam(plural: str, kind: str) -> Resource:
    """lbipam's own kinds: lbipam.io/v1alpha1, cluster-scoped, with /status."""
    return Resource(LBIPAM_GROUP, LBIPAM_VERSION, plural, kind, namespaced=False, has_status=True)


LBPOOLS = _lbipam("loadbalancerippools", "LoadBalancerIPPool")
PODCIDRPOOLS = _lbipam("podcidrpools", "PodCIDRPool")
BGPPEERS = _lbipam("bgppeers", "BGPPeer")
BGPADVERTISEMENTS = _lbipam("bgpadvertisements", "BGPAdvertisement")
BGPNODESTATES = _lbipam("bgpnodestates", "BGPNodeState")
CILIUMNODES = Resource("cilium.io", "v2", "ciliumnodes", "CiliumNode", namespaced=False, has_status=True)

ALL = (
    SERVICES,
    NODES,
    NAMESPACES,
    SECRETS,
    CORE_EVENTS,
    ENDPOINTSLICES,
    LEASES,
    EVENTS,
    CRDS,
    LBPOOLS,
    PODCIDRPOOLS,
    BGPPEERS,
    BGPADVERTISEMENTS,
    BGPNODESTATES,
    CILIUMNODES,
)
