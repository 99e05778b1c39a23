"""The route planner on views (no API, no ExaBGP): one test per rule of bgp-design.md, and
property tests for the promises that must hold whatever the input."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp import planner
from bgp.planner import MAX_REFUSALS, plan_routes
from bgp.poolindex import PoolIndex
from bgp.rules import community_key
from bgp.views import (
    EXCLUDE_LABEL,
    FAMILIES,
    AdvertisementView,
    AnnouncedService,
    NodeInfo,
    PeerView,
    PoolInfo,
    RouteAttributes,
    RoutePlan,
)
from lbipam.core.addresses import Block, parse_block
from lbipam.core.selectors import compile_selector

NODE = NodeInfo(
    "n1",
    {"zone": "a"},
    pod_cidrs=("203.0.113.0/26", "2001:db8:1::/120"),
    ipv4="192.0.2.250",
    ipv6="2001:db8:ff::1",
)
POOLS = [
    PoolInfo("blue", {"color": "blue"}, (parse_block("192.0.2.0/26"), parse_block("2001:db8::/120"))),
    PoolInfo("red", {"color": "red"}, (parse_block("198.51.100.10-198.51.100.20"),)),
]
#: The PodCIDRPools: NODE's PodCIDRs lie inside them (a PodCIDR outside every pool is refused).
POD_POOLS = [PoolInfo("pods", blocks=(parse_block("203.0.113.0/24"), parse_block("2001:db8:1::/112")))]
IBGP = PeerView("tor-a", "192.0.2.254", asn=64512, local_asn=64512)
EBGP = PeerView("tor-b", "198.51.100.254", asn=64513, local_asn=64512)
PEERS = [IBGP, EBGP]


def ad(name: str = "all", **kw: Any) -> AdvertisementView:
    for key in ("pool_selector", "service_selector", "node_selector"):
        if key in kw:
            kw[key] = compile_selector(kw[key])
    return AdvertisementView(name, **kw)


def svc(
    name: str, *ips: str, local: bool = False, ready: Sequence[str] = ("n1",), **labels: str
) -> AnnouncedService:
    namespace = "default"
    synthetic = {"lbipam.io/service-name": name, "lbipam.io/service-namespace": namespace}
    return AnnouncedService(
        f"{namespace}/{name}",
        {**labels, **synthetic},
        ips,
        local=local,
        ready_anywhere=bool(ready),
        ready_nodes=frozenset(ready),
    )


def plan(
    services: Sequence[AnnouncedService],
    ads: Sequence[AdvertisementView] = (ad(),),
    peers: Sequence[PeerView] = PEERS,
    node: NodeInfo = NODE,
    pools: Sequence[PoolInfo] = POOLS,
    pod_pools: Sequence[PoolInfo] = POD_POOLS,
) -> RoutePlan:
    return plan_routes(node, peers, ads, services, pools, pod_pools)


def routes(result: RoutePlan, peer: str = "tor-a") -> dict[str, RouteAttributes]:
    return dict(result.routes[peer])


def reasons(result: RoutePlan, service: str = "default/s") -> set[tuple[str, str | None, str]]:
    return {(d.prefix, d.peer, d.reason) for d in result.decisions if d.service == service}


# ---- peers and the node ------------------------------------------------------------------------
def test_a_service_ip_goes_to_every_peer_with_next_hop_self() -> None:
    result = plan([svc("s", "192.0.2.5")])
    assert set(result.routes) == {"tor-a", "tor-b"}
    assert routes(result) == {"192.0.2.5/32": RouteAttributes("self")}
    assert result.count("tor-b") == 1
    assert reasons(result) == {("192.0.2.5/32", "tor-a", "announced"), ("192.0.2.5/32", "tor-b", "announced")}


def test_peers_with_problems_or_not_selecting_the_node_are_not_in_the_plan() -> None:
    broken = PeerView("broken", "192.0.2.253", 64512, 64512, problems=("passwordSecretRef: Secret missing",))
    elsewhere = PeerView(
        "elsewhere",
        "192.0.2.252",
        64512,
        64512,
        node_selector=compile_selector({"matchLabels": {"zone": "b"}}),
    )
    here = PeerView(
        "here", "192.0.2.251", 64512, 64512, node_selector=compile_selector({"matchLabels": {"zone": "a"}})
    )
    result = plan([svc("s", "192.0.2.5")], peers=[broken, elsewhere, here])
    assert set(result.routes) == {"here"}
    assert reasons(result) == {("192.0.2.5/32", "here", "announced")}


def test_an_open_peer_with_nothing_to_announce_has_an_empty_entry() -> None:
    result = plan([])
    assert result.routes == {"tor-a": {}, "tor-b": {}}
    assert result.count("tor-a") == 0


def test_no_open_peer_is_reported_once_per_ip() -> None:
    result = plan([svc("s", "192.0.2.5")], peers=[])
    assert result.routes == {}
    assert reasons(result) == {("192.0.2.5/32", None, "noPeers")}


def test_an_excluded_node_announces_nothing() -> None:
    excluded = NodeInfo("n1", {EXCLUDE_LABEL: ""}, pod_cidrs=("203.0.113.0/26",), ipv6="2001:db8:ff::1")
    result = plan([svc("s", "192.0.2.5", "2001:db8::5")], ads=[ad(pod_cidrs=True)], node=excluded)
    assert result.routes == {"tor-a": {}, "tor-b": {}}
    assert reasons(result) == {
        ("192.0.2.5/32", None, "nodeExcluded"),
        ("2001:db8::5/128", None, "nodeExcluded"),
    }
    assert reasons(result, "") == {("203.0.113.0/26", None, "nodeExcluded")}


# ---- endpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("local", "ready", "reason"),
    [
        pytest.param(False, ("n2",), "announced", id="cluster-ready-elsewhere"),
        pytest.param(False, (), "noEndpoints", id="cluster-ready-nowhere"),
        pytest.param(True, ("n1", "n2"), "announced", id="local-ready-here"),
        pytest.param(True, ("n2",), "noLocalEndpoints", id="local-ready-elsewhere"),
        pytest.param(True, (), "noLocalEndpoints", id="local-ready-nowhere"),
    ],
)
def test_traffic_policy_decides_which_endpoints_count(
    local: bool, ready: tuple[str, ...], reason: str
) -> None:
    result = plan([svc("s", "192.0.2.5", local=local, ready=ready)])
    found = {r for _, _, r in reasons(result)}
    assert found == {reason}
    assert bool(routes(result)) == (reason == "announced")


# ---- selection ---------------------------------------------------------------------------------
def test_an_ip_in_no_pool_is_never_announced() -> None:
    result = plan([svc("s", "203.0.113.200", "192.0.2.5")])
    assert routes(result) == {"192.0.2.5/32": RouteAttributes("self")}
    assert ("203.0.113.200/32", None, "notInPool") in reasons(result)


def test_a_malformed_ip_is_reported_not_raised() -> None:
    result = plan([svc("s", "192.0.2.5/32", "010.0.0.1")])
    assert reasons(result) == {
        ("192.0.2.5/32", None, "invalidAddress"),
        ("010.0.0.1", None, "invalidAddress"),
    }
    assert result.count("tor-a") == 0


def test_nothing_is_announced_without_an_advertisement() -> None:
    result = plan([svc("s", "192.0.2.5")], ads=[])
    assert routes(result) == {}
    (decision,) = result.decisions
    assert (decision.reason, decision.peer) == ("noAdvertisement", None)
    assert "node" in decision.detail


def test_an_advertisement_with_problems_announces_nothing() -> None:
    broken = ad("broken", problems=("communities[0]: 'x' is not a community",), pod_cidrs=True)
    result = plan([svc("s", "192.0.2.5")], ads=[broken])
    assert result.routes == {"tor-a": {}, "tor-b": {}}
    assert reasons(result) == {("192.0.2.5/32", None, "noAdvertisement")}
    assert reasons(result, "") == set()


@pytest.mark.parametrize(
    ("selectors", "announced"),
    [
        pytest.param({"pool_selector": {"matchLabels": {"color": "red"}}}, {"198.51.100.15/32"}, id="pool"),
        pytest.param({"service_selector": {"matchLabels": {"app": "web"}}}, {"192.0.2.5/32"}, id="service"),
        pytest.param(
            {"service_selector": {"matchLabels": {"lbipam.io/service-name": "db"}}},
            {"198.51.100.15/32"},
            id="synthetic-service-name",
        ),
        pytest.param(
            {"node_selector": {"matchLabels": {"zone": "a"}}}, {"192.0.2.5/32", "198.51.100.15/32"}, id="node"
        ),
        pytest.param({"node_selector": {"matchLabels": {"zone": "b"}}}, set(), id="other-node"),
    ],
)
def test_selectors_pick_pools_services_and_nodes(selectors: dict[str, Any], announced: set[str]) -> None:
    services = [svc("web", "192.0.2.5", app="web"), svc("db", "198.51.100.15", app="db")]
    result = plan(services, ads=[ad(**selectors)])
    assert set(routes(result)) == announced
    unannounced = {d.reason for d in result.decisions if d.reason != "announced"}
    assert unannounced <= {"noAdvertisement"}


def test_an_ip_held_by_overlapping_pools_matches_either_pool() -> None:
    pools = [*POOLS, PoolInfo("green", {"color": "green"}, (parse_block("192.0.2.0/24"),))]
    result = plan(
        [svc("s", "192.0.2.100", "192.0.2.5")],
        ads=[ad(pool_selector={"matchLabels": {"color": "green"}})],
        pools=pools,
    )
    assert set(routes(result)) == {"192.0.2.5/32", "192.0.2.100/32"}


def test_peers_names_the_peers_an_advertisement_goes_to() -> None:
    result = plan([svc("s", "192.0.2.5")], ads=[ad(peers=("tor-b", "not-here"))])
    assert routes(result) == {}
    assert set(routes(result, "tor-b")) == {"192.0.2.5/32"}
    assert reasons(result) == {
        ("192.0.2.5/32", "tor-a", "peerNotSelected"),
        ("192.0.2.5/32", "tor-b", "announced"),
    }


# ---- attributes --------------------------------------------------------------------------------
def test_attributes_are_united_over_every_matching_advertisement() -> None:
    ads = [
        ad(
            "a",
            communities=("64512:100", "no-export", "64512:20"),
            large_communities=("64512:1:1",),
            local_pref=100,
            med=50,
        ),
        ad(
            "b",
            communities=("64512:20", "64512:3"),
            large_communities=("64512:1:1", "64512:0:9"),
            local_pref=300,
            med=10,
        ),
        ad("c", local_pref=200),
        ad("other", service_selector={"matchLabels": {"app": "nope"}}, communities=("64512:999",), med=1),
    ]
    result = plan([svc("s", "192.0.2.5")], ads=ads)
    expected = RouteAttributes(
        "self",
        communities=("64512:3", "64512:20", "64512:100", "no-export"),
        large_communities=("64512:0:9", "64512:1:1"),
        local_pref=300,
        med=10,
    )
    assert routes(result) == {"192.0.2.5/32": expected}
    ebgp = routes(result, "tor-b")["192.0.2.5/32"]
    assert (ebgp.local_pref, ebgp.med, ebgp.communities) == (None, 10, expected.communities)


def test_routes_with_equal_attributes_share_one_attributes_object() -> None:
    result = plan([svc(f"s{i}", f"192.0.2.{i}") for i in range(1, 6)], ads=[ad(communities=("64512:1",))])
    assert len({id(a) for a in routes(result).values()}) == 1


def test_community_order_is_numeric_then_names() -> None:
    assert sorted(["no-export", "64512:100", "64512:20", "65000:1"], key=community_key) == [
        "64512:20",
        "64512:100",
        "65000:1",
        "no-export",
    ]


# ---- aggregation -------------------------------------------------------------------------------
def test_two_services_aggregating_to_one_prefix_make_one_route_with_united_attributes() -> None:
    ads = [
        ad(
            "web",
            service_selector={"matchLabels": {"app": "web"}},
            aggregation_v4=28,
            communities=("64512:1",),
            med=20,
        ),
        ad(
            "db",
            service_selector={"matchLabels": {"app": "db"}},
            aggregation_v4=28,
            communities=("64512:2",),
            med=5,
        ),
    ]
    result = plan([svc("web", "192.0.2.5", app="web"), svc("db", "192.0.2.9", app="db")], ads=ads)
    assert routes(result) == {"192.0.2.0/28": RouteAttributes("self", ("64512:1", "64512:2"), med=5)}
    assert ("192.0.2.0/28", "tor-a", "announced") in reasons(result, "default/web")
    assert ("192.0.2.0/28", "tor-a", "announced") in reasons(result, "default/db")


def test_each_aggregation_length_is_its_own_route() -> None:
    result = plan(
        [svc("s", "192.0.2.5", "2001:db8::5")],
        ads=[ad("host"), ad("agg", aggregation_v4=27, aggregation_v6=124)],
    )
    assert set(routes(result)) == {"192.0.2.0/27", "192.0.2.5/32", "2001:db8::/124", "2001:db8::5/128"}


@pytest.mark.parametrize(
    ("ip", "length", "field", "prefix"),
    [
        pytest.param("192.0.2.5", 24, "aggregationLength 24", "192.0.2.0/24", id="wider-than-cidr-block"),
        pytest.param("198.51.100.15", 28, "aggregationLength 28", "198.51.100.0/28", id="beyond-range-block"),
        pytest.param("2001:db8::5", 112, "aggregationLengthV6 112", "2001:db8::/112", id="ipv6"),
    ],
)
def test_an_aggregate_beyond_the_pool_block_is_refused(ip: str, length: int, field: str, prefix: str) -> None:
    agg = ad("agg", aggregation_v4=length, aggregation_v6=length)
    result = plan([svc("s", ip)], ads=[agg])
    assert routes(result) == {}
    assert {r for _, _, r in reasons(result)} == {"aggregationRefused"}
    (message,) = result.refusals["agg"]
    assert f"BGPAdvertisement agg: {field}" in message
    assert ip in message
    assert prefix in message
    assert "default/s" in message


def test_a_refused_aggregate_leaves_other_advertisements_alone() -> None:
    result = plan(
        [svc("s", "192.0.2.5")], ads=[ad("agg", aggregation_v4=16), ad("host", communities=("64512:7",))]
    )
    assert routes(result) == {"192.0.2.5/32": RouteAttributes("self", ("64512:7",))}
    assert set(result.refusals) == {"agg"}


def test_a_range_block_aggregates_inside_it() -> None:
    result = plan([svc("s", "198.51.100.13")], ads=[ad(aggregation_v4=31)])
    assert set(routes(result)) == {"198.51.100.12/31"}


def test_an_impossible_aggregation_length_is_refused_by_name() -> None:
    result = plan([svc("s", "192.0.2.5")], ads=[ad("bad", aggregation_v4=33)])
    assert result.refusals == {"bad": ("BGPAdvertisement bad: aggregationLength 33 is not in 0..32",)}
    assert routes(result) == {}


def test_refusals_are_capped_per_advertisement() -> None:
    services = [svc(f"s{i}", f"192.0.2.{i}") for i in range(1, 31)]
    result = plan(services, ads=[ad("agg", aggregation_v4=8)])
    notes = result.refusals["agg"]
    assert len(notes) == MAX_REFUSALS + 1
    assert "192.0.2.1 " in notes[0]
    assert notes[-1] == f"BGPAdvertisement agg: and {30 - MAX_REFUSALS} more refused"


# ---- PodCIDRs ----------------------------------------------------------------------------------
def test_pod_cidrs_are_announced_exactly_when_asked() -> None:
    pods = ad(
        "pods", pod_cidrs=True, pool_selector={"matchLabels": {"color": "none"}}, communities=("64512:9",)
    )
    result = plan([], ads=[pods])
    assert routes(result) == {
        "203.0.113.0/26": RouteAttributes("self", ("64512:9",)),
        "2001:db8:1::/120": RouteAttributes("2001:db8:ff::1", ("64512:9",)),
    }
    assert reasons(result, "") == {
        (p, peer, "announced") for p in ("203.0.113.0/26", "2001:db8:1::/120") for peer in ("tor-a", "tor-b")
    }


def test_pod_cidrs_follow_the_node_selector_and_peers() -> None:
    other = ad("pods-b", pod_cidrs=True, node_selector={"matchLabels": {"zone": "b"}})
    result = plan([], ads=[ad("pods", pod_cidrs=True, peers=("tor-b",)), other])
    assert routes(result) == {}
    assert set(routes(result, "tor-b")) == {"203.0.113.0/26", "2001:db8:1::/120"}
    assert ("203.0.113.0/26", "tor-a", "peerNotSelected") in reasons(result, "")


def test_without_a_pod_cidrs_advertisement_pod_cidrs_are_neither_announced_nor_reported() -> None:
    result = plan([svc("s", "192.0.2.5")])
    assert set(routes(result)) == {"192.0.2.5/32"}
    assert reasons(result, "") == set()


# ---- families and next hops --------------------------------------------------------------------
def test_a_family_the_peer_does_not_carry_is_skipped() -> None:
    v4only = PeerView("v4", "192.0.2.254", 64512, 64512, families=("ipv4-unicast",))
    result = plan([svc("s", "192.0.2.5", "2001:db8::5")], peers=[v4only])
    assert set(routes(result, "v4")) == {"192.0.2.5/32"}
    assert ("2001:db8::5/128", "v4", "familyNotEnabled") in reasons(result)


@pytest.mark.parametrize(
    ("peer_address", "node_ipv6", "hop"),
    [
        pytest.param("192.0.2.9", None, "2001:db8:ff::1", id="ipv4-session-node-ipv6"),
        pytest.param("192.0.2.9", "2001:db8:ee::1", None, id="ipv4-session-no-node-ipv6"),
    ],
)
def test_ipv6_next_hop_over_an_ipv4_session(
    peer_address: str, node_ipv6: str | None, hop: str | None
) -> None:
    """An IPv6 route over an IPv4 session takes the node's IPv6 InternalIP, else is refused."""
    peer = PeerView("p", peer_address, 64512, 64512, source="192.0.2.250")
    node = NodeInfo("n1", ipv4="192.0.2.250", ipv6=None if hop is None else "2001:db8:ff::1")
    result = plan([svc("s", "192.0.2.5", "2001:db8::5")], peers=[peer], node=node)
    assert routes(result, "p")["192.0.2.5/32"].next_hop == "192.0.2.250"  # the session's source
    if hop is None:
        assert "2001:db8::5/128" not in routes(result, "p")
        assert ("2001:db8::5/128", "p", "noIPv6NextHop") in reasons(result)
    else:
        assert routes(result, "p")["2001:db8::5/128"].next_hop == hop


