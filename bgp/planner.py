"""The route planner: what this node's speaker announces to each BGP peer, and why.

`plan_routes` is one pure function of a snapshot (this node, its peers, the advertisements, the
announced Services, the pools): no I/O, no clock, no state between calls. The speaker calls it on
every change and hands the `RoutePlan` to the driver, which makes ExaBGP announce exactly that.
Rules: DESIGN.md "BGPAdvertisement" and "Announcements"; the reason codes are the constants below.

Every (Service, prefix, peer) gets a `Decision` with a reason code; a reason that holds for every
peer (no endpoints, no pool, ...) is given once with `peer=None` and the IP's host prefix. The
output does not depend on the order of the inputs: Services, IPs, peers and prefixes are sorted.

The one promise that matters most is checked again at the end, independently of how routes were
made: nothing outside a pool block or this node's own PodCIDRs (those inside a PodCIDRPool) is
ever announced. Next hops and attributes follow `bgp.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import netaddr

from bgp.poolindex import PoolIndex
from bgp.rules import NO_NEXT_HOP, next_hop, route_attributes
from bgp.views import (
    AdvertisementView,
    AnnouncedService,
    Decision,
    NodeInfo,
    PeerView,
    PoolInfo,
    RouteAttributes,
    RoutePlan,
)
from lbipam.core.addresses import BITS, AddressError, Block, ip_version, parse_address, parse_cidr

ANNOUNCED = "announced"
NODE_EXCLUDED = "nodeExcluded"
INVALID_ADDRESS = "invalidAddress"
NOT_IN_POOL = "notInPool"
NO_ENDPOINTS = "noEndpoints"
NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
NO_ADVERTISEMENT = "noAdvertisement"
NO_PEERS = "noPeers"
PEER_NOT_SELECTED = "peerNotSelected"
AGGREGATION_REFUSED = "aggregationRefused"
FAMILY_NOT_ENABLED = "familyNotEnabled"
OUTSIDE_POOLS = "outsidePools"
POD_CIDR_NOT_IN_POOL = "podCIDRNotInPool"

#: Refusal messages kept per advertisement; the rest are counted in one last message, so that a
#: bad aggregationLength over 50k Services does not become 50k Events.
MAX_REFUSALS = 20

FAMILY = {4: "ipv4-unicast", 6: "ipv6-unicast"}
AGGREGATION_FIELD = {4: "aggregationLength", 6: "aggregationLengthV6"}

# (version, first, last, canonical text): sorts in address order, hashes cheaply.
Prefix = tuple[int, int, int, str]
# Per peer: (peer, reason, detail, the advertisements that name the peer).
FanOut = list[tuple[str, str, str, frozenset[int]]]


@dataclass(slots=True)
class _Planning:
    """What one call works out once (per advertisement, per peer) and what it gathers."""

    node: NodeInfo
    ads: Sequence[AdvertisementView]
    index: PoolIndex
    pod_index: PoolIndex  # PodCIDRPool blocks: a PodCIDR is announced only inside one
    peers: dict[str, PeerView]  # the sessions this node opens, by name, sorted
    node_ads: list[int]  # valid advertisements that select this node
    ad_pools: list[frozenset[str]]
    ad_peers: list[tuple[str, ...]]
    next_hops: dict[str, dict[int, str | None]]
    decisions: list[Decision] = field(default_factory=list)
    routes: dict[str, dict[Prefix, frozenset[int]]] = field(default_factory=dict)
    refused: dict[str, dict[tuple[int, int], str]] = field(default_factory=dict)  # by (version, IP)
    fan_outs: dict[tuple[tuple[int, ...], int], FanOut] = field(default_factory=dict)
    aggregates: dict[tuple[int, int, int], Prefix] = field(default_factory=dict)
    pod_refusals: list[str] = field(default_factory=list)

    def decide(self, service: str, prefix: str, peer: str | None, reason: str, detail: str = "") -> None:
        self.decisions.append(Decision(service, prefix, peer, reason, detail))


def plan_routes(
    node: NodeInfo,
    peers: Sequence[PeerView],
    advertisements: Sequence[AdvertisementView],
    services: Sequence[AnnouncedService],
    pools: Sequence[PoolInfo],
    pod_pools: Sequence[PoolInfo] = (),
) -> RoutePlan:
    """The routes `node` announces to each peer it opens, with a decision for every Service IP.

    Peers with problems or whose nodeSelector does not select `node` are left out (the speaker
    does not open them); every other peer has an entry, empty when nothing goes to it. `pools`
    are the LoadBalancerIPPools, `pod_pools` the PodCIDRPools (their blocks only)."""
    planning = _prepare(node, peers, advertisements, pools)
    planning.pod_index = PoolIndex(pod_pools)
    _plan_pod_cidrs(planning)
    for service in sorted(services, key=lambda s: (s.key, s.ips)):
        _plan_service(planning, service)
    return _finish(planning)


def _prepare(
    node: NodeInfo,
    peers: Sequence[PeerView],
    ads: Sequence[AdvertisementView],
    pools: Sequence[PoolInfo],
) -> _Planning:
    by_name = sorted(peers, key=lambda p: p.name)
    opened = [p for p in by_name if not p.problems and p.node_selector.matches(node.labels)]
    names = tuple(p.name for p in opened)
    return _Planning(
        node=node,
        ads=ads,
        index=PoolIndex(pools),
        pod_index=PoolIndex(()),
        peers={p.name: p for p in opened},
        node_ads=[i for i, a in enumerate(ads) if not a.problems and a.node_selector.matches(node.labels)],
        ad_pools=[frozenset(p.name for p in pools if a.pool_selector.matches(p.labels)) for a in ads],
        ad_peers=[tuple(n for n in names if not a.peers or n in a.peers) for a in ads],
        next_hops={p.name: {v: next_hop(v, p, node) for v in (4, 6)} for p in opened},
        routes={name: {} for name in names},
    )


def _plan_pod_cidrs(planning: _Planning) -> None:
    """A valid advertisement with podCIDRs: true that selects this node announces the node's
    PodCIDRs, exactly, to its peers (no pool or Service selector applies), when they lie inside
    a PodCIDRPool: a PodCIDR set by hand outside every pool is refused."""
    pod_ads = [i for i in planning.node_ads if planning.ads[i].pod_cidrs]
    if not pod_ads:
        return
    for text in planning.node.pod_cidrs:
        try:
            net = parse_cidr(text)
        except AddressError as error:
            planning.decide("", text, None, INVALID_ADDRESS, str(error))
            continue
        prefix = (net.version, int(net.first), int(net.last), str(net.cidr))
        if planning.node.excluded:
            planning.decide("", prefix[3], None, NODE_EXCLUDED, f"node {planning.node.name} is excluded")
            continue
        if not planning.pod_index.holders(*prefix[:3]):
            why = f"spec.podCIDRs: {prefix[3]} is in no PodCIDRPool; it is not announced"
            planning.decide("", prefix[3], None, POD_CIDR_NOT_IN_POOL, why)
            planning.pod_refusals.append(why)
            continue
        covered = _route_to_peers(planning, "", [(prefix, pod_ads)])
        if len(covered) < len(planning.peers):
            _not_routed(planning, "", prefix[3], pod_ads, covered)


def _plan_service(planning: _Planning, service: AnnouncedService) -> None:
    """Each IP of the Service in address order; reasons that hold for every peer come first."""
    addresses: list[tuple[int, int, str]] = []
    for text in service.ips:
        try:
            address = parse_address(text)
        except AddressError as error:
            planning.decide(service.key, text, None, INVALID_ADDRESS, str(error))
            continue
        # An IPv4 address parse_address accepts is already canonical (no leading zeros).
        canonical = text if address.version == 4 else str(address)
        addresses.append((address.version, int(address), f"{canonical}/{BITS[address.version]}"))
    if len(addresses) > 1:
        addresses.sort()
    if planning.node.excluded:
        for _, _, host in addresses:
            planning.decide(service.key, host, None, NODE_EXCLUDED, f"node {planning.node.name} is excluded")
        return
    blocked = _endpoint_problem(planning.node.name, service)
    service_ads: list[int] | None = None
    for version, ip, host in addresses:
        holders = planning.index.holders(version, ip, ip)
        if not holders:
            planning.decide(service.key, host, None, NOT_IN_POOL, "the IP is in no LoadBalancerIPPool")
        elif blocked:
            planning.decide(service.key, host, None, *blocked)
        else:
            if service_ads is None:  # once per Service, only when some IP gets this far
                ads, labels = planning.ads, service.labels
                service_ads = [i for i in planning.node_ads if ads[i].service_selector.matches(labels)]
            _plan_address(planning, service.key, (version, ip, ip, host), holders, service_ads)


def _endpoint_problem(node: str, service: AnnouncedService) -> tuple[str, str] | None:
    if service.local and node not in service.ready_nodes:
        return NO_LOCAL_ENDPOINTS, f"externalTrafficPolicy Local and no ready endpoint on node {node}"
    if not service.local and not service.ready_anywhere:
        return NO_ENDPOINTS, "externalTrafficPolicy Cluster and no ready endpoint on any node"
    return None


def _plan_address(
    planning: _Planning, key: str, host: Prefix, holders: list[tuple[str, Block]], service_ads: list[int]
) -> None:
    """One Service IP: the advertisements that select its pool, the Service and this node, each
    giving the IP's aggregated prefix to its peers."""
    groups: dict[Prefix, list[int]] = {}
    selected = []
    for i in service_ads:
        blocks = [block for pool, block in holders if pool in planning.ad_pools[i]]
        if blocks:
            selected.append(i)
            prefix = _aggregate(planning, i, key, host, blocks)
            if prefix is not None:
                groups.setdefault(prefix, []).append(i)
    if not selected:
        why = "selects node" if not planning.node_ads else "selects this Service and pool on node"
        planning.decide(
            key, host[3], None, NO_ADVERTISEMENT, f"no valid BGPAdvertisement {why} {planning.node.name}"
        )
    elif not planning.peers:
        planning.decide(key, host[3], None, NO_PEERS, f"no BGPPeer is open on node {planning.node.name}")
    else:
        covered = _route_to_peers(planning, key, sorted(groups.items()))
        if len(covered) < len(planning.peers):
            _not_routed(planning, key, host[3], selected, covered)


