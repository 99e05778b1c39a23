"""The speaker's pure rules (bgp.rules) and what the planner makes of them: next hops per family
and session, GRACEFUL_SHUTDOWN on a cordoned node, PodCIDRs only inside a PodCIDRPool, and what a
SIGTERM does to each session."""

from __future__ import annotations

import pytest

from bgp.planner import plan_routes
from bgp.rules import GRACEFUL_SHUTDOWN, Exit, next_hop, on_sigterm, route_attributes
from bgp.views import EXCLUDE_LABEL, AdvertisementView, AnnouncedService, NodeInfo, PeerView, PoolInfo
from lbipam.core.addresses import parse_block

NODE = NodeInfo("n1", ipv4="192.0.2.41", ipv6="2001:db8::41", pod_cidrs=("203.0.113.0/26",))
V4_SESSION = PeerView("v4", "192.0.2.254", 64512, 64512)
V6_SESSION = PeerView("v6", "2001:db8::fe", 64512, 64512, router_id="192.0.2.99")
SOURCED = PeerView("v4", "192.0.2.254", 64512, 64512, source="192.0.2.7")
GR = PeerView("p", "192.0.2.1", 1, 1, graceful_restart=True)
POOLS = [PoolInfo("lb", blocks=(parse_block("198.51.100.0/28"), parse_block("2001:db8:1::/120")))]
POD_POOLS = [PoolInfo("pods", blocks=(parse_block("203.0.113.0/24"),))]


def service(*ips: str) -> AnnouncedService:
    return AnnouncedService("default/s", {}, ips, ready_anywhere=True, ready_nodes=frozenset({"n1"}))


@pytest.mark.parametrize(
    ("peer", "node", "version", "hop"),
    [
        pytest.param(V4_SESSION, NODE, 4, "self", id="v4-route-v4-session"),
        pytest.param(SOURCED, NODE, 4, "192.0.2.7", id="v4-route-v4-session-source"),
        pytest.param(V4_SESSION, NODE, 6, "2001:db8::41", id="v6-route-v4-session-node-address"),
        pytest.param(V4_SESSION, NodeInfo("n1", ipv4="192.0.2.41"), 6, None, id="v6-route-v4-session-none"),
        pytest.param(V6_SESSION, NODE, 6, "self", id="v6-route-v6-session"),
        pytest.param(V6_SESSION, NODE, 4, "192.0.2.41", id="v4-route-v6-session-node-address"),
        pytest.param(V6_SESSION, NodeInfo("n1", ipv6="2001:db8::41"), 4, None, id="v4-route-v6-session-none"),
    ],
)
def test_next_hop_is_the_nodes_own_address_of_the_family(
    peer: PeerView, node: NodeInfo, version: int, hop: str | None
) -> None:
    assert next_hop(version, peer, node) == hop
    assert hop is None or hop != peer.router_id


@pytest.mark.parametrize(
    ("node", "peer", "exit"),
    [
        pytest.param(None, GR, Exit(False, "nodeGone"), id="node-gone"),
        pytest.param(NodeInfo("n", deleting=True), GR, Exit(False, "nodeDeleting"), id="node-deleting"),
        pytest.param(NodeInfo("n", {EXCLUDE_LABEL: ""}), GR, Exit(False, "nodeExcluded"), id="node-excluded"),
        pytest.param(NodeInfo("n", unschedulable=True), GR, Exit(False, "nodeCordoned"), id="drain"),
        pytest.param(
            NodeInfo("n"),
            PeerView("p", "192.0.2.1", 1, 1),
            Exit(False, "gracefulRestartOff"),
            id="graceful-restart-off",
        ),
        pytest.param(NodeInfo("n"), GR, Exit(True, "rollout"), id="rollout"),
    ],
)
def test_sigterm_keeps_routes_only_in_a_rollout(node: NodeInfo | None, peer: PeerView, exit: Exit) -> None:
    assert on_sigterm(node, peer) == exit


def test_a_draining_nodes_routes_carry_graceful_shutdown_in_community_order() -> None:
    ads = [AdvertisementView("a", communities=("64512:100", "no-export"))]
    attrs = route_attributes(ads, "self", ibgp=True, draining=True)
    assert attrs.communities == ("64512:100", GRACEFUL_SHUTDOWN, "no-export")
    assert route_attributes(ads, "self", ibgp=True, draining=False).communities == ("64512:100", "no-export")


def test_a_cordoned_node_announces_everything_with_graceful_shutdown() -> None:
    cordoned = NodeInfo("n1", ipv4="192.0.2.41", unschedulable=True)
    plan = plan_routes(cordoned, [V4_SESSION], [AdvertisementView("a")], [service("198.51.100.1")], POOLS)
    assert plan.routes["v4"]["198.51.100.1/32"].communities == (GRACEFUL_SHUTDOWN,)


def test_routes_without_a_next_hop_on_the_session_are_refused_with_a_reason() -> None:
    node = NodeInfo("n1", ipv6="2001:db8::41")  # no IPv4 InternalIP
    plan = plan_routes(
        node, [V6_SESSION], [AdvertisementView("a")], [service("198.51.100.1", "2001:db8:1::1")], POOLS
    )
    assert set(plan.routes["v6"]) == {"2001:db8:1::1/128"}
    assert plan.routes["v6"]["2001:db8:1::1/128"].next_hop == "self"
    refused = [d for d in plan.decisions if d.prefix == "198.51.100.1/32"]
    assert [(d.peer, d.reason) for d in refused] == [("v6", "noIPv4NextHop")]


def test_a_pod_cidr_outside_every_pod_cidr_pool_is_refused_and_reported() -> None:
    node = NodeInfo("n1", ipv4="192.0.2.41", pod_cidrs=("0.0.0.0/1", "203.0.113.0/26"))
    pods = [AdvertisementView("pods", pod_cidrs=True)]
    plan = plan_routes(node, [V4_SESSION], pods, [], POOLS, POD_POOLS)
    assert set(plan.routes["v4"]) == {"203.0.113.0/26"}
    assert [(d.prefix, d.reason) for d in plan.decisions if d.reason != "announced"] == [
        ("0.0.0.0/1", "podCIDRNotInPool")
    ]
    assert plan.pod_cidr_refusals == ("spec.podCIDRs: 0.0.0.0/1 is in no PodCIDRPool; it is not announced",)
    assert plan_routes(node, [V4_SESSION], pods, [], POOLS).routes["v4"] == {}  # no pools: nothing
