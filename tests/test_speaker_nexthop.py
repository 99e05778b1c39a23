"""Next hops over an IPv6 session, whole stack, against BIRD and FRR in a network namespace pair
the test creates (the speaker's ExaBGP in one namespace, the router in the other): an IPv4
route carries the node's own IPv4 address (its InternalIP), never the router ID (192.0.2.99
here, which ExaBGP would write for "next-hop self"); an IPv6 route the session's own address.
A node that loses its IPv4 InternalIP has no IPv4 next hop on that session: the IPv4 route is
withdrawn (reason noIPv4NextHop), never sent with the router ID."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lbipam.k8s.resources import NODES
from tests.bgplab import PORT
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.netns import ROUTER_V6, SPEAKER_V6, available, namespace_pair
from tests.speaker_harness import (
    BOTH_ROUTERS,
    ROUTERS,
    bgp_advertisement,
    bgp_peer,
    endpoint_slice,
    router,
    running_speaker,
    table,
    world,
)

pytestmark = [
    pytest.mark.e2e,
    BOTH_ROUTERS,
    pytest.mark.skipif(not available(), reason="network namespaces need root and iproute2"),
]
NODE_V4, ROUTER_ID = "192.0.2.41", "192.0.2.99"


@pytest.mark.parametrize("kind", ROUTERS)
async def test_ipv4_routes_over_an_ipv6_session_carry_the_nodes_ipv4_address(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    async with namespace_pair(f"nh{kind[0]}") as pair, world(kubeconfig) as client:
        bgp = router(kind, tmp_path / kind, ROUTER_V6, SPEAKER_V6, netns=pair.router, speaker_asn=64513)
        async with bgp:
            await client.node("node-a", ipv4=NODE_V4)
            await client.apply(
                pool("v4", "198.51.100.0/28"),
                pool("v6", "2001:db8:1::/120"),
                bgp_peer(
                    "tor",
                    ROUTER_V6,
                    PORT,
                    asn=65000,
                    local_asn=64513,
                    sourceAddress=SPEAKER_V6,
                    routerID=ROUTER_ID,
                ),
                bgp_advertisement("all"),
                service("web4", policy="SingleStack", families=("IPv4",)),
                service("web6", policy="SingleStack", families=("IPv6",)),
                endpoint_slice("web4", "web4-1", ("node-a", True)),
                endpoint_slice("web6", "web6-1", ("node-a", True)),
            )
            (v4,) = await until(lambda: client.ingress("web4"), timeout=20)
            (v6,) = await until(lambda: client.ingress("web6"), timeout=20)
            exabgp = [*pair.exec(pair.speaker), sys.executable, "-m", "exabgp"]
            async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker", exabgp=exabgp):
                found = await table(bgp, {f"{v4}/32", f"{v6}/128"}, timeout=30)
                assert found[f"{v4}/32"].next_hop == NODE_V4
                assert found[f"{v6}/128"].next_hop == SPEAKER_V6

                # No IPv4 address on the node: no IPv4 next hop on this IPv6 session.
                addresses = [{"type": "Hostname", "address": "node-a"}]
                await client.kube.patch(
                    NODES, "node-a", {"status": {"addresses": addresses}}, subresource="status"
                )
                await table(bgp, {f"{v6}/128"}, timeout=30)
