"""`Driver.hold_down(peer, reason)` takes one session down at once and keeps it down, also across
`apply` and for a peer not opened yet; `release(peer)` lets it up again and the routes come back.
(BFD wires its Down and Up to these.) Against a real BIRD.

How the driver stays calm with routers that refuse its UPDATEs (the back-off) is shown whole
stack in tests/test_speaker_calm.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp.views import RoutePlan
from tests.bgplab import PLAIN, Bird, have, lab_for
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e]
ROUTES = {"198.51.100.1/32": PLAIN, "198.51.100.2/32": PLAIN}


@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_hold_down_takes_the_session_down_until_released(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with lab_for(tmp_path, request.node.nodeid) as lab:
        bird, driver, peer = lab.bird, lab.driver, lab.peer
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
    async with lab_for(tmp_path, request.node.nodeid) as lab:
        await lab.driver.hold_down("tor", "BFD Down")
        await lab.apply(ROUTES)
        assert lab.driver.sessions()["tor"].state == "Idle"
        await lab.driver.release("tor")
        await eventually(lambda: _imported(lab.bird, set(ROUTES)), timeout=20)


async def _imported(bird: Bird, expected: set[str], fresh: bool = False) -> bool:
    routes = await bird.routes()
    return set(routes) == expected and not (fresh and any(r.stale for r in routes.values()))


async def _bird_state(bird: Bird, not_: str) -> bool:
    return await bird.state() != not_
