"""The speaker's small pure rules, beside the planner: a route's next hop and attributes, and what
a SIGTERM does to each session (a rollout keeps the routes, everything else withdraws them).

No I/O, no clock. `bgp.planner` uses `next_hop` and `route_attributes` for every route it plans;
`bgp.speaker` asks `on_sigterm` once per peer when it stops and hands the answer to the driver.
Rules: the README, "The speaker" (next hops, drains, rollouts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bgp.views import AdvertisementView, NodeInfo, PeerView, RouteAttributes
from lbipam.core.addresses import AddressError, parse_address

#: RFC 8326 GRACEFUL_SHUTDOWN: a cordoned node's routes carry it so routers move traffic first.
GRACEFUL_SHUTDOWN = "65535:0"
#: Reason codes of a route with no usable next hop on a session, by IP version.
NO_NEXT_HOP = {4: "noIPv4NextHop", 6: "noIPv6NextHop"}

# What a SIGTERM does to a session, with its reason code.
ROLLOUT = "rollout"  # graceful restart: close without a NOTIFICATION, withdraw nothing
NODE_GONE = "nodeGone"
NODE_DELETING = "nodeDeleting"
NODE_CORDONED = "nodeCordoned"
NODE_EXCLUDED = "nodeExcluded"
GRACEFUL_RESTART_OFF = "gracefulRestartOff"


def _version(text: str | None) -> int | None:
    try:
        return parse_address(text or "").version
    except AddressError:
        return None


def next_hop(version: int, peer: PeerView, node: NodeInfo) -> str | None:
    """The next hop of a route of IP `version` to `peer`: the node's own address of that family.

    On a session of the route's own family: the session's sourceAddress, else "self" (ExaBGP
    then writes the session's local address, the one the router talks to). On a session of the
    other family: the node's InternalIP of the route's family. Never "self" there: ExaBGP would
    write the router ID (an IPv4 route over an IPv6 session) or refuse the route (the reverse).
    None when there is none: the route is refused with `NO_NEXT_HOP[version]`.
    """
    if _version(peer.address) == version:
        return peer.source if _version(peer.source) == version else "self"
    own = node.address(version)
    return own if _version(own) == version else None


def community_key(text: str) -> tuple[int, tuple[int, ...], str]:
    """Sort key for (large) communities: numeric ones by value ("64512:20" before "64512:100"),
    well-known names after them."""
    parts = text.split(":")
    if all(p.isdigit() for p in parts):
        return 0, tuple(int(p) for p in parts), text
    return 1, (), text


def route_attributes(
    ads: Sequence[AdvertisementView], next_hop: str, ibgp: bool, draining: bool
) -> RouteAttributes:
    """United over every advertisement that gave the route: communities of all, the highest
    local preference (iBGP only), the lowest MED; GRACEFUL_SHUTDOWN while the node drains."""
    prefs = [a.local_pref for a in ads if a.local_pref is not None]
    meds = [a.med for a in ads if a.med is not None]
    communities = {c for a in ads for c in a.communities}
    if draining:
        communities.add(GRACEFUL_SHUTDOWN)
    return RouteAttributes(
        next_hop=next_hop,
        communities=tuple(sorted(communities, key=community_key)),
        large_communities=tuple(sorted({c for a in ads for c in a.large_communities}, key=community_key)),
        local_pref=max(prefs) if prefs and ibgp else None,
        med=min(meds) if meds else None,
    )


@dataclass(frozen=True, slots=True)
class Exit:
    """What a SIGTERM does to one session: `keep` its routes at the router (graceful restart:
    the session is closed without a NOTIFICATION, the next speaker re-announces and sends
    End-of-RIB) or withdraw them first; `reason` is a code for logs."""

    keep: bool
    reason: str


def on_sigterm(node: NodeInfo | None, peer: PeerView) -> Exit:
    """A rollout (the Node stays: it exists, is not being deleted, is schedulable and not
    excluded, and the peer has graceful restart) keeps the routes; anything else is a drain or a
    departure, and withdraws them before the speaker exits."""
    if node is None:
        return Exit(False, NODE_GONE)
    if node.deleting:
        return Exit(False, NODE_DELETING)
    if node.excluded:
        return Exit(False, NODE_EXCLUDED)
    if node.unschedulable:
        return Exit(False, NODE_CORDONED)
    if not peer.graceful_restart:
        return Exit(False, GRACEFUL_RESTART_OFF)
    return Exit(True, ROLLOUT)
