"""The resource types the embedded API server serves: the built-in kinds and those registered by CRDs.

Owned by the server core. Discovery, OpenAPI, patching and table rendering read `ResourceType`s
from here and know nothing else about the server. `Registry` is the live set: the HTTP layer
resolves URLs through it, and CRD registration adds and removes entries at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One REST resource, e.g. core/v1 services or lbipam.io/v1alpha1 loadbalancerippools."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # e.g. {"status"}
    builtin: bool = True  # False for CRD-defined kinds: no strategic merge patch (415)
    # For CRD-defined kinds: the version's openAPIV3Schema and additionalPrinterColumns.
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    # Which fields of the object are "spec" for generation bumps; everything but metadata/status.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # Where the objects live when two APIs serve the same objects (events.k8s.io/v1 events are
    # stored as core/v1 events): the `key` of the storage resource; "" means this one's own key.
    stored_as: str = ""
    # False for a served, non-storage version of a CRD (and for events.k8s.io): discovery lists
    # every served version; `preferred` marks the one a group advertises first.
    preferred: bool = True

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def key(self) -> str:
        """A stable identifier: "<group>/<plural>" (core group: "/services")."""
        return f"{self.group}/{self.plural}"

    @property
    def storage_key(self) -> str:
        """The key under which the store keeps this resource's objects."""
        return self.stored_as or self.key

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """How error messages name the resource: "services", "loadbalancerippools.lbipam.io"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """How 422 messages name the kind: "Service", "LoadBalancerIPPool.lbipam.io"."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


_STATUS = frozenset({"status"})
_NO_WATCH_LIST = ("create", "delete", "get", "patch", "update")


def _core(plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, singular=kind.lower(), **kw)


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", False, short_names=("ns",), subresources=_STATUS),
    _core("nodes", "Node", False, short_names=("no",), subresources=_STATUS),
    _core("services", "Service", True, short_names=("svc",), categories=("all",), subresources=_STATUS),
    _core("secrets", "Secret", True),
    _core("configmaps", "ConfigMap", True, short_names=("cm",)),
    _core("events", "Event", True, short_names=("ev",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, singular="endpointslice"),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, singular="lease"),
    ResourceType(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        True,
        singular="event",
        short_names=("ev",),
        stored_as="/events",
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        singular="customresourcedefinition",
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=_STATUS,
    ),
)


class Registry:
    """The live set of served resource types, looked up by (group, version, plural)."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove(self, group: str, plural: str) -> list[ResourceType]:
        """Forget every version of group/plural; returns what was removed."""
        gone = [t for (g, _, p), t in self._types.items() if g == group and p == plural]
        for rtype in gone:
            del self._types[(rtype.group, rtype.version, rtype.plural)]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def has_group_version(self, group: str, version: str) -> bool:
        return any(g == group and v == version for g, v, _ in self._types)

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        return [t for (g, _, p), t in self._types.items() if g == group and p == plural]

    def storage_type(self, storage_key: str) -> ResourceType | None:
        """The type whose own key is `storage_key` (the version objects are stored in)."""
        for rtype in self._types.values():
            if rtype.key == storage_key and not rtype.stored_as and rtype.extra.get("storage", True):
                return rtype
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def all(self) -> list[ResourceType]:
        """Every served type, in a stable order (for discovery and OpenAPI)."""
        return sorted(self._types.values(), key=lambda t: (t.group, t.version, t.plural))