def _aggregate(planning: _Planning, ad: int, key: str, host: Prefix, blocks: list[Block]) -> Prefix | None:
    """The IP's prefix under the advertisement's aggregation length, or None (refused) when that
    prefix would reach beyond the pool block holding the IP. Integer arithmetic: this runs for
    every Service IP an aggregating advertisement selects."""
    version, ip, _, _ = host
    view, bits = planning.ads[ad], BITS[version]
    length = view.aggregation_v4 if version == 4 else view.aggregation_v6
    if length == bits:
        return host
    if not 0 <= length < bits:
        _refuse(planning, view, version, -1, f"is not in 0..{bits}")  # -1: sorts before every IP
        return None
    first = ip >> (bits - length) << (bits - length)
    last = first | ((1 << (bits - length)) - 1)
    prefix = planning.aggregates.get((version, first, last))
    if prefix is None:
        text = f"{netaddr.IPAddress(first, ip_version(version))}/{length}"
        prefix = planning.aggregates[(version, first, last)] = (version, first, last, text)
    if any(b.first <= first and last <= b.last for b in blocks):
        return prefix
    where = f"{host[3].partition('/')[0]} (Service {key}), beyond its pool block {blocks[0]}"
    _refuse(planning, view, version, ip, f"would announce {prefix[3]} for {where}")
    return None


