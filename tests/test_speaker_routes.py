"""The speaker end to end: a Service's IPs, given by the real controller, reach a real BIRD through
the speaker and its ExaBGP with the advertisement's attributes; BGPNodeState says how the session
is; deleting the Service withdraws its routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbipam.k8s.resources import ENDPOINTSLICES, NODES, SERVICES
from lbipam.k8s.times import now, parse_time
from tests.bgplab import PORT, have
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.podcidr_harness import pcpool
from tests.speaker_harness import (
    Cluster,
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

NODE_V4, NODE_V6 = "192.0.2.21", "2001:db8::21"


async def ingress(client: Cluster, name: str, count: int) -> list[str]:
    async def assigned() -> list[str] | None:
        ips = await client.ingress(name)
        return ips if len(ips) == count else None

    return await until(assigned, timeout=20)


async def test_service_ips_reach_bird_with_attributes_and_leave_with_the_service(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4=NODE_V4, ipv6=NODE_V6)
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            pool("v6", "2001:db8:1::/120"),
            bgp_peer("tor", router, PORT, sourceAddress=source, holdTime=30),
            bgp_advertisement(
                "tagged",
                communities=["64512:100", "no-export"],
                largeCommunities=["64512:1:1"],
                localPreference=200,
                med=50,
            ),
            bgp_advertisement("more", communities=["64512:7"], localPreference=100, med=80),
            service("web", policy="RequireDualStack", families=("IPv4", "IPv6")),
            endpoint_slice("web", "web-1", ("node-b", True)),  # Cluster policy: ready anywhere will do
        )
        v4, v6 = sorted(await ingress(client, "web", 2), key=lambda ip: ":" in ip)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as speaker:
            routes = await table(bgp, {f"{v4}/32", f"{v6}/128"})
            for prefix, next_hop in ((f"{v4}/32", source), (f"{v6}/128", NODE_V6)):
                route = routes[prefix]
                # United over both advertisements; no-export as BIRD spells it; iBGP: local pref.
                assert route.communities == ("64512:7", "64512:100", "65535:65281"), prefix
                assert route.large_communities == ("64512:1:1",), prefix
                assert (route.local_pref, route.med) == (200, 50), prefix  # highest pref, lowest MED
                assert route.next_hop == next_hop, prefix

            async def established() -> dict[str, object] | None:
                peer = (await client.node_state("node-a")).get("tor")
                return peer if peer and peer["state"] == "Established" and peer["advertised"] == 2 else None

            state = await until(established, timeout=20)
            assert (state["peerAddress"], state["lastError"]) == (router, "")
            since = parse_time(str(state["since"]))
            assert 0 <= (now() - since).total_seconds() < 120

            await client.delete(ENDPOINTSLICES, "web-1", "default")  # no endpoint anywhere now
            await table(bgp, set())
            speaker.alive()
            await client.apply(endpoint_slice("web", "web-2", ("node-c", True)))
            await table(bgp, {f"{v4}/32", f"{v6}/128"})

            await client.delete(SERVICES, "web", "default")
            await table(bgp, set())

            async def withdrawn() -> bool:
                peer = (await client.node_state("node-a")).get("tor") or {}
                return peer.get("state") == "Established" and peer.get("advertised") == 0

            await until(withdrawn, timeout=20)


async def test_pod_cidrs_and_node_exclusion_and_deletion(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4=NODE_V4, pod_cidrs=["10.244.1.0/24"])
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source),
            bgp_advertisement("services"),
            bgp_advertisement("pods", podCIDRs=True, poolSelector={"matchLabels": {"none": "x"}}, med=10),
            pcpool("pods", (["10.244.0.0/16"], 24)),  # PodCIDRs are announced only inside one
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as speaker:
            routes = await table(bgp, {f"{ip}/32", "10.244.1.0/24"})
            assert routes["10.244.1.0/24"].med == 10
            assert routes[f"{ip}/32"].med is None  # "pods" selects no pool: not on the Service

            excluded = {"node.kubernetes.io/exclude-from-external-load-balancers": ""}
            await client.patch(NODES, "node-a", {"metadata": {"labels": excluded}})
            await table(bgp, set())
            await client.patch(NODES, "node-a", {"metadata": {"labels": dict.fromkeys(excluded)}})
            await table(bgp, {f"{ip}/32", "10.244.1.0/24"})

            await client.delete(NODES, "node-a")
            await table(bgp, set())
            speaker.alive()
