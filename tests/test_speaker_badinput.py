"""Bad input reaches nothing in BIRD and is reported where people look: a Warning Event on the
object at fault (once per problem per speaker) and the peer's lastError in BGPNodeState. The good
objects next to the bad ones keep working."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbipam.k8s.resources import BGPADVERTISEMENTS
from tests.bgplab import PORT, have
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.podcidr_harness import pcpool
from tests.speaker_harness import (
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    endpoint_slice,
    running_speaker,
    table,
    world,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]


async def test_bad_advertisement_and_bad_peer_reach_nothing_and_are_reported(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (good_source, bad_source) = addresses(request.node.nodeid, speakers=2)
    async with bird(tmp_path / "bird", router, good_source, bad_source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.21")
        missing = {"namespace": "default", "name": "nowhere"}
        await client.apply(
            pool("fine", "198.51.100.0/28", labels={"bgp": "fine"}),
            pool("small", "203.0.113.0/28", labels={"bgp": "small"}),
            bgp_peer("tor", router, PORT, sourceAddress=good_source),
            bgp_peer("ghost", router, PORT, sourceAddress=bad_source, passwordSecretRef=missing),
            bgp_advertisement("fine", poolSelector={"matchLabels": {"bgp": "fine"}}, peers=["tor", "ghost"]),
            # A /24 around an IP of a /28 pool would announce addresses that are not the pool's.
            bgp_advertisement("wide", poolSelector={"matchLabels": {"bgp": "small"}}, aggregationLength=24),
            service("good", annotations={"lbipam.io/pool": "fine"}),
            service("bad", annotations={"lbipam.io/pool": "small"}),
            endpoint_slice("good", "good-1", ("node-a", True)),
            endpoint_slice("bad", "bad-1", ("node-a", True)),
        )
        (good,) = await until(lambda: client.ingress("good"), timeout=20)
        (bad,) = await until(lambda: client.ingress("bad"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as speaker:
            # The good route goes out (so the round with the bad objects was applied) ...
            await table(bgp, {f"{good}/32"}, protocol="speaker")
            # ... and nothing of the bad ones: no /24, no /32 of `bad`, no session for `ghost`.
            assert set(await bgp.routes()) == {f"{good}/32"}
            assert await bgp.routes("speaker2") == {}
            assert await bgp.state("speaker2") != "Established"
            assert "ghost" not in speaker.speaker.driver.sessions()

            wide = await until(lambda: client.speaker_events("wide"), timeout=20)
            assert [reason for reason, _ in wide] == ["RouteRefused"]
            assert "aggregationLength 24" in wide[0][1]
            assert bad in wide[0][1]
            ghost = await until(lambda: client.speaker_events("ghost"), timeout=20)
            assert ghost == [("SecretNotFound", "spec.passwordSecretRef: Secret default/nowhere not found")]

            async def reported() -> dict[str, dict[str, object]] | None:
                peers = await client.node_state("node-a")
                tor, lost = peers.get("tor") or {}, peers.get("ghost") or {}
                if tor.get("state") != "Established" or tor.get("advertised") != 1 or not lost:
                    return None
                return peers

            peers = await until(reported, timeout=20)
            assert peers["tor"]["advertised"] == 1
            assert "BGPAdvertisement wide: aggregationLength 24" in str(peers["tor"]["lastError"])
            assert (peers["ghost"]["state"], peers["ghost"]["advertised"]) == ("Idle", 0)
            assert "BGPPeer ghost: spec.passwordSecretRef: Secret default/nowhere not found" in str(
                peers["ghost"]["lastError"]
            )

            # Fixed: the refusal goes, the route comes, and lastError clears.
            await client.patch(BGPADVERTISEMENTS, "wide", {"spec": {"aggregationLength": 32}})
            await table(bgp, {f"{good}/32", f"{bad}/32"}, protocol="speaker")

            async def cleared() -> bool:
                tor = (await client.node_state("node-a")).get("tor") or {}
                return tor.get("lastError") == "" and tor.get("advertised") == 2

            await until(cleared, timeout=20)
            assert [reason for reason, _ in await client.speaker_events("wide")] == ["RouteRefused"]


async def test_a_pod_cidr_outside_every_pod_cidr_pool_is_never_announced(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """spec.podCIDR 0.0.0.0/1, set by hand, is in no PodCIDRPool: refused (podCIDRNotInPool),
    one Warning Event on the Node, and BIRD gets the Service route only."""
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.21", pod_cidrs=["0.0.0.0/1"])
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            pcpool("pods", (["10.244.0.0/16"], 24)),
            bgp_peer("tor", router, PORT, sourceAddress=source),
            bgp_advertisement("all", podCIDRs=True),
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker"):
            await table(bgp, {f"{ip}/32"})
            events = await until(lambda: client.speaker_events("node-a"), timeout=20)
            assert events == [
                ("PodCIDRNotInPool", "spec.podCIDRs: 0.0.0.0/1 is in no PodCIDRPool; it is not announced")
            ]
            assert set(await bgp.routes()) == {f"{ip}/32"}
