"""What a Service asks of LB-IPAM: the families it wants and any IPs it requests by name.

Pure: turns a `ServiceView` into {family: requested IP or None} or the `Failure` (a condition
reason and a message naming the annotation at fault) that says why the request cannot be read.
Also home of the condition reasons, shared by the planner and its callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbipam.core.lbholdings import canonical
from lbipam.core.lbviews import REQUIRE_DUAL_STACK, ServiceView

SATISFIED = "Satisfied"
NO_POOL = "NoPool"
POOL_SELECTOR_MISMATCH = "PoolSelectorMismatch"
OUT_OF_IPS = "OutOfIPs"
ALREADY_ALLOCATED = "AlreadyAllocated"
INCOMPATIBLE_SHARING = "IncompatibleSharing"
INVALID_REQUEST = "InvalidRequest"

FAMILY_NAME = {4: "IPv4", 6: "IPv6"}
Wanted = dict[int, str | None]  # family -> the requested IP, or None for any


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    message: str


def wanted(view: ServiceView) -> tuple[Wanted, Failure | None]:
    """Family -> requested IP (or None: any), in the Service's family order; or why not."""
    if view.problems:
        return {}, Failure(INVALID_REQUEST, "; ".join(view.problems))
    if not view.requested:
        return dict.fromkeys(view.families), None
    source = view.requested_from
    requested: dict[int, str | None] = {}
    for text in view.requested:
        parsed = canonical(text.strip())
        if parsed is None:
            return {}, Failure(INVALID_REQUEST, f"{source}: {text.strip()!r} is not an IP address")
        ip, family = parsed
        if family in requested:
            return {}, Failure(INVALID_REQUEST, f"{source} asks for two {FAMILY_NAME[family]} addresses")
        if family not in view.families:
            have = ", ".join(FAMILY_NAME[f] for f in view.families)
            return {}, Failure(
                INVALID_REQUEST, f"{source} asks for {ip} but the Service's ipFamilies are {have}"
            )
        requested[family] = ip
    if view.policy == REQUIRE_DUAL_STACK and len(requested) < len(view.families):
        return {}, Failure(INVALID_REQUEST, f"RequireDualStack: {source} must name one IP per family")
    return {f: requested[f] for f in view.families if f in requested}, None
