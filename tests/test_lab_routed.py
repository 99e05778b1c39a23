"""Traffic to LoadBalancer IPs through a real router, in network namespaces (tests/lab.py).

Behaviour only: which node answered, whether requests failed, whether the router holds a
route and why it dropped one. Every wait is a deadline.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from bgp.driver import Driver
from tests.helpers import eventually
from tests.lab import Lab, lab
from tests.labrouters import BirdRouter
from tests.netns import can_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not can_run(), reason="needs root and ip netns"),
    pytest.mark.timeout(240),
]


async def ready(the_lab: Lab, address: str, announcing: int) -> None:
    """Every node's session Established (and BFD Up, when on), and the router forwarding
    `address` over `announcing` nodes."""
    for node in the_lab.nodes:
        await eventually(lambda n=node: the_lab.router.established(n.name.replace("-", "")), timeout=60)
        if the_lab.router.bfd:
            await eventually(lambda n=node: the_lab.router.bfd_up(n.address), timeout=30)
    await eventually(lambda: _count(the_lab, address, announcing), timeout=30)


async def _count(the_lab: Lab, address: str, wanted: int) -> bool:
    return len(await the_lab.router.next_hops(f"{address}/32")) == wanted


async def test_bird_lab_ecmp_local_and_node_death_with_bfd(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with lab(kubeconfig, tmp_path, router="bird", bfd=True) as the_lab:
        web = await the_lab.service("web")
        await ready(the_lab, web, 3)

        # ECMP: new connections land on several nodes.
        answers = Counter(await the_lab.spread(web, 40))
        assert None not in answers, answers
        assert len(answers) >= 2, answers

        # externalTrafficPolicy Local: only the node with the endpoint announces and answers.
        local = await the_lab.service("local", local=True, endpoints=["node-2"])
        await eventually(lambda: _count(the_lab, local, 1), timeout=30)
        assert await the_lab.router.next_hops(f"{local}/32") == {the_lab.node("node-2").address}
        assert set(await the_lab.spread(local, 10)) == {"node-2"}

        # node-3 dies: BFD takes its routes away; requests stop failing once they are gone.
        node = the_lab.node("node-3")
        await the_lab.kill_node(node)
        await eventually(lambda: _lost(the_lab, web, node.address), timeout=10)
        assert "BFD" in await the_lab.router.last_error("node3")
        assert set(await the_lab.spread(web, 20)) <= {"node-1", "node-2"}  # None would be a failure


async def _lost(the_lab: Lab, address: str, dead: str) -> bool:
    hops = await the_lab.router.next_hops(f"{address}/32")
    return bool(hops) and dead not in hops


async def _during(the_lab: Lab, address: str, action: Coroutine[Any, Any, None]) -> int:
    """Failed requests while `action` runs (a rollout: until the new speaker is started)."""
    task = asyncio.ensure_future(action)
    failed = 0
    while not task.done():
        failed += (await the_lab.request(address)) is None
    await task
    return failed


async def _recovered(router: BirdRouter, name: str) -> bool:
    return not await router.recovering(name)


def _rollout_keeps_routes() -> bool:
    """Whether the speaker leaves its routes to graceful restart on SIGTERM (`Driver.stop(keep)`)
    rather than withdrawing them, which moves flows between nodes mid-connection."""
    return "keep" in inspect.signature(Driver.stop).parameters


@pytest.mark.skipif(
    not _rollout_keeps_routes(), reason="this speaker withdraws its routes on SIGTERM (no Driver.stop(keep))"
)
async def test_bird_lab_rollout_with_graceful_restart_fails_no_request(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with lab(kubeconfig, tmp_path, nodes=2, router="bird", bfd=False) as the_lab:
        web = await the_lab.service("web")
        await ready(the_lab, web, 2)
        router = the_lab.router
        assert isinstance(router, BirdRouter)
        for _ in range(2):
            assert await _during(the_lab, web, the_lab.rollout(the_lab.node("node-1"))) == 0
            await ready(the_lab, web, 2)
            # The next rollout only once the new speaker has sent End-of-RIB: a session that drops
            # again during graceful-restart recovery loses its stale routes at the router (BIRD),
            # as a DaemonSet's readiness gate would prevent.
            await eventually(lambda: _recovered(router, "node1"), timeout=30)


async def test_bird_lab_without_bfd_the_hold_timer_drops_a_dead_node(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with lab(kubeconfig, tmp_path, nodes=2, router="bird", bfd=False, hold_time=3) as the_lab:
        web = await the_lab.service("web")
        await ready(the_lab, web, 2)
        node = the_lab.node("node-2")
        await the_lab.kill_node(node)
        await eventually(lambda: _lost(the_lab, web, node.address), timeout=20)
        assert "Hold timer expired" in await the_lab.router.last_error("node2")
        assert set(await the_lab.spread(web, 10)) == {"node-1"}


async def test_frr_lab_ecmp_and_node_death_with_bfd(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with lab(kubeconfig, tmp_path, nodes=2, router="frr", bfd=True) as the_lab:
        web = await the_lab.service("web")
        await ready(the_lab, web, 2)
        answers = Counter(await the_lab.spread(web, 30))
        assert set(answers) == {"node-1", "node-2"}, answers

        # node-2 dies: BFD takes its routes away.
        node = the_lab.node("node-2")
        await the_lab.kill_node(node)
        await eventually(lambda: _lost(the_lab, web, node.address), timeout=10)
        assert "BFD" in await the_lab.router.last_error("node2")
        assert set(await the_lab.spread(web, 10)) == {"node-1"}