def _refuse(planning: _Planning, view: AdvertisementView, version: int, ip: int, why: str) -> None:
    """Note once per advertisement and IP why its route was refused, naming the field."""
    refused = planning.refused.setdefault(view.name, {})
    length = view.aggregation_v4 if version == 4 else view.aggregation_v6
    refused.setdefault(
        (version, ip), f"BGPAdvertisement {view.name}: {AGGREGATION_FIELD[version]} {length} {why}"
    )


def _route_to_peers(planning: _Planning, key: str, groups: list[tuple[Prefix, list[int]]]) -> set[str]:
    """Add each prefix for the peers its advertisements name; the peers that got a decision."""
    covered: set[str] = set()
    for prefix, ads in groups:
        text = prefix[3]
        for peer, reason, detail, chosen in _fan_out(planning, tuple(ads), prefix[0]):
            covered.add(peer)
            if reason == ANNOUNCED:
                routes = planning.routes[peer]
                held = routes.get(prefix)
                routes[prefix] = chosen if held is None else held | chosen
            planning.decisions.append(Decision(key, text, peer, reason, detail))
    return covered


def _fan_out(planning: _Planning, ads: tuple[int, ...], version: int) -> FanOut:
    """(peer, reason, detail, ads naming the peer) for a prefix given by `ads`; the same few
    combinations come up for thousands of Services, so they are worked out once."""
    cached = planning.fan_outs.get((ads, version))
    if cached is not None:
        return cached
    family, result = FAMILY[version], cast(FanOut, [])
    for peer, view in planning.peers.items():
        chosen = frozenset(i for i in ads if peer in planning.ad_peers[i])
        if not chosen:
            continue
        if family not in view.families:
            result.append((peer, FAMILY_NOT_ENABLED, f"the peer's families lack {family}", chosen))
        elif planning.next_hops[peer][version] is None:
            why = f"no IPv{version} address on the session or the node (InternalIP)"
            result.append((peer, NO_NEXT_HOP[version], why, chosen))
        else:
            result.append((peer, ANNOUNCED, "", chosen))
    planning.fan_outs[(ads, version)] = result
    return result


