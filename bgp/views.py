"""The frozen views the speaker's pure parts work on, and the route plan they produce.

Built from API objects in exactly one place (`bgp.convert`); read by `bgp.planner` (which makes
a `RoutePlan`), `bgp.render` (which turns `PeerView`s and routes into ExaBGP text) and
`bgp.driver` (which makes ExaBGP announce a `RoutePlan`). Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lbipam.core.addresses import Block
from lbipam.core.selectors import EVERYTHING, Selector

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
FAMILIES = ("ipv4-unicast", "ipv6-unicast")


@dataclass(frozen=True, slots=True)
class BfdView:
    """BGPPeer spec.bfd when enabled: the timers of the session (milliseconds)."""

    min_rx_ms: int = 300
    min_tx_ms: int = 300
    multiplier: int = 3


@dataclass(frozen=True, slots=True)
class PeerView:
    """One BGPPeer as this node's speaker opens it."""

    name: str
    address: str  # the router's address, canonical text
    asn: int
    local_asn: int
    port: int = 179
    source: str | None = None  # local address of the session
    router_id: str | None = None  # None: the node's IPv4 InternalIP
    hold_time: int = 90
    multihop: int | None = None  # TTL
    password: str | None = None  # TCP MD5, resolved from the Secret
    graceful_restart: bool = False
    restart_time: int = 120
    families: tuple[str, ...] = FAMILIES
    node_selector: Selector = EVERYTHING
    problems: tuple[str, ...] = ()  # why the peer is not opened (names the field)
    bfd: BfdView | None = None  # None: BFD is off

    @property
    def ibgp(self) -> bool:
        return self.asn == self.local_asn


@dataclass(frozen=True, slots=True)
class AdvertisementView:
    name: str
    pool_selector: Selector = EVERYTHING
    service_selector: Selector = EVERYTHING
    node_selector: Selector = EVERYTHING
    peers: tuple[str, ...] = ()  # BGPPeer names; empty: every peer
    communities: tuple[str, ...] = ()  # "64512:100" or a well-known name ExaBGP knows
    large_communities: tuple[str, ...] = ()  # "64512:1:1"
    local_pref: int | None = None
    med: int | None = None
    aggregation_v4: int = 32
    aggregation_v6: int = 128
    pod_cidrs: bool = False
    problems: tuple[str, ...] = ()  # an advertisement with problems announces nothing


@dataclass(frozen=True, slots=True)
class AnnouncedService:
    """A Service of type LoadBalancer with IPs in its status, and where its endpoints are ready."""

    key: str  # "namespace/name"
    labels: Mapping[str, str] = field(default_factory=dict)  # incl. lbipam.io/service-name/-namespace
    ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip, canonical text
    local: bool = False  # externalTrafficPolicy: Local
    ready_anywhere: bool = False  # a ready endpoint on some node
    ready_nodes: frozenset[str] = frozenset()  # nodes with a ready endpoint


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A LoadBalancerIPPool as the speaker needs it: labels for poolSelector, blocks for the
    invariant that nothing outside a pool is ever announced."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_cidrs: tuple[str, ...] = ()  # spec.podCIDRs, canonical text
    ipv4: str | None = None  # InternalIP of each family
    ipv6: str | None = None
    unschedulable: bool = False  # spec.unschedulable: cordoned, being drained
    deleting: bool = False  # metadata.deletionTimestamp is set

    @property
    def excluded(self) -> bool:
        return EXCLUDE_LABEL in self.labels

    def address(self, version: int) -> str | None:
        """The InternalIP of IP version 4 or 6."""
        return self.ipv4 if version == 4 else self.ipv6


@dataclass(frozen=True, slots=True)
class RouteAttributes:
    """What one route carries. Hashable: routes with equal attributes go out in one bulk command."""

    next_hop: str  # "self" or an address
    communities: tuple[str, ...] = ()  # sorted, deduplicated
    large_communities: tuple[str, ...] = ()  # sorted, deduplicated
    local_pref: int | None = None  # iBGP only
    med: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a Service IP is or is not announced to a peer (logs, status, `lbipam status`)."""

    service: str  # "namespace/name"; "" for a PodCIDR
    prefix: str
    peer: str | None  # None when the reason holds for every peer
    reason: str  # "announced", "noLocalEndpoints", "noEndpoints", "nodeExcluded", ...
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The routes this node should announce: per BGPPeer name, prefix -> attributes."""

    routes: Mapping[str, Mapping[str, RouteAttributes]] = field(default_factory=dict)
    decisions: tuple[Decision, ...] = ()
    refusals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # advertisement -> problems
    pod_cidr_refusals: tuple[str, ...] = ()  # this node's PodCIDRs refused, and why (Events on the Node)

    def count(self, peer: str) -> int:
        return len(self.routes.get(peer, {}))


class SessionSummary(Protocol):
    """What the driver reports of one session, in brief (`bgp.driver.SessionInfo`)."""

    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def advertised(self) -> int: ...
