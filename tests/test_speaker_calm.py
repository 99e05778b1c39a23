"""A router that refuses the speaker's UPDATEs (FRR: a 127.x next hop is martian, NOTIFICATION
3/8; BIRD: more routes than its receive limit, Cease 6/1), whole stack, over a 30 s window: the
speaker reconnects with back-off, writes BGPNodeState a few times (not dozens a second), never
moves `since` without `state`, and says what the router said in one Event and in `lastError`.

The window is watched, not waited on: what is asserted are bounds on counts.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import BGPNODESTATES
from tests.bgplab import PORT, Bird
from tests.controller_harness import until
from tests.frrlab import Frr
from tests.lbipam_harness import pool, service
from tests.speaker_harness import (
    BOTH_ROUTERS,
    ROUTERS,
    Router,
    bgp_advertisement,
    bgp_peer,
    endpoint_slice,
    router_lab,
    running_speaker,
)

pytestmark = [pytest.mark.e2e, BOTH_ROUTERS]
WINDOW = 30.0
SAID = {
    "frr": "NOTIFICATION 3/8 (UPDATE Message Error / Invalid NEXT_HOP Attribute), data 0x400304",
    "bird": "NOTIFICATION 6/1 (Cease / Maximum Number of Prefixes Reached)",
}


async def attempts(bgp: Router, speaker: str) -> int:
    """Sessions the router took and then refused."""
    if isinstance(bgp, Frr):
        return int((await bgp.neighbor(speaker)).get("connectionsEstablished", 0))
    assert isinstance(bgp, Bird)
    return await bgp.limit_hits()


@pytest.mark.parametrize("kind", ROUTERS)
async def test_a_refusing_router_gets_back_off_and_one_event(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid, refuse=True)
    async with lab as (bgp, client, router_address, source):
        await client.node("node-a", ipv4="192.0.2.41")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router_address, PORT, sourceAddress=source),
            bgp_advertisement("all"),
            *(service(name) for name in ("a", "b")),
            *(endpoint_slice(name, f"{name}-1", ("node-a", True)) for name in ("a", "b")),
        )
        for name in ("a", "b"):
            await until(lambda n=name: client.ingress(n), timeout=20)  # type: ignore[misc]

        writes: list[dict[str, Any]] = []  # the peer's entry at every write of BGPNodeState
        informer = Informer(client.kube, BGPNODESTATES)
        informer.add_handler(lambda _e, new, _o: writes.extend((new.get("status") or {}).get("peers") or []))
        watch = asyncio.create_task(informer.run())
        try:
            async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker", status_interval=3.0):
                await until(lambda: _said(client, SAID[kind]), timeout=30)
                first, written = await attempts(bgp, source), len(writes)
                await asyncio.sleep(WINDOW)  # the window watched: what happens in it is counted
                sessions, writes_in_window = await attempts(bgp, source) - first, len(writes) - written
        finally:
            watch.cancel()
        assert sessions <= 10, sessions  # without back-off: ~750 (FRR)
        assert writes_in_window <= WINDOW / 3 + 2, writes_in_window  # at most one per 3 s
        for before, after in itertools.pairwise(writes):
            if before["state"] == after["state"]:
                assert before.get("since") == after.get("since"), (before, after)
        events = [e for e in await client.speaker_events("tor") if e[0] == "NotificationReceived"]
        assert len(events) == 1, events
        assert SAID[kind] in events[0][1]


async def _said(client: Any, text: str) -> bool:
    entry = (await client.node_state("node-a")).get("tor") or {}
    return text in str(entry.get("lastError", ""))