# ---- the invariant and determinism -------------------------------------------------------------
def test_the_final_guard_drops_a_prefix_outside_the_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_planning: Any, _ad: int, _key: str, host: Any, _blocks: Any) -> Any:
        return (4, 0xC0000200, 0xC00002FF, "192.0.2.0/24") if host[3] == "192.0.2.5/32" else host

    monkeypatch.setattr(planner, "_aggregate", broken)
    result = plan([svc("s", "192.0.2.5"), svc("t", "192.0.2.6")])
    assert routes(result) == {"192.0.2.6/32": RouteAttributes("self")}
    assert reasons(result) == {
        ("192.0.2.0/24", "tor-a", "outsidePools"),
        ("192.0.2.0/24", "tor-b", "outsidePools"),
    }


def test_the_plan_does_not_depend_on_input_order() -> None:
    services = [svc(f"s{i}", f"192.0.2.{i}", f"2001:db8::{i:x}", app=str(i % 3)) for i in range(1, 40)]
    ads = [
        ad("a", communities=("64512:1",)),
        ad("b", aggregation_v4=28, service_selector={"matchLabels": {"app": "1"}}),
    ]
    first = plan(services, ads=ads)
    shuffled = random.Random(7)
    for _ in range(3):
        services, ads, peers = list(services), list(ads), list(PEERS)
        for items in (services, ads, peers):
            shuffled.shuffle(items)
        again = plan(services, ads=ads, peers=peers)
        assert again == first
        assert [list(r) for r in again.routes.values()] == [list(r) for r in first.routes.values()]


