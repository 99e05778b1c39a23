"""When two Services may hold one IP (DESIGN.md "Services", sharing). Pure functions.

Two Services share legally when they carry the same `lbipam.io/sharing-key`, live in the same
namespace (unless each one's `lbipam.io/sharing-cross-namespace` admits the other's namespace, or
says `*`), use no (protocol, port) in common, have the same externalTrafficPolicy, and, with
`Local`, the same pod selector (both must be answered by the same nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from lbipam.core.lbviews import ServiceView

ALREADY_ALLOCATED = "AlreadyAllocated"
INCOMPATIBLE_SHARING = "IncompatibleSharing"


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """The parts of a Service that decide whether it may share an IP."""

    service: str  # namespace/name
    namespace: str
    key: str | None
    namespaces: frozenset[str]
    ports: frozenset[tuple[str, int]]
    traffic_policy: str
    selector: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, view: ServiceView) -> ShareInfo:
        return cls(
            view.key,
            view.namespace,
            view.sharing_key,
            view.sharing_namespaces,
            view.ports,
            view.traffic_policy,
            view.selector,
        )

    def admits(self, namespace: str) -> bool:
        return namespace == self.namespace or "*" in self.namespaces or namespace in self.namespaces


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a Service may not join an IP: a condition reason and a message naming the holder."""

    reason: str
    message: str


def refusal(joiner: ShareInfo, holder: ShareInfo, ip: str) -> Refusal | None:
    """None when `joiner` may share `ip` with `holder`, else the reason it may not."""
    if holder.key is None:
        return Refusal(ALREADY_ALLOCATED, f"{ip} is held by {holder.service}, which has no sharing key")
    if joiner.key != holder.key:
        return Refusal(ALREADY_ALLOCATED, f"{ip} is held by {holder.service} under another sharing key")
    if not (joiner.admits(holder.namespace) and holder.admits(joiner.namespace)):
        return Refusal(
            INCOMPATIBLE_SHARING,
            f"{ip} is shared by {holder.service} in namespace {holder.namespace}; both Services must "
            "allow the other's namespace in lbipam.io/sharing-cross-namespace",
        )
    common = sorted(joiner.ports & holder.ports)
    if common:
        used = ", ".join(f"{proto}/{port}" for proto, port in common)
        return Refusal(INCOMPATIBLE_SHARING, f"{ip}: port {used} is already used by {holder.service}")
    if joiner.traffic_policy != holder.traffic_policy:
        return Refusal(
            INCOMPATIBLE_SHARING,
            f"{ip}: externalTrafficPolicy {joiner.traffic_policy} differs from {holder.service}'s "
            f"{holder.traffic_policy}",
        )
    if joiner.traffic_policy == "Local" and joiner.selector != holder.selector:
        return Refusal(
            INCOMPATIBLE_SHARING,
            f"{ip}: with externalTrafficPolicy Local the pod selector must equal {holder.service}'s",
        )
    return None


def first_refusal(joiner: ShareInfo, holders: list[ShareInfo], ip: str) -> Refusal | None:
    """The first reason `joiner` may not share `ip` with every one of `holders`, or None."""
    for holder in holders:
        if holder.service == joiner.service:
            continue
        found = refusal(joiner, holder, ip)
        if found is not None:
            return found
    return None
