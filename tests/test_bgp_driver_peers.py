"""The driver's peers against real routers: TCP MD5, peers added, changed and removed (ExaBGP
`reload` keeps the other sessions up), bad attributes that never reach the router, and GoBGP 3 as
a second kind of router."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bgp.driver import Driver
from bgp.views import PeerView, RouteAttributes, RoutePlan
from tests.bgplab import TAGGED, Bird, GoBGP, Lab, Neighbor, Route, have, lab_for, loopback_pair, make_peer
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]


def md5_failures() -> int:
    """The kernel's count of TCP segments dropped for a wrong MD5 signature (TcpExt)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] == "TcpExt:":
            return int(values[names.index("TCPMD5Failure")])
    raise AssertionError("no TcpExt counters")


async def test_md5_session_establishes_only_with_the_right_password(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with lab_for(tmp_path, request.node.nodeid, password="s3cret pass") as lab:
        await _md5(lab)


async def _md5(lab: Lab) -> None:
    lab.peer = make_peer(lab.bird, lab.peer.source or "", password="wrong pass")
    failures = md5_failures()
    await lab.apply({"192.0.2.1/32": TAGGED})
    # The kernel drops ExaBGP's SYNs signed with the wrong key: wait until it did at least once.
    await eventually(lambda: md5_failures() > failures, timeout=20)
    assert await lab.bird.state() != "Established"
    assert lab.driver.sessions()["tor"].state != "Established"
    assert await lab.bird.routes() == {}

    lab.peer = make_peer(lab.bird, lab.peer.source or "", password="s3cret pass")
    await lab.apply({"192.0.2.1/32": TAGGED})
    await eventually(lambda: lab.driver.sessions()["tor"].state == "Established", timeout=20)
    assert await lab.bird.state() == "Established"
    await lab.table({"192.0.2.1/32"})


async def test_bad_attributes_are_refused_and_never_reach_the_router(tmp_path: Path, lab: Lab) -> None:
    injected = "64512:1\nannounce route 0.0.0.0/0 next-hop self"
    routes = {
        "192.0.2.66/32": RouteAttributes("self", (injected,)),
        "192.0.2.67/32": RouteAttributes("self", ("announce route 0.0.0.0/0 next-hop self",)),
        "192.0.2.68/32": RouteAttributes("self", large_communities=("1:2:3\r\nshutdown",)),
        "192.0.2.69/32\nannounce route 0.0.0.0/0 next-hop self": RouteAttributes("self"),
        "192.0.2.1/32": TAGGED,
    }
    await lab.apply(routes)
    # The one good route arrives; it was sent after nothing else: the table holds it alone.
    assert set(await lab.table({"192.0.2.1/32"})) == {"192.0.2.1/32"}
    error = lab.driver.sessions()["tor"].last_error
    assert "'\\n'" in error
    assert "(and 3 more)" in error

    # The last line of defence, below render: the channel itself refuses a line break.
    with pytest.raises(ValueError, match="refusing"):
        await lab.driver.exabgp.send("neighbor 127.0.0.1 announce route 192.0.2.9/32 next-hop self\nshutdown")
    assert set(await lab.bird.routes()) == {"192.0.2.1/32"}


@pytest.fixture
async def lab(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    async with lab_for(tmp_path, request.node.nodeid) as lab:
        yield lab


async def test_adding_and_removing_a_peer_leaves_the_other_session_alone(
    tmp_path: Path, lab: Lab, request: pytest.FixtureRequest
) -> None:
    first = lab.peer
    await lab.apply({"192.0.2.1/32": TAGGED})
    before = (await lab.table({"192.0.2.1/32"}))["192.0.2.1/32"]
    await lab.established()
    since = lab.driver.sessions()["tor"].since

    router, speaker = loopback_pair(request.node.nodeid + "/second")
    async with Bird(tmp_path / "bird2", router, [Neighbor(speaker)]) as second_bird:
        second = make_peer(second_bird, speaker, name="tor-b")
        both = {"tor": {"192.0.2.1/32": TAGGED}, "tor-b": {"198.51.100.7/32": TAGGED}}
        await lab.driver.apply(RoutePlan(routes=both), [first, second])
        await eventually(lambda: lab.driver.sessions()["tor-b"].state == "Established", timeout=20)
        assert set(await eventually(second_bird.routes, timeout=10)) == {"198.51.100.7/32"}

        # The first session was never reset: same route import time, same `since`.
        assert same_import(await lab.bird.routes(), before)
        assert lab.driver.sessions()["tor"].since == since
        assert await lab.bird.state() == "Established"

        # Removing the second peer withdraws its routes and closes its session only.
        await lab.driver.apply(RoutePlan(routes=both), [first])
        assert await eventually(lambda: _empty(second_bird), timeout=10)
        assert "tor-b" not in lab.driver.sessions()
        await eventually(lambda: _not_established(second_bird), timeout=10)
        assert same_import(await lab.bird.routes(), before)


def same_import(routes: dict[str, Route], before: Route) -> bool:
    """The route was not learnt again (BIRD prints its import times with a microsecond of jitter)."""
    return abs(routes[before.prefix].imported - before.imported) < 0.001


async def _empty(bird: Bird) -> bool:
    return await bird.routes() == {}


async def _not_established(bird: Bird) -> bool:
    return await bird.state() != "Established"


async def test_changed_peer_is_reopened_and_refreshed(lab: Lab) -> None:
    await lab.apply({"192.0.2.1/32": TAGGED, "192.0.2.2/32": TAGGED})
    await lab.table({"192.0.2.1/32", "192.0.2.2/32"})
    await lab.established()
    since = lab.driver.sessions()["tor"].since

    lab.peer = make_peer(lab.bird, lab.peer.source or "", hold_time=45)
    await lab.apply({"192.0.2.1/32": TAGGED})
    await eventually(lambda: lab.driver.sessions()["tor"].since != since, timeout=10)
    await lab.established()
    # After the re-opened session's End-of-RIB only the wanted route is left.
    await lab.table({"192.0.2.1/32"})


async def test_refused_peers_are_reported_and_not_opened(lab: Lab) -> None:
    broken = PeerView(
        name="broken", address="192.0.2.250", asn=65001, local_asn=65000, problems=("no Secret",)
    )
    twin = make_peer(lab.bird, lab.peer.source or "", name="twin")  # same address as "tor"
    await lab.driver.apply(RoutePlan(routes={"tor": {"192.0.2.1/32": TAGGED}}), [lab.peer, broken, twin])
    sessions = lab.driver.sessions()
    assert (sessions["broken"].state, sessions["broken"].last_error) == ("Idle", "no Secret")
    assert "already used by BGPPeer tor" in sessions["twin"].last_error
    await lab.table({"192.0.2.1/32"})


@pytest.mark.skipif(not have("gobgpd", "gobgp"), reason="needs GoBGP 3")
async def test_gobgp_receives_the_same_routes(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    # GoBGP treats 127.x next hops as withdrawn: give a documentation-range one.
    v4 = RouteAttributes("192.0.2.254", ("64512:100",), ("64512:1:1",), local_pref=200, med=50)
    v6 = RouteAttributes("2001:db8::fe", ("64512:200",))
    async with GoBGP(tmp_path / "gobgp", router, speaker) as gobgp, Driver(tmp_path / "speaker") as driver:
        peer = PeerView(
            name="gobgp", address=router, asn=65000, local_asn=65000, port=gobgp.port, source=speaker,
            router_id=speaker, hold_time=30,
        )  # fmt: skip
        plan = {"gobgp": {"192.0.2.10/32": v4, "198.51.100.0/24": v4, "2001:db8::10/128": v6}}
        await driver.apply(RoutePlan(routes=plan), [peer])
        ipv4 = await eventually(lambda: _rib(gobgp, "ipv4", 2), timeout=20)
        ipv6 = await eventually(lambda: _rib(gobgp, "ipv6", 1), timeout=20)
        assert set(ipv4) == {"192.0.2.10/32", "198.51.100.0/24"}
        assert set(ipv6) == {"2001:db8::10/128"}
        attrs = {a["type"]: a for a in ipv4["192.0.2.10/32"]["attrs"]}
        assert attrs[3]["nexthop"] == "192.0.2.254"  # NEXT_HOP
        assert attrs[4]["metric"] == 50  # MED
        assert attrs[5]["value"] == 200  # LOCAL_PREF
        assert attrs[8]["communities"] == [64512 << 16 | 100]  # COMMUNITIES
        assert attrs[32]["value"] == [{"ASN": 64512, "LocalData1": 1, "LocalData2": 1}]  # LARGE_COMMUNITY
        v6_attrs = {a["type"]: a for a in ipv6["2001:db8::10/128"]["attrs"]}
        assert v6_attrs[14]["nexthop"] == "2001:db8::fe"  # MP_REACH_NLRI
        assert v6_attrs[8]["communities"] == [64512 << 16 | 200]

        await driver.apply(RoutePlan(routes={"gobgp": {"192.0.2.10/32": v4}}), [peer])
        assert set(await eventually(lambda: _rib(gobgp, "ipv4", 1, exact=True), timeout=10)) == {
            "192.0.2.10/32"
        }


async def _rib(
    gobgp: GoBGP, family: str, count: int, exact: bool = False
) -> dict[str, dict[str, object]] | None:
    routes = await gobgp.routes(family)
    ok = len(routes) == count if exact else len(routes) >= count
    return routes if ok else None


async def test_concurrent_applies_are_serialised_and_the_later_plan_wins(lab: Lab) -> None:
    """Two applies at once are serialised; the later plan wins."""
    first = lab.apply({f"198.51.100.{i}/32": TAGGED for i in range(100)})
    second = lab.apply({"192.0.2.1/32": TAGGED})
    await asyncio.gather(first, second)
    await lab.table({"192.0.2.1/32"})