def test_routes_are_sorted_by_address() -> None:
    result = plan(
        [svc("s", "192.0.2.10", "192.0.2.9", "2001:db8::1", "192.0.2.100")],
        pools=[PoolInfo("all", blocks=(parse_block("192.0.2.0/24"), parse_block("2001:db8::/64")))],
    )
    assert list(routes(result)) == ["192.0.2.9/32", "192.0.2.10/32", "192.0.2.100/32", "2001:db8::1/128"]


# ---- properties --------------------------------------------------------------------------------
Snapshot = tuple[NodeInfo, list[PeerView], list[AdvertisementView], list[AnnouncedService], list[PoolInfo]]


def _block(draw: st.DrawFn) -> Block:
    base = draw(st.sampled_from([0xC0000200, 0xC6336400]))  # 192.0.2.0, 198.51.100.0
    if draw(st.booleans()):
        length = draw(st.integers(26, 32))
        first = base + (draw(st.integers(0, 255)) >> (32 - length) << (32 - length))
        return parse_block(f"{netaddr.IPAddress(first)}/{length}")
    first = base + draw(st.integers(0, 250))
    return parse_block(f"{netaddr.IPAddress(first)}-{netaddr.IPAddress(first + draw(st.integers(0, 5)))}")


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    pools = [
        PoolInfo(
            f"p{i}",
            {"color": draw(st.sampled_from(["red", "blue"]))},
            tuple(_block(draw) for _ in range(draw(st.integers(1, 3)))),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    pools.append(PoolInfo("v6", {"color": "blue"}, (parse_block("2001:db8::/120"),)))
    communities = st.lists(st.sampled_from(["64512:1", "64512:20", "64512:100", "no-export"]), max_size=4)
    ads = [
        ad(
            f"a{i}",
            pool_selector=draw(st.sampled_from([None, {"matchLabels": {"color": "red"}}])),
            service_selector=draw(st.sampled_from([None, {"matchLabels": {"app": "x"}}])),
            node_selector=draw(st.sampled_from([None, None, {"matchLabels": {"zone": "b"}}])),
            peers=tuple(draw(st.lists(st.sampled_from(["tor-a", "tor-b"]), max_size=1))),
            communities=tuple(draw(communities)),
            large_communities=tuple(draw(st.lists(st.sampled_from(["64512:1:1", "64512:0:2"]), max_size=3))),
            local_pref=draw(st.none() | st.integers(0, 500)),
            med=draw(st.none() | st.integers(0, 500)),
            aggregation_v4=draw(st.integers(24, 32)),
            aggregation_v6=draw(st.integers(116, 128)),
            pod_cidrs=draw(st.booleans()),
            problems=draw(st.sampled_from([(), (), ("med: bad",)])),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    # Mostly addresses the pools hold (else little gets announced), some anywhere near them.
    held = sorted({str(netaddr.IPAddress(x)) for p in pools for b in p.blocks for x in (b.first, b.last)})
    addresses = st.sampled_from(held) | st.builds(lambda n: f"2001:db8::{n:x}", st.integers(0, 300))
    addresses |= st.builds(
        lambda base, n: str(netaddr.IPAddress(base + n)),
        st.sampled_from([0xC0000200, 0xC6336400]),
        st.integers(0, 255),
    )
    services = [
        svc(
            f"s{i}",
            *draw(st.lists(addresses, min_size=1, max_size=2)),
            local=draw(st.booleans()),
            ready=draw(st.sampled_from([(), ("n1",), ("n2",)])),
            app=draw(st.sampled_from(["x", "y"])),
        )
        for i in range(draw(st.integers(0, 8)))
    ]
    labels = {EXCLUDE_LABEL: ""} if draw(st.integers(0, 3)) == 0 else {"zone": "a"}
    ipv6 = draw(st.sampled_from([None, "2001:db8:ff::1"]))
    pod_cidrs = ("203.0.113.0/26", "2001:db8:1::/120", *draw(st.sampled_from([(), ("0.0.0.0/1",)])))
    node = NodeInfo("n1", labels, pod_cidrs, "192.0.2.250", ipv6)
    families = draw(st.sampled_from([FAMILIES, ("ipv4-unicast",)]))
    peers = [
        PeerView("tor-a", "192.0.2.254", 64512, 64512),
        PeerView("tor-b", "192.0.2.253", 64513, 64512, families=families),
    ]
    return node, peers, ads, services, pools


def _in_pod_pools(cidr: str) -> bool:
    net = netaddr.IPNetwork(cidr)
    blocks = [b for p in POD_POOLS for b in p.blocks]
    return any(b.version == net.version and b.first <= net.first and net.last <= b.last for b in blocks)


def _reference(
    node: NodeInfo,
    peers: list[PeerView],
    ads: list[AdvertisementView],
    services: list[AnnouncedService],
    pools: list[PoolInfo],
) -> dict[str, dict[str, set[str]]]:
    """The rules written the slow, obvious way: per peer, prefix -> names of the advertisements
    that give it."""
    out: dict[str, dict[str, set[str]]] = {p.name: {} for p in peers}
    valid = [a for a in ads if not a.problems and a.node_selector.matches(node.labels)]
    pods = [c for c in node.pod_cidrs if _in_pod_pools(c)]
    wanted = [(netaddr.IPNetwork(c), a) for a in valid if a.pod_cidrs for c in pods]
    for service in services:
        ready = node.name in service.ready_nodes if service.local else service.ready_anywhere
        for ip in map(netaddr.IPAddress, service.ips):
            for a in valid:
                if not ready or not a.service_selector.matches(service.labels):
                    continue
                length = a.aggregation_v4 if ip.version == 4 else a.aggregation_v6
                net = netaddr.IPNetwork((int(ip), length), version=ip.version).cidr
                selected = [b for p in pools if a.pool_selector.matches(p.labels) for b in p.blocks]
                held = [b for b in selected if b.version == ip.version and b.first <= int(ip) <= b.last]
                if any(b.first <= net.first and net.last <= b.last for b in held):
                    wanted.append((net, a))
    for net, a in [] if node.excluded else wanted:
        for peer in peers:
            family_ok = f"ipv{net.version}-unicast" in peer.families
            if (not a.peers or peer.name in a.peers) and family_ok and (net.version == 4 or node.ipv6):
                out[peer.name].setdefault(str(net), set()).add(a.name)
    return out


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_plans_follow_the_rules_and_keep_their_promises(snapshot: Snapshot) -> None:
    node, peers, ads, services, pools = snapshot
    result = plan_routes(node, peers, ads, services, pools, POD_POOLS)
    reference = _reference(*snapshot)
    assert {p: set(r) for p, r in result.routes.items()} == {p: set(r) for p, r in reference.items()}
    by_name = {a.name: a for a in ads}
    ibgp = {p.name: p.ibgp for p in peers}
    for peer, planned in result.routes.items():
        for prefix, attributes in planned.items():
            assert _inside(prefix, pools, node), prefix
            given_by = [by_name[name] for name in reference[peer][prefix]]
            assert set(attributes.communities) == {c for a in given_by for c in a.communities}
            for values in (attributes.communities, attributes.large_communities):
                assert list(values) == sorted(set(values), key=community_key)
            meds = [a.med for a in given_by if a.med is not None]
            assert attributes.med == (min(meds) if meds else None)
            prefs = [a.local_pref for a in given_by if a.local_pref is not None and ibgp[peer]]
            assert attributes.local_pref == (max(prefs) if prefs else None)
            version = netaddr.IPNetwork(prefix).version
            assert attributes.next_hop == ("self" if version == 4 else node.ipv6)  # IPv4 sessions
    if node.excluded:
        assert all(not planned for planned in result.routes.values())
    announced = {(d.peer, d.prefix) for d in result.decisions if d.reason == "announced"}
    assert announced == {(peer, prefix) for peer, planned in result.routes.items() for prefix in planned}
    assert "outsidePools" not in {d.reason for d in result.decisions}


def _inside(prefix: str, pools: Sequence[PoolInfo], node: NodeInfo) -> bool:
    net = netaddr.IPNetwork(prefix)
    if str(net.cidr) in node.pod_cidrs and _in_pod_pools(prefix):
        return True
    blocks = [b for p in pools for b in p.blocks]
    return any(b.version == net.version and b.first <= net.first and net.last <= b.last for b in blocks)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 10)), max_size=8),
    st.integers(0, 75),
    st.integers(0, 6),
)
def test_the_pool_index_agrees_with_a_linear_search(
    spans: list[tuple[int, int]], first: int, width: int
) -> None:
    blocks = [
        (parse_block(f"{netaddr.IPAddress(s)}-{netaddr.IPAddress(s + w)}"), f"p{i}")
        for i, (s, w) in enumerate(spans)
    ]
    index = PoolIndex([PoolInfo(name, blocks=(block,)) for block, name in blocks])
    found = index.holders(4, first, first + width)
    expected = {name for block, name in blocks if block.first <= first and first + width <= block.last}
    assert {name for name, _ in found} == expected
    assert index.holders(6, first, first) == []


def test_the_pool_index_takes_the_same_block_written_twice() -> None:
    same = [parse_block("198.51.100.0/30"), parse_block("198.51.100.0-198.51.100.3")]
    index = PoolIndex([PoolInfo("a", blocks=(same[0],)), PoolInfo("a", blocks=(same[1],))])
    assert sorted(str(b) for _, b in index.holders(4, 0xC6336401, 0xC6336402)) == [
        "198.51.100.0-198.51.100.3",
        "198.51.100.0/30",
    ]
