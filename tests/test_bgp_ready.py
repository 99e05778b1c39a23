"""The Ready condition of BGPPeers and BGPAdvertisements, as the leading controller writes it:
the embedded API server (HTTPS, token) and the real controller (`ControllerApp`) in this process.

- a peer is Ready (observedGeneration), an invalid spec is InvalidSpec with one Warning Event
  naming the field, and Ready again once fixed; lastTransitionTime moves only with the status;
- the MD5 Secret (read by name): SecretNotFound, SecretKeyMissing, InvalidPassword, then Ready;
  no password in any condition or Event, only lengths;
- two peers toward one address: the older (creationTimestamp, then name) keeps it, the newer is
  AddressInUse naming it; the keeper deleted, the other takes over; per-node peers with disjoint
  nodeSelectors are no conflict until a Node label makes one node open both;
- a BGPAdvertisement naming a peer that does not exist is PeerNotFound until the peer exists;
- nothing is written when nothing changed; a standby writes nothing;
- `kubectl get bgppeers` / `bgpadvertisements` show READY first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbipam.controllers.app import ControllerApp, LeaderOptions
from lbipam.controllers.bgpstatus.controller import BGPStatusOptions
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.k8s.client import connect
from lbipam.k8s.resources import BGPADVERTISEMENTS, BGPPEERS, NAMESPACES, NODES, SECRETS
from tests.bgp_ready_harness import next_second, reaches, ready, warnings
from tests.controller_harness import Running, until
from tests.helpers import eventually
from tests.speaker_harness import Cluster, bgp_advertisement, bgp_peer, cluster, secret
from tests.test_printer_columns import kubectl_get

Obj = dict[str, Any]
NS = "lbipam-system"
PASSWORD = "correct-horse-battery"


@contextlib.asynccontextmanager
async def controller(kubeconfig: Path, leader: LeaderOptions | None = None) -> AsyncIterator[Running]:
    kube = await connect(str(kubeconfig))
    app = ControllerApp(
        kube,
        LBOptions(reuse_delay=0.5),
        leader or LeaderOptions(enabled=False),
        bgp=BGPStatusOptions(secret_refresh=0.2, debounce=0.02),
    )
    running = Running(app, kube, asyncio.create_task(app.run()))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(kubeconfig: Path, lbipam_crds: list[str]) -> AsyncIterator[Cluster]:
    async with cluster(kubeconfig) as c:
        yield c


async def test_a_peer_is_ready_an_invalid_spec_is_not_and_says_why(client: Cluster, kubeconfig: Path) -> None:
    async with controller(kubeconfig) as running:
        await client.apply(bgp_peer("tor", "192.0.2.1", 179))
        first = await reaches(client, BGPPEERS, "tor", "True", "Valid")
        assert first["observedGeneration"] == first["generation"] == 1
        await client.patch(BGPPEERS, "tor", {"spec": {"sourceAddress": "2001:db8::2"}})
        bad = await reaches(client, BGPPEERS, "tor", "False", "InvalidSpec")
        assert bad["observedGeneration"] == 2
        assert bad["message"].startswith("BGPPeer tor: spec.sourceAddress:"), bad
        got = await until(lambda: warnings(client, "tor"), timeout=20)
        assert got == [("InvalidSpec", bad["message"])]
        # Another invalid value: a new message, the same status: lastTransitionTime stays.
        await client.patch(BGPPEERS, "tor", {"spec": {"sourceAddress": "2001:db8::3"}})

        async def message_changed() -> Obj | None:
            got = await ready(client, BGPPEERS, "tor")
            return got if got is not None and "2001:db8::3" in got["message"] else None

        again = await until(message_changed, timeout=20)
        assert again["lastTransitionTime"] == bad["lastTransitionTime"]
        assert again["observedGeneration"] == 3
        await client.patch(BGPPEERS, "tor", {"spec": {"sourceAddress": None}})
        fixed = await reaches(client, BGPPEERS, "tor", "True", "Valid")
        assert fixed["observedGeneration"] == 4
        assert await warnings(client, "tor") == [("InvalidSpec", bad["message"])]  # one Event, not three
        # Nothing changed: nothing is written (a label is no spec change).
        await eventually(running.app.bgp.quiet, timeout=20)
        done = running.app.bgp.work_done()
        await client.patch(BGPPEERS, "tor", {"metadata": {"labels": {"team": "net"}}})
        await eventually(
            lambda: (running.app.bgp.peers.get(None, "tor") or {})["metadata"]["labels"], timeout=20
        )
        await eventually(running.app.bgp.quiet, timeout=20)
        assert running.app.bgp.work_done() == done


async def test_the_md5_secret_is_read_by_name_and_never_shown(client: Cluster, kubeconfig: Path) -> None:
    ref = {"namespace": NS, "name": "tor-bgp", "key": "md5"}
    await client.kube.create(NAMESPACES, {"metadata": {"name": NS}})
    async with controller(kubeconfig):
        await client.apply(bgp_peer("tor", "192.0.2.1", 179, passwordSecretRef=ref))
        missing = await reaches(client, BGPPEERS, "tor", "False", "SecretNotFound")
        assert f"Secret {NS}/tor-bgp not found" in missing["message"], missing
        await client.create(SECRETS, secret("tor-bgp", NS, password=PASSWORD))
        no_key = await reaches(client, BGPPEERS, "tor", "False", "SecretKeyMissing")
        assert "spec.passwordSecretRef.key" in no_key["message"], no_key
        await client.delete(SECRETS, "tor-bgp", NS)
        await client.create(SECRETS, secret("tor-bgp", NS, md5=PASSWORD * 4))
        long = await reaches(client, BGPPEERS, "tor", "False", "InvalidPassword")
        assert f"is {len(PASSWORD) * 4}" in long["message"], long
        await client.delete(SECRETS, "tor-bgp", NS)
        await client.create(SECRETS, secret("tor-bgp", NS, md5=PASSWORD))
        await reaches(client, BGPPEERS, "tor", "True", "Valid")
        said = await warnings(client, "tor")
        assert [r for r, _ in said] == ["InvalidPassword", "SecretKeyMissing", "SecretNotFound"]
        shown = str(await client.kube.get(BGPPEERS, "tor")) + str(said)
        assert PASSWORD not in shown


async def test_of_two_peers_toward_one_address_the_older_keeps_it(client: Cluster, kubeconfig: Path) -> None:
    await client.node("n1", ipv4="192.0.2.11")
    async with controller(kubeconfig):
        await client.apply(bgp_peer("z-old", "192.0.2.1", 179))
        await reaches(client, BGPPEERS, "z-old", "True", "Valid")
        await next_second()
        await client.apply(bgp_peer("a-new", "192.0.2.1", 179))
        lost = await reaches(client, BGPPEERS, "a-new", "False", "AddressInUse")
        assert lost["message"] == (
            "BGPPeer a-new: spec.peerAddress: 192.0.2.1 is kept by the older BGPPeer z-old on node n1, "
            "where this session is not opened"
        )
        assert await warnings(client, "a-new") == [("AddressInUse", lost["message"])]
        assert (await ready(client, BGPPEERS, "z-old") or {}).get("status") == "True"
        await client.delete(BGPPEERS, "z-old")
        await reaches(client, BGPPEERS, "a-new", "True", "Valid")


async def test_per_node_peers_toward_one_router_are_no_conflict(client: Cluster, kubeconfig: Path) -> None:
    """One BGPPeer per node toward one router (as MetalLB users write them), until a label
    change makes one node open both: then the older keeps it."""
    await client.node("n1", labels={"rack": "r1"}, ipv4="192.0.2.11")
    await client.node("n2", labels={"rack": "r2"}, ipv4="192.0.2.12")
    r1, r2 = ({"matchLabels": {"rack": r}} for r in ("r1", "r2"))
    async with controller(kubeconfig) as running:
        await client.apply(bgp_peer("tor-n1", "192.0.2.1", 179, nodeSelector=r1))
        await client.apply(bgp_peer("tor-n2", "192.0.2.1", 179, nodeSelector=r2))
        for name in ("tor-n1", "tor-n2"):
            await reaches(client, BGPPEERS, name, "True", "Valid")
        await client.patch(
            BGPPEERS,
            "tor-n2",
            {
                "spec": {
                    "nodeSelector": {
                        "matchLabels": None,
                        "matchExpressions": [{"key": "rack", "operator": "In", "values": ["r2", "r3"]}],
                    }
                }
            },
        )
        await reaches(client, BGPPEERS, "tor-n2", "True", "Valid")
        await client.patch(
            NODES,
            "n1",
            {"metadata": {"labels": {"rack": "r3"}}},
        )
        # n1 is r3 now: tor-n1 selects nothing, tor-n2 selects both nodes; still no conflict.
        await reaches(client, BGPPEERS, "tor-n2", "True", "Valid")
        await client.patch(BGPPEERS, "tor-n1", {"spec": {"nodeSelector": None}})
        # The Node's new label may reach the controller after the peer's change: the message
        # then names n2 first, and both once it has.
        await reaches(
            client, BGPPEERS, "tor-n2", "False", "AddressInUse", "older BGPPeer tor-n1 on nodes n1, n2,"
        )
        assert (await ready(client, BGPPEERS, "tor-n1") or {}).get("status") == "True"
        # Its Node cache keeps what the contest reads, not whole Nodes.
        cached = {n["metadata"]["name"]: n for n in running.app.bgp.nodes.list()}
        assert set(cached["n1"]) == {"metadata"}
        assert set(cached["n1"]["metadata"]) <= {
            "name",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "labels",
        }
        assert cached["n1"]["metadata"]["labels"] == {"rack": "r3"}


async def test_an_advertisement_naming_no_peer_is_peer_not_found(client: Cluster, kubeconfig: Path) -> None:
    async with controller(kubeconfig):
        await client.apply(bgp_advertisement("all"), bgp_advertisement("to-tor", peers=["tor"]))
        await reaches(client, BGPADVERTISEMENTS, "all", "True", "Valid")
        lost = await reaches(client, BGPADVERTISEMENTS, "to-tor", "False", "PeerNotFound")
        assert lost["message"] == "BGPAdvertisement to-tor: spec.peers[0]: no BGPPeer is named 'tor'"
        assert await until(lambda: warnings(client, "to-tor"), timeout=20) == [
            ("PeerNotFound", lost["message"])
        ]
        await client.apply(bgp_peer("tor", "192.0.2.1", 179))
        await reaches(client, BGPADVERTISEMENTS, "to-tor", "True", "Valid")


def long_lease(identity: str) -> LeaderOptions:
    """Leader election as `identity`, with a lease long enough (30 s) that the leader keeps it
    for the whole test."""
    return LeaderOptions(
        identity=identity,
        lease_namespace="default",
        lease_duration=30.0,
        renew_deadline=20.0,
        retry_period=0.2,
    )


async def test_a_standby_writes_no_condition(client: Cluster, kubeconfig: Path) -> None:
    """Only the leader writes: a replica waiting for the Lease leaves the condition alone."""
    async with controller(kubeconfig, long_lease("holder")) as first:
        await eventually(lambda: first.app.leading, timeout=20)
        async with controller(kubeconfig, long_lease("standby")) as second:
            await eventually(lambda: all(i.synced.is_set() for i in second.app.bgp.watched()), timeout=20)
            await client.apply(bgp_peer("tor", "192.0.2.1", 179, sourceAddress="2001:db8::2"))
            await reaches(client, BGPPEERS, "tor", "False", "InvalidSpec")
            await eventually(first.app.bgp.quiet, timeout=20)
            assert not second.app.leading
            assert second.app.bgp.work_done() == (0, 0)


@pytest.mark.e2e
async def test_kubectl_get_shows_ready_first(client: Cluster, kubeconfig: Path, tmp_path: Path) -> None:
    """The stock kubectl: READY is the first column after NAME, as the controller wrote it."""
    async with controller(kubeconfig):
        await client.apply(bgp_peer("tor", "192.0.2.1", 179), bgp_advertisement("to-x", peers=["x"]))
        await reaches(client, BGPPEERS, "tor", "True", "Valid")
        await reaches(client, BGPADVERTISEMENTS, "to-x", "False", "PeerNotFound")
        peers = await kubectl_get(kubeconfig, tmp_path, "bgppeers")
        ads = await kubectl_get(kubeconfig, tmp_path, "bgpadvertisements")
    assert [list(row)[:2] for row in (*peers, *ads)] == [["NAME", "READY"]] * 2
    assert [(r["NAME"], r["READY"]) for r in (*peers, *ads)] == [("tor", "True"), ("to-x", "False")]
