"""The driver stays calm when routers misbehave, and holds a session down on request:

- a router that refuses our UPDATE (FRR refusing a 127.x next hop, BIRD over its receive limit)
  answers with a NOTIFICATION each time the session comes up: the driver reconnects with a
  growing delay, not at once, and says what the router said (code/subcode, its name, the data);
- `hold_down(peer, reason)` takes one session down at once and keeps it down (also across
  `apply`), `release(peer)` lets it up again and the routes come back (for BFD).

The windows below count what happens in them; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bgp.driver import Driver
from bgp.views import RoutePlan
from tests.bgplab import PLAIN, Bird, Neighbor, have, loopback_pair, make_peer
from tests.frrlab import Frr, FrrNeighbor, have_frr
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e]
ROUTES = {"198.51.100.1/32": PLAIN, "198.51.100.2/32": PLAIN}
WINDOW = 12.0  # seconds watched: without back-off, hundreds of reconnects; with it, a handful


async def count_over(window: float, sample: Callable[[], Awaitable[int]]) -> int:
    """How much `sample()` grew over `window` seconds of watching (polled, not slept on)."""
    loop = asyncio.get_running_loop()
    first = await sample()
    deadline = loop.time() + window
    last = first
    while loop.time() < deadline:
        await asyncio.sleep(0.25)  # the polling interval of the window, not a synchronisation
        last = await sample()
    return last - first


@pytest.mark.skipif(not have_frr(), reason="needs FRR 8")
async def test_a_router_refusing_the_next_hop_is_redialled_with_back_off(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    frr = Frr(tmp_path / "frr", router, [FrrNeighbor(speaker)], allow_martian=False)
    async with frr, Driver(tmp_path / "sp") as driver:
        await driver.apply(RoutePlan(routes={"tor": ROUTES}), [make_peer(frr, speaker)])

        async def connections() -> int:
            return int((await frr.neighbor(speaker)).get("connectionsEstablished", 0))

        await eventually(lambda: driver.sessions()["tor"].refusal, timeout=20)
        assert await count_over(WINDOW, connections) <= 8  # 0, 1, 2, 4, 8 s... apart; else ~300
        info = driver.sessions()["tor"]
        assert info.refusal == (
            "NOTIFICATION 3/8 (UPDATE Message Error / Invalid NEXT_HOP Attribute), data 0x400304"
            + "".join(f"{int(b):02X}" for b in speaker.split("."))
        )
        assert f"the router refused the session: {info.refusal}" in info.last_error


@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_a_router_over_its_receive_limit_is_redialled_with_back_off(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """BIRD with `receive limit 1 action restart` answers the second route with a Cease
    NOTIFICATION (6/1, Maximum Number of Prefixes Reached) and restarts the session."""
    router, speaker = loopback_pair(request.node.nodeid)
    bird = Bird(tmp_path / "bird", router, [Neighbor(speaker, limit=1)])
    async with bird, Driver(tmp_path / "sp") as driver:
        await driver.apply(RoutePlan(routes={"tor": ROUTES}), [make_peer(bird, speaker)])

        await eventually(lambda: driver.sessions()["tor"].refusal, timeout=20)
        assert await count_over(WINDOW, bird.limit_hits) <= 8
        assert driver.sessions()["tor"].refusal.startswith(
            "NOTIFICATION 6/1 (Cease / Maximum Number of Prefixes Reached)"
        )


@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_hold_down_takes_the_session_down_until_released(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    async with (
        Bird(tmp_path / "bird", router, [Neighbor(speaker)]) as bird,
        Driver(tmp_path / "sp") as driver,
    ):
        peer = make_peer(bird, speaker)
        plan = RoutePlan(routes={"tor": ROUTES})
        await driver.apply(plan, [peer])
        await eventually(lambda: _imported(bird, set(ROUTES)), timeout=20)

        await driver.hold_down("tor", "BFD Down")
        info = driver.sessions()["tor"]
        assert (info.state, info.advertised) == ("Idle", 0)
        assert "held down: BFD Down" in info.last_error
        await eventually(lambda: _bird_state(bird, not_="Established"), timeout=10)

        await driver.apply(plan, [peer])  # a new plan does not bring it back
        assert driver.sessions()["tor"].state == "Idle"
        assert await bird.state() != "Established"

        await driver.release("tor")
        await eventually(lambda: driver.sessions()["tor"].state == "Established", timeout=20)
        await eventually(lambda: _imported(bird, set(ROUTES), fresh=True), timeout=20)
        assert "held down" not in driver.sessions()["tor"].last_error


@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_a_peer_held_before_it_is_opened_stays_down(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, speaker = loopback_pair(request.node.nodeid)
    async with (
        Bird(tmp_path / "bird", router, [Neighbor(speaker)]) as bird,
        Driver(tmp_path / "sp") as driver,
    ):
        await driver.hold_down("tor", "BFD Down")
        await driver.apply(RoutePlan(routes={"tor": ROUTES}), [make_peer(bird, speaker)])
        assert driver.sessions()["tor"].state == "Idle"
        await driver.release("tor")
        await eventually(lambda: _imported(bird, set(ROUTES)), timeout=20)


async def _imported(bird: Bird, expected: set[str], fresh: bool = False) -> bool:
    routes = await bird.routes()
    return set(routes) == expected and not (fresh and any(r.stale for r in routes.values()))


async def _bird_state(bird: Bird, not_: str) -> bool:
    return await bird.state() != not_
