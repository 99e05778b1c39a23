"""The driver against FRR 8 (bgpd alone: no zebra, nothing installed), as against BIRD: the
attributes arrive, a withdraw removes, graceful restart as helper keeps every route across a
rollout, eBGP multihop and TCP MD5 sessions come up, and an IPv6 session between two network
namespaces carries routes of both families with the right next hops."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bgp.driver import Driver
from bgp.views import RouteAttributes, RoutePlan
from tests.bgplab import PLAIN, TAGGED, loopback_pair, make_peer
from tests.frrlab import Frr, FrrNeighbor, have_frr
from tests.helpers import eventually
from tests.netns import ROUTER_V6, SPEAKER_V4, SPEAKER_V6, available, namespace_pair

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have_frr(), reason="needs FRR 8")]


def plan(routes: dict[str, RouteAttributes]) -> RoutePlan:
    return RoutePlan(routes={"tor": routes})


async def held(frr: Frr, expected: set[str], family: str = "ipv4") -> dict[str, object]:
    async def holds() -> dict[str, object] | None:
        routes = await frr.routes(family)
        return dict(routes) if set(routes) == expected else None

    found: dict[str, object] = await eventually(holds, timeout=20)
    return found


async def test_attributes_arrive_and_a_withdraw_removes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    async with (
        Frr(tmp_path / "frr", router, [FrrNeighbor(speaker)]) as frr,
        Driver(tmp_path / "sp") as driver,
    ):
        peer = make_peer(frr, speaker)
        await driver.apply(plan({"198.51.100.1/32": TAGGED, "198.51.100.2/32": PLAIN}), [peer])
        await held(frr, {"198.51.100.1/32", "198.51.100.2/32"})
        route = (await frr.routes())["198.51.100.1/32"]
        assert route.next_hop == speaker  # "self" on an IPv4 session: the session's own address
        assert route.communities == ("64512:100", "no-export")
        assert route.large_communities == ("64512:1:1",)
        assert (route.local_pref, route.med) == (200, 50)

        await driver.apply(plan({"198.51.100.2/32": PLAIN}), [peer])
        await held(frr, {"198.51.100.2/32"})


async def test_ebgp_multihop_and_md5_sessions_come_up(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    neighbor = FrrNeighbor(speaker, asn=64513, password="s3cret-pass", multihop=2)
    async with Frr(tmp_path / "frr", router, [neighbor]) as frr, Driver(tmp_path / "sp") as driver:
        peer = make_peer(frr, speaker, local_asn=64513, multihop=2, password="s3cret-pass")
        await driver.apply(plan({"198.51.100.7/32": PLAIN}), [peer])
        await held(frr, {"198.51.100.7/32"})
        assert await frr.state(speaker) == "Established"
        assert (await frr.neighbor(speaker))["externalBgpNbrMaxHopsAway"] == 2


async def test_graceful_restart_helper_keeps_every_route_across_a_rollout(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """stop(keep) closes the session without a NOTIFICATION: FRR keeps the routes (stale) and a
    new driver's re-announcement and End-of-RIB refresh them and flush the one not re-sent. The
    table is polled throughout: no wanted route is ever missing."""
    router, speaker = loopback_pair(request.node.nodeid)
    wanted = {f"198.51.100.{i}/32": TAGGED for i in range(20)}
    async with Frr(tmp_path / "frr", router, [FrrNeighbor(speaker)]) as frr:
        peer = make_peer(frr, speaker)
        old = Driver(tmp_path / "old")
        await old.apply(plan({**wanted, "203.0.113.9/32": PLAIN}), [peer])
        await held(frr, {*wanted, "203.0.113.9/32"})
        await eventually(lambda: old.sessions()["tor"].state == "Established", timeout=10)
        await old.stop(keep={"tor"})
        kept = await frr.routes()
        assert set(kept) == {*wanted, "203.0.113.9/32"}
        assert all(route.stale for route in kept.values())
        assert (await frr.neighbor(speaker))["messageStats"]["notificationsRecv"] == 0

        missing: list[str] = []
        async with Driver(tmp_path / "new") as new:
            await new.apply(plan(wanted), [peer])

            async def refreshed() -> bool:
                routes = await frr.routes()
                missing.extend(sorted(set(wanted) - set(routes)))
                return set(routes) == set(wanted) and not any(r.stale for r in routes.values())

            await eventually(refreshed, timeout=30, interval=0.05)
        assert missing == []


@pytest.mark.skipif(not available(), reason="network namespaces need root and iproute2")
async def test_an_ipv6_session_between_namespaces_carries_both_families(tmp_path: Path) -> None:
    """IPv4 routes over an IPv6 session carry the node's own IPv4 address, never the router
    ID (192.0.2.99 here); IPv6 routes the session's own address."""
    async with namespace_pair("frr6") as pair:
        frr = Frr(tmp_path / "frr", ROUTER_V6, [FrrNeighbor(SPEAKER_V6, asn=64513)], netns=pair.router)
        async with frr:
            exabgp = [*pair.exec(pair.speaker), sys.executable, "-m", "exabgp"]
            async with Driver(tmp_path / "sp", command=exabgp) as driver:
                peer = make_peer(frr, SPEAKER_V6, local_asn=64513, router_id="192.0.2.99")
                routes = {
                    "198.51.100.1/32": RouteAttributes(SPEAKER_V4, ("64512:1",)),
                    "2001:db8:1::1/128": RouteAttributes("self", ("64512:2",)),
                }
                await driver.apply(plan(routes), [peer])
                v4 = await held(frr, {"198.51.100.1/32"}, "ipv4")
                v6 = await held(frr, {"2001:db8:1::1/128"}, "ipv6")
                assert v4["198.51.100.1/32"].next_hop == SPEAKER_V4  # type: ignore[attr-defined]
                assert v6["2001:db8:1::1/128"].next_hop == SPEAKER_V6  # type: ignore[attr-defined]
                assert await frr.state(SPEAKER_V6) == "Established"
