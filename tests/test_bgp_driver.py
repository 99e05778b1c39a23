"""The driver against a real ExaBGP and a real BIRD on loopback: routes and their attributes reach
the router, changes and removals follow, the router's restart and ExaBGP's death lose nothing, and
stop() leaves the router's table empty before it returns."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bgp.views import RouteAttributes
from tests.bgplab import PLAIN, TAGGED, Lab, have, lab_for
from tests.daemon import eventually_ok
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]


@pytest.fixture
async def lab(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    async with lab_for(tmp_path, request.node.nodeid) as lab:
        yield lab


async def test_routes_reach_bird_with_communities_med_and_local_pref(lab: Lab) -> None:
    v6 = RouteAttributes("2001:db8::1", ("64512:200",), ("64512:2:2",), local_pref=300, med=7)
    await lab.apply({"192.0.2.10/32": TAGGED, "198.51.100.0/24": PLAIN, "2001:db8::10/128": v6})
    routes = await lab.table({"192.0.2.10/32", "198.51.100.0/24", "2001:db8::10/128"})

    tagged = routes["192.0.2.10/32"]
    assert tagged.communities == ("64512:100", "65535:65281")  # no-export, as BIRD spells it
    assert tagged.large_communities == ("64512:1:1",)
    assert (tagged.local_pref, tagged.med) == (200, 50)
    assert tagged.next_hop == lab.peer.source
    assert routes["198.51.100.0/24"].communities == ()
    assert routes["198.51.100.0/24"].med is None
    ipv6 = routes["2001:db8::10/128"]
    assert (ipv6.next_hop, ipv6.communities, ipv6.large_communities) == (
        "2001:db8::1",
        ("64512:200",),
        ("64512:2:2",),
    )
    assert (ipv6.local_pref, ipv6.med) == (300, 7)

    info = lab.driver.sessions()["tor"]
    assert (info.address, info.state, info.advertised, info.last_error) == (
        lab.bird.address,
        "Established",
        3,
        "",
    )


async def test_changes_and_removals_follow_the_plan(lab: Lab) -> None:
    many = {f"192.0.2.{i}/32": PLAIN for i in range(1, 41)}  # bulk: 40 routes share attributes
    await lab.apply({**many, "198.51.100.1/32": TAGGED})
    await lab.table({*many, "198.51.100.1/32"})

    fewer = dict.fromkeys(list(many)[:10], PLAIN)
    retagged = RouteAttributes("self", ("64512:999",), med=1)
    await lab.apply({**fewer, "198.51.100.1/32": retagged})

    async def retagged_and_fewer() -> None:
        # The withdraws and the new attributes are separate UPDATEs: the prefixes can match
        # before the new attributes have arrived.
        routes = await lab.table({*fewer, "198.51.100.1/32"})
        assert routes["198.51.100.1/32"].communities == ("64512:999",)
        assert routes["198.51.100.1/32"].med == 1

    await eventually_ok(retagged_and_fewer, timeout=15)
    assert lab.driver.sessions()["tor"].advertised == 11

    await lab.apply({})
    await lab.table(set())
    assert lab.driver.sessions()["tor"].advertised == 0


async def test_bird_restart_gets_every_route_back(lab: Lab) -> None:
    routes = {f"203.0.113.{i}/32": TAGGED for i in range(20)}
    await lab.apply(routes)
    before = await lab.table(set(routes))
    await lab.bird.restart()

    async def relearnt() -> bool:  # a new BIRD knows only what it was sent since it started
        after = await lab.bird.routes()
        return set(after) == set(routes) and all(after[p].imported > before[p].imported for p in routes)

    await eventually(relearnt, timeout=15)
    await lab.established()


async def test_stop_empties_the_routers_table_before_it_returns(lab: Lab) -> None:
    routes = {f"203.0.113.{i}/32": TAGGED for i in range(50)} | {
        "2001:db8::5/128": RouteAttributes("2001:db8::1")
    }
    await lab.apply(routes)
    await lab.table(set(routes))
    await lab.driver.stop()
    assert await lab.bird.routes() == {}  # no waiting: stop() returned after the withdraws went out
    assert lab.driver.exabgp.pid is None


async def test_exabgp_killed_with_graceful_restart_loses_no_route(lab: Lab) -> None:
    """SIGKILL ExaBGP: BIRD keeps the routes as stale while the new ExaBGP comes up; the driver
    re-sends them and then End-of-RIB, which flushes the one route not re-sent."""
    keep = {f"198.51.100.{i}/32": TAGGED for i in range(30)}
    await lab.apply({**keep, "192.0.2.99/32": PLAIN})
    await lab.table({*keep, "192.0.2.99/32"})
    await lab.established()
    old = lab.driver.exabgp.pid
    assert old is not None

    # The plan changes while ExaBGP is down: 192.0.2.99 is no longer wanted. Nothing can be sent,
    # so only End-of-RIB after the restart can remove it from BIRD.
    os.kill(old, signal.SIGKILL)
    await lab.apply(keep)
    seen_missing: list[str] = []

    async def resynced() -> bool:
        routes = await lab.bird.routes()
        seen_missing.extend(sorted(set(keep) - set(routes)))
        return set(routes) == set(keep) and lab.driver.exabgp.pid not in (None, old)

    await eventually(resynced, timeout=30, interval=0.01)
    assert seen_missing == []  # polled throughout: BIRD never lost a wanted route
    await lab.established()
    assert lab.driver.sessions()["tor"].advertised == len(keep)
