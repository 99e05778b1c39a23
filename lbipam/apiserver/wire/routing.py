"""URL paths of the Kubernetes API, resolved against the live registry.

`/api/v1/...` and `/apis/<group>/<version>/...`, namespaced (`namespaces/<ns>/<plural>/<name>`) and
cluster-scoped paths, subresources, and the legacy `/watch/` prefix. Pure; called by `http.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbipam.apiserver.errors import NO_RESOURCE, StatusError
from lbipam.apiserver.storage.registry import Registry, ResourceType


@dataclass(frozen=True)
class Target:
    """A resource URL: the type, the namespace (None: all or cluster-scoped), name, subresource."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str = ""
    watch: bool = False  # the legacy /watch/ prefix


@dataclass(frozen=True)
class Discovery:
    """A discovery URL: /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>."""

    group: str | None  # None: /api or /apis itself
    version: str | None
    core: bool


def not_found() -> StatusError:
    return StatusError(404, NO_RESOURCE, details={})


def resolve(registry: Registry, path: str) -> Target | Discovery | None:
    """What `path` names; None when it is no API path at all; StatusError(404) for unknown ones."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        if len(parts) == 1:
            return Discovery(None, None, core=True)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) <= 2:
            return Discovery(parts[1] if len(parts) == 2 else None, None, core=False)
        group, version, rest = parts[1], parts[2], parts[3:]
    if not registry.has_group_version(group, version):
        raise not_found()
    if not rest:
        return Discovery(group, version, core=not group)
    return _resource(registry, group, version, rest)


def _resource(registry: Registry, group: str, version: str, rest: list[str]) -> Target:
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    if not rest:
        raise not_found()
    namespace: str | None = None
    rtype = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.get(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            rtype, namespace, rest = candidate, rest[1], rest[3:]
    if rtype is None:
        rtype = registry.get(group, version, rest[0])
        rest = rest[1:]
        if rtype is None or (rtype.namespaced and rest):
            raise not_found()
    if len(rest) > 2:
        raise not_found()
    name = rest[0] if rest else None
    subresource = rest[1] if len(rest) == 2 else ""
    if subresource and (subresource not in rtype.subresources or watch):
        raise not_found()
    return Target(rtype, namespace, name, subresource, watch)
