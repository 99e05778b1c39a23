"""externalTrafficPolicy Local across two nodes: two speakers, each with its own ExaBGP and address,
peer with one BIRD; only the node with a ready endpoint announces, and the route follows the
endpoint when it moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp.views import RoutePlan
from lbipam.k8s.resources import ENDPOINTSLICES
from tests.bgplab import PORT, Bird, have
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


def on(node: str) -> dict[str, object]:
    return {"matchLabels": {"kubernetes.io/hostname": node}}


def reasons(plan: RoutePlan | None, ip: str) -> set[str]:
    """The planner's reasons about `ip` in a speaker's last plan."""
    return {d.reason for d in (plan.decisions if plan else ()) if d.prefix in (ip, f"{ip}/32")}


async def established(router: Bird, protocol: str) -> bool:
    return await router.state(protocol) == "Established"


async def test_only_the_node_with_a_ready_endpoint_announces_and_the_route_follows_it(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source_a, source_b) = addresses(request.node.nodeid, speakers=2)
    async with bird(tmp_path / "bird", router, source_a, source_b) as bgp, world(kubeconfig) as client:
        for name, address in (("node-a", "192.0.2.21"), ("node-b", "192.0.2.22")):
            await client.node(name, labels={"kubernetes.io/hostname": name}, ipv4=address)
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            # One session per node: each speaker dials from its own address.
            bgp_peer("tor-a", router, PORT, sourceAddress=source_a, nodeSelector=on("node-a")),
            bgp_peer("tor-b", router, PORT, sourceAddress=source_b, nodeSelector=on("node-b")),
            bgp_advertisement("all", communities=["64512:100"]),
            service("web", traffic_policy="Local"),
            endpoint_slice("web", "web-1", ("node-a", True), ("node-b", False)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        prefix = f"{ip}/32"
        async with (
            running_speaker(kubeconfig, "node-a", tmp_path / "a") as a,
            running_speaker(kubeconfig, "node-b", tmp_path / "b") as b,
        ):
            await table(bgp, {prefix}, protocol="speaker")  # node-a's session
            # node-b planned the Service and decided against it; its session is up and empty.
            await eventually(lambda: "noLocalEndpoints" in reasons(b.speaker.plan, ip), timeout=20)
            await until(lambda: established(bgp, "speaker2"), timeout=20)
            assert await bgp.routes("speaker2") == {}
            assert reasons(a.speaker.plan, ip) == {"announced"}

            # The endpoint moves: ready on node-b, not ready on node-a.
            moved = endpoint_slice("web", "web-1", ("node-a", False), ("node-b", True))
            await client.patch(ENDPOINTSLICES, "web-1", {"endpoints": moved["endpoints"]}, "default")
            await table(bgp, {prefix}, protocol="speaker2")
            await table(bgp, set(), protocol="speaker")
            assert reasons(a.speaker.plan, ip) == {"noLocalEndpoints"}
            a.alive()
            b.alive()
