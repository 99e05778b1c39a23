"""The whole stack (embedded API, the real controller, the speaker with its ExaBGP, a real BIRD)
through the events network teams fear: BIRD restarts and gets every route back; ExaBGP is killed
with graceful restart on and BIRD never loses a route, while a route dropped meanwhile is flushed
after End-of-RIB; a community that would smuggle a second command into ExaBGP is refused by the
API with the field named, and nothing of it reaches BIRD."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lbipam.k8s.errors import Invalid
from lbipam.k8s.resources import BGPADVERTISEMENTS, SERVICES
from tests.bgplab import PORT, GoBGP, have
from tests.controller_harness import until
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
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
NAMES = ("a", "b", "c", "gone")


async def test_bird_restart_and_exabgp_kill_lose_no_route(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.41")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source, gracefulRestart={"enabled": True}),
            bgp_advertisement("all", communities=["64512:100"]),
            *(service(name) for name in NAMES),
            *(endpoint_slice(name, f"{name}-1", ("node-a", True)) for name in NAMES),
        )
        ips = {name: (await until(lambda n=name: client.ingress(n), timeout=20))[0] for name in NAMES}
        every = {f"{ip}/32" for ip in ips.values()}
        kept = every - {f"{ips['gone']}/32"}
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as running:
            await table(bgp, every)

            await bgp.restart()  # the router comes back empty: every route must return
            await table(bgp, every, timeout=30)

            driver = running.speaker.driver
            old = driver.exabgp.pid  # type: ignore[attr-defined]
            assert old is not None
            os.kill(old, signal.SIGKILL)
            await client.delete(SERVICES, "gone", "default")  # while ExaBGP is down
            missing: list[str] = []

            async def resynced() -> bool:
                routes = set(await bgp.routes())
                missing.extend(sorted(kept - routes))
                return routes == kept and driver.exabgp.pid not in (None, old)  # type: ignore[attr-defined]

            await eventually(resynced, timeout=30, interval=0.01)
            assert missing == []  # polled throughout: BIRD never lost a wanted route
            running.alive()


async def test_a_community_that_would_inject_a_command_is_refused_and_reaches_nothing(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.42")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source),
            bgp_advertisement("fine", communities=["64512:100"]),
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker"):
            await table(bgp, {f"{ip}/32"})
            for community in ("64512:1\nannounce route 0.0.0.0/0 next-hop self", "announce route 0.0.0.0/0"):
                with pytest.raises(Invalid) as refused:
                    await client.create(BGPADVERTISEMENTS, bgp_advertisement("evil", communities=[community]))
                assert "spec.communities[0]" in str(refused.value)
            # Nothing else arrived: the route that was there, with its own attributes only.
            routes = await table(bgp, {f"{ip}/32"})
            assert routes[f"{ip}/32"].communities == ("64512:100",)
            assert "0.0.0.0/0" not in await bgp.birdc("show", "route", "all")


@pytest.mark.skipif(not have("gobgpd", "gobgp"), reason="needs GoBGP 3")
async def test_gobgp_receives_the_services_route_through_the_whole_stack(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """GoBGP drops routes whose next hop is a 127.x address (treat-as-withdraw), and an IPv4
    route's next hop is the speaker's own loopback source here; the IPv6 route's next hop is the
    node's IPv6 InternalIP, a documentation address GoBGP accepts: that one is checked."""
    router, (source,) = addresses(request.node.nodeid)
    async with GoBGP(tmp_path / "gobgp", router, source) as gobgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.43", ipv6="2001:db8::43")
        await client.apply(
            pool("v6", "2001:db8:1::/120"),
            bgp_peer("gobgp", router, gobgp.port, sourceAddress=source),
            bgp_advertisement("all", communities=["64512:100"], largeCommunities=["64512:1:1"], med=30),
            service("web", policy="SingleStack", families=("IPv6",)),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker"):

            async def received() -> dict[str, object] | None:
                return (await gobgp.routes("ipv6")).get(f"{ip}/128")

            path = await until(received, timeout=30)
            attrs = {a["type"]: a for a in path["attrs"]}  # type: ignore[attr-defined]
            assert attrs[14]["nexthop"] == "2001:db8::43"  # MP_REACH_NLRI: the node's IPv6 address
            assert attrs[4]["metric"] == 30  # MED
            assert attrs[8]["communities"] == [64512 << 16 | 100]
            assert attrs[32]["value"] == [{"ASN": 64512, "LocalData1": 1, "LocalData2": 1}]
            await client.delete(SERVICES, "web", "default")
            await until(lambda: _gone(gobgp, f"{ip}/128"), timeout=30)


async def _gone(gobgp: GoBGP, prefix: str) -> bool:
    return prefix not in await gobgp.routes("ipv6")
