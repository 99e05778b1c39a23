"""What routers see when the cluster does ordinary things, against BIRD and FRR, whole stack:

- a rollout (SIGTERM, the Node stays, graceful restart on): the router keeps every route (stale)
  while no speaker runs, and the next speaker's re-announcement and End-of-RIB refresh them and
  flush the one whose Service went meanwhile. The router's table is polled every 50 ms
  throughout: no wanted route is ever missing;
- a drain (the Node cordoned): the routes carry GRACEFUL_SHUTDOWN (65535:0), and a SIGTERM
  withdraws every one before the speaker is gone, graceful restart or not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lbipam.k8s.resources import NODES, SERVICES
from tests.bgplab import PORT
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.speaker_harness import (
    BOTH_ROUTERS,
    ROUTERS,
    Cluster,
    Router,
    bgp_advertisement,
    bgp_peer,
    endpoint_slice,
    restarting,
    router_lab,
    routes,
    running_speaker,
    table,
)

pytestmark = [pytest.mark.e2e, BOTH_ROUTERS]
NAMES = ("a", "b", "c", "gone")
GRACEFUL_SHUTDOWN = {"65535:0", "graceful-shutdown"}  # BIRD writes the number, FRR the name


async def setup(client: Cluster, router_address: str, source: str) -> dict[str, str]:
    """Node, pool, peer (graceful restart), advertisement and four Services; their IPs."""
    await client.node("node-a", ipv4="192.0.2.41")
    restart = {"enabled": True, "restartTime": 60}
    await client.apply(
        pool("v4", "198.51.100.0/28"),
        bgp_peer("tor", router_address, PORT, sourceAddress=source, gracefulRestart=restart),
        bgp_advertisement("all", communities=["64512:100"]),
        *(service(name) for name in NAMES),
        *(endpoint_slice(name, f"{name}-1", ("node-a", True)) for name in NAMES),
    )
    return {name: (await until(lambda n=name: client.ingress(n), timeout=20))[0] for name in NAMES}


@contextlib.asynccontextmanager
async def watching(bgp: Router, wanted: set[str]) -> AsyncIterator[list[str]]:
    """Poll the router's table every 50 ms while the block runs; the wanted routes found missing."""
    missing: list[str] = []

    async def poll() -> None:
        while True:
            missing.extend(sorted(wanted - set(await routes(bgp))))
            await asyncio.sleep(0.05)  # the polling interval the test promises, not a wait

    task = asyncio.create_task(poll())
    try:
        yield missing
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("kind", ROUTERS)
async def test_a_rollout_loses_no_route(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid)
    async with lab as (bgp, client, router_address, source):
        ips = await setup(client, router_address, source)
        every = {f"{ip}/32" for ip in ips.values()}
        kept = every - {f"{ips['gone']}/32"}
        async with running_speaker(kubeconfig, "node-a", tmp_path / "old"):
            await table(bgp, every)
        async with watching(bgp, kept) as missing:
            # The old speaker is gone: the router keeps its routes for the one to come.
            assert set(await routes(bgp)) == every
            assert await restarting(bgp)
            await client.delete(SERVICES, "gone", "default")  # while no speaker runs

            async with running_speaker(kubeconfig, "node-a", tmp_path / "new"):

                async def refreshed() -> bool:
                    return set(await routes(bgp)) == kept and not await restarting(bgp)

                await until(refreshed, timeout=30)
        assert missing == []


@pytest.mark.parametrize("kind", ROUTERS)
async def test_a_cordoned_node_announces_graceful_shutdown_then_withdraws_on_sigterm(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid)
    async with lab as (bgp, client, router_address, source):
        ips = await setup(client, router_address, source)
        every = {f"{ip}/32" for ip in ips.values()}
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as speaker:
            found = await table(bgp, every)
            assert not any(GRACEFUL_SHUTDOWN & set(r.communities) for r in found.values())
            await client.patch(NODES, "node-a", {"spec": {"unschedulable": True}})

            async def draining() -> bool:
                found = await routes(bgp)
                return set(found) == every and all(
                    GRACEFUL_SHUTDOWN & set(r.communities) for r in found.values()
                )

            await until(draining, timeout=20)
            assert all("64512:100" in r.communities for r in (await routes(bgp)).values())
            await speaker.stop()
            assert await routes(bgp) == {}  # withdrawn before the speaker returned, GR or not