def _not_routed(planning: _Planning, key: str, host: str, selected: list[int], covered: set[str]) -> None:
    """Decisions for the peers that got no prefix: no advertisement names them, or every
    advertisement that does refused its prefix."""
    wanted = {peer for i in selected for peer in planning.ad_peers[i]}
    for peer in planning.peers:
        if peer in wanted and peer not in covered:
            detail = "every advertisement's prefix was refused"
            planning.decide(key, host, peer, AGGREGATION_REFUSED, detail)
        elif peer not in covered:
            planning.decide(key, host, peer, PEER_NOT_SELECTED, "no advertisement for this IP names it")


def _finish(planning: _Planning) -> RoutePlan:
    """Attributes for every route that passes the invariant check; what fails it is dropped and
    its decisions say so."""
    outside = _outside_prefixes(planning)
    cache: dict[tuple[frozenset[int], str, bool], RouteAttributes] = {}
    draining = planning.node.unschedulable
    routes: dict[str, dict[str, RouteAttributes]] = {}
    dropped: set[tuple[str, str]] = set()
    for peer, planned in planning.routes.items():
        ibgp, hops = planning.peers[peer].ibgp, planning.next_hops[peer]
        out = routes[peer] = {}
        for prefix in sorted(planned):
            if prefix in outside:
                dropped.add((peer, prefix[3]))
                continue
            hop = hops[prefix[0]]
            assert hop is not None  # _fan_out routes nothing without a next hop
            cache_key = (planned[prefix], hop, ibgp)
            attributes = cache.get(cache_key)
            if attributes is None:
                given_by = [planning.ads[i] for i in sorted(planned[prefix])]
                attributes = cache[cache_key] = route_attributes(given_by, hop, ibgp, draining)
            out[prefix[3]] = attributes
    decisions = planning.decisions
    if dropped:
        why = "the prefix is in no pool block and is not a PodCIDR of this node"
        decisions = [
            replace(d, reason=OUTSIDE_POOLS, detail=why)
            if d.reason == ANNOUNCED and (d.peer or "", d.prefix) in dropped
            else d
            for d in decisions
        ]
    return RoutePlan(
        routes=routes,
        decisions=tuple(decisions),
        refusals=_refusals(planning),
        pod_cidr_refusals=tuple(planning.pod_refusals),
    )


def _outside_prefixes(planning: _Planning) -> set[Prefix]:
    """The invariant, checked apart from how the routes were made: a planned prefix lies in a
    pool block or is one of this node's PodCIDRs inside a PodCIDRPool. The rules above never
    break it; if a bug does, the route is dropped rather than announced."""
    own = set()
    for text in planning.node.pod_cidrs:
        try:
            net = parse_cidr(text)
        except AddressError:
            continue
        span = (net.version, int(net.first), int(net.last))
        if planning.pod_index.holders(*span):
            own.add(span)
    planned = {prefix for routes in planning.routes.values() for prefix in routes}
    holders = planning.index.holders
    return {p for p in planned if (p[0], p[1], p[2]) not in own and not holders(p[0], p[1], p[2])}


def _refusals(planning: _Planning) -> dict[str, tuple[str, ...]]:
    """Per advertisement, its refusals in address order, at most MAX_REFUSALS and a count."""
    out = {}
    for name, refused in sorted(planning.refused.items()):
        notes = [refused[k] for k in sorted(refused)]
        if len(notes) > MAX_REFUSALS:
            notes[MAX_REFUSALS:] = [f"BGPAdvertisement {name}: and {len(notes) - MAX_REFUSALS} more refused"]
        out[name] = tuple(notes)
    return out
