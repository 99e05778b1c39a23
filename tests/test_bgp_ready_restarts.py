"""Two BGPPeers with one peerAddress: the older (creationTimestamp, then name) keeps it in every
process and across restarts, each done with SIGKILL (nothing drained, memory gone).

- the controller (`lbipam controller`, a real process): killed and started again, it writes the
  same keeper, the same conditions (lastTransitionTime kept) and no Event again; a peer created
  while no controller runs loses to the same keeper;
- the speaker (`lbipam speaker`, a real process, its own ExaBGP, BIRD as the router): only the
  keeper's session is opened (the routes carry the community of the advertisement aimed at the
  keeper alone), and a speaker killed and started again opens the same one. The keeper is the
  older peer although its name sorts last, so neither the name nor a condition decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.resources import BGPADVERTISEMENTS, BGPPEERS
from tests.bgp_ready_harness import next_second, reaches, ready, warnings
from tests.bgplab import PORT, Bird, have
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.process_harness import SpeakerProcess, controller_process
from tests.speaker_harness import (
    Cluster,
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    cluster,
    endpoint_slice,
    world,
)

Obj = dict[str, Any]
ROUTER = "192.0.2.1"


async def test_the_controller_names_the_same_keeper_after_a_kill(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with cluster(kubeconfig) as client:
        await client.node("n1", ipv4="192.0.2.11")
        await client.apply(bgp_peer("z-old", ROUTER, 179))
        await next_second()
        await client.apply(bgp_peer("a-new", ROUTER, 179), bgp_advertisement("to-nobody", peers=["nobody"]))
        async with controller_process(kubeconfig, tmp_path / "first.log") as first:
            lost = await reaches(client, BGPPEERS, "a-new", "False", "AddressInUse", "older BGPPeer z-old")
            kept = await reaches(client, BGPPEERS, "z-old", "True", "Valid")
            orphan = await reaches(client, BGPADVERTISEMENTS, "to-nobody", "False", "PeerNotFound")
            said = {name: await until(lambda n=name: warnings(client, n)) for name in ("a-new", "to-nobody")}  # type: ignore[misc]
            await first.kill()
        await next_second()
        await client.apply(bgp_peer("m-newest", ROUTER, 179))  # while no controller runs
        async with controller_process(kubeconfig, tmp_path / "second.log"):
            # Ready (its /readyz) once a full round is written: what it thinks is there now.
            assert await ready(client, BGPPEERS, "a-new") == lost
            assert await ready(client, BGPPEERS, "z-old") == kept
            assert await ready(client, BGPADVERTISEMENTS, "to-nobody") == orphan
            newest = await reaches(client, BGPPEERS, "m-newest", "False", "AddressInUse")
            assert "older BGPPeer z-old on node n1" in newest["message"], newest
            for name, before in said.items():
                assert await warnings(client, name) == before  # no Event again for the same problem


# ---- the speaker -------------------------------------------------------------------------------
async def sessions(client: Cluster) -> dict[str, Obj]:
    return await client.node_state("node-a")


async def only_the_keeper_is_open(client: Cluster, bgp: Bird, prefixes: set[str], since: str = "") -> str:
    """Wait until the router holds `prefixes` over the keeper's session alone (its community only)
    and BGPNodeState shows the keeper Established (since something other than `since`) and the
    newer peer not opened, saying why; the keeper's `since`."""

    async def check() -> str | None:
        found = await bgp.routes()
        if set(found) != prefixes or any(r.communities != ("64512:1",) or r.stale for r in found.values()):
            return None
        state = await sessions(client)
        keeper, loser = state.get("z-old") or {}, state.get("a-new") or {}
        if keeper.get("state") != "Established" or keeper.get("since") in (None, since):
            return None
        if "kept by the older BGPPeer z-old" not in str(loser.get("lastError")):
            return None
        return str(keeper["since"])

    return await until(check, timeout=40)


@pytest.mark.e2e
@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_the_speaker_opens_only_the_keepers_session_and_the_same_after_a_kill(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.21")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("z-old", router, PORT, sourceAddress=source),
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        await next_second()
        await client.apply(
            bgp_peer("a-new", router, PORT, sourceAddress=source),
            bgp_advertisement("to-old", peers=["z-old"], communities=["64512:1"]),
            bgp_advertisement("to-new", peers=["a-new"], communities=["64512:2"]),
        )
        (ip,) = await until(lambda: client.ingress("web"))
        lost = await reaches(client, BGPPEERS, "a-new", "False", "AddressInUse", "older BGPPeer z-old")
        speaker = await SpeakerProcess.start(kubeconfig, "node-a", tmp_path / "run1", tmp_path / "s1.log")
        try:
            since = await only_the_keeper_is_open(client, bgp, {f"{ip}/32"})
            await speaker.kill()  # SIGKILL: its ExaBGP goes with it (PR_SET_PDEATHSIG)
            speaker = await SpeakerProcess.start(kubeconfig, "node-a", tmp_path / "run2", tmp_path / "s2.log")
            await only_the_keeper_is_open(client, bgp, {f"{ip}/32"}, since)
        finally:
            await speaker.kill()
        assert await client.ingress("web") == [ip]
        assert await ready(client, BGPPEERS, "a-new") == lost  # the controller never changed its mind
