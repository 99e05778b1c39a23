"""Scenarios that make lbipam's processes call every kind of API request they ever make, on an
embedded API server that records each request (`lbipam.apiserver.wire.audit`). For test_rbac.py.

Each component runs in this process on its own client, whose User-Agent (`user_agent_for`) tells
its requests apart from the test's own (`own_client`, "rbac-test/0"). Each scenario asserts what it
made happen (IPs, a repeated Event, CIDRs, BGPNodeState), so a scenario that stopped exercising a
call fails instead of shrinking the comparison.
- controller: LB-IPAM with leader election on the Lease in lbipam-system; PodCIDR with each
  --podcidr-target, including a node left without a CIDR;
- controller: the Ready conditions of a BGPPeer (its MD5 Secret read by name) and of a
  BGPAdvertisement;
- speaker: its own ExaBGP dialling a closed port (no BGP peer is needed to see its API calls), an
  MD5 Secret missing, present, missing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bgp.driver import Driver
from bgp.speaker import Speaker, SpeakerOptions
from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.wire.audit import Call, Recorder
from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDROptions
from lbipam.k8s.client import Kube, connect, user_agent_for
from lbipam.k8s.errors import NotFound
from lbipam.k8s.events import SPEAKER
from lbipam.k8s.resources import (
    BGPADVERTISEMENTS,
    BGPNODESTATES,
    BGPPEERS,
    CRDS,
    ENDPOINTSLICES,
    EVENTS,
    LBPOOLS,
    NAMESPACES,
    NODES,
    PODCIDRPOOLS,
    SECRETS,
    SERVICES,
)
from tests.conftest import crd_documents
from tests.controller_harness import until
from tests.deploy_harness import NAMESPACE
from tests.helpers import eventually
from tests.lbipam_harness import Api, ingress, pool, service
from tests.lbipam_harness import Running as LBRunning
from tests.podcidr_harness import CILIUM, TARGETS, PCApi, PCRunning, operator_error, pcpool, reason
from tests.speaker_harness import endpoint_slice, secret

Obj = dict[str, Any]


# ---- a recording API server ------------------------------------------------
@contextlib.asynccontextmanager
async def recording_server(kubeconfig_path: Path) -> AsyncIterator[tuple[Recorder, Path]]:
    """An embedded API server that records every request, with the CRDs and our namespace."""
    recorder = Recorder()
    server = EmbeddedAPIServer(db=":memory:", port=0, bookmark_interval=0.5, recorder=recorder)
    await server.start()
    try:
        kubeconfig = server.write_kubeconfig(kubeconfig_path)
        async with own_client(kubeconfig) as kube:
            for doc in crd_documents():
                await kube.create(CRDS, doc)
            await kube.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
            await until(lambda: served(kube), timeout=10)
        yield recorder, kubeconfig
    finally:
        await server.stop()


async def served(kube: Kube) -> bool:
    listed = (await kube.list_all(CRDS)).items
    return all(
        any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
        for crd in listed
    )


@contextlib.asynccontextmanager
async def own_client(kubeconfig: Path) -> AsyncIterator[Kube]:
    kube = await connect(str(kubeconfig), user_agent="rbac-test/0")  # not counted: another agent
    try:
        yield kube
    finally:
        await kube.close()


async def controller_app(kubeconfig: Path, leader: LeaderOptions, target: str = "none") -> ControllerApp:
    kube = await connect(str(kubeconfig), user_agent=user_agent_for("controller"))
    settings = PodCIDRSettings(target, options=PodCIDROptions(reuse_delay=0.0))
    # No reuse delay: a released IP comes back to the same Service, and its Event repeats.
    return ControllerApp(kube, LBOptions(reuse_delay=0.0), leader, settings)


async def event_series(api: Api, name: str) -> int:
    return max((int((e.get("series") or {}).get("count") or 1) for e in await api.events(name)), default=0)


async def lb_scenario(kubeconfig: Path) -> None:
    """Leader election on the Lease in lbipam-system (acquire, renew, release); Services get IPs
    (status, annotation, Events), two share one, an Event repeats (a series: patch), pool status."""
    leader = LeaderOptions(
        identity="rbac-test",
        lease_namespace=NAMESPACE,
        lease_duration=2.0,
        renew_deadline=1.5,
        retry_period=0.2,
    )
    async with own_client(kubeconfig) as kube:
        api = Api(kube)
        await api.make(pool("a", "192.0.2.0/29"))
        app = await controller_app(kubeconfig, leader)
        running = LBRunning(app, app.kube, asyncio.create_task(app.run()), "controller")
        try:
            await eventually(
                lambda: app.lb.ready.is_set() and app.elector and app.elector.renewals, timeout=20
            )
            shared = {"lbipam.io/sharing-key": "k"}
            await api.make(
                service("web"),
                service("dns-udp", annotations=shared, ports=(("UDP", 53),)),
                service("dns-tcp", annotations=shared, ports=(("TCP", 53),)),
            )
            await running.settle(api)
            await api.patch(SERVICES, "web", {"spec": {"type": "ClusterIP"}}, "default")
            await running.settle(api)
            await api.patch(SERVICES, "web", {"spec": {"type": "LoadBalancer"}}, "default")
            snap = await running.settle(api)
            ips = {s["metadata"]["name"]: ingress(s) for s in snap.services}
            assert ips["web"], ips
            assert ips["dns-udp"] == ips["dns-tcp"] != [], ips
            await until(lambda: event_series(api, "web"), timeout=10)  # truthy once written
            assert await event_series(api, "web") >= 2, "the repeated IPAllocated Event made no series"
        finally:
            await running.stop()  # releases the Lease (an update)


async def podcidr_scenario(kubeconfig: Path, target: str) -> None:
    """`--podcidr-target target`: a pool with room for two nodes and three nodes: two get a CIDR
    (target write, condition, Events, pool status), the third reports CIDRNotAvailable."""
    async with own_client(kubeconfig) as kube:
        api = PCApi(kube)
        await api.create(PODCIDRPOOLS, pcpool("pods", (["198.51.100.0/24"], 25)))
        app = await controller_app(kubeconfig, LeaderOptions(enabled=False), target)
        running = PCRunning(app, app.kube, asyncio.create_task(app.run()), "controller", target=target)
        try:
            for name in ("n1", "n2", "n3"):
                await api.join(target, name)
            snap = await running.settle(api)
            assert sorted(snap.assigned().values()) == [(), ("198.51.100.0/25",), ("198.51.100.128/25",)]
            full = next(n for n, cidrs in snap.assigned().items() if not cidrs)
            assert reason(snap.node(full)) == ("False", "CIDRNotAvailable")
            if target in CILIUM:
                assert operator_error(snap.cn(full)), "no operator-status error on the CiliumNode"
        finally:
            await running.stop()


async def ready_reason(kube: Kube, res: Any, name: str) -> tuple[str, str] | None:
    obj = await kube.get(res, name)
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return (found[0]["status"], found[0]["reason"]) if found else None


async def bgp_status_scenario(kubeconfig: Path) -> None:
    """The Ready conditions of a BGPPeer whose MD5 Secret in lbipam-system is read by name, on a
    Node it selects, and of a BGPAdvertisement naming a peer that does not exist (an Event)."""
    async with own_client(kubeconfig) as kube:
        await kube.create(NODES, {"metadata": {"name": "n1"}})
        await kube.create(SECRETS, secret(SECRET, NAMESPACE, password="s3cret"))
        ref = {"namespace": NAMESPACE, "name": SECRET}
        spec = {"peerAddress": "192.0.2.1", "peerASN": 64512, "localASN": 64513, "passwordSecretRef": ref}
        await kube.create(BGPPEERS, {"metadata": {"name": "tor-a"}, "spec": spec})
        await kube.create(BGPADVERTISEMENTS, {"metadata": {"name": "ad"}, "spec": {"peers": ["tor-b"]}})
        app = await controller_app(kubeconfig, LeaderOptions(enabled=False))
        running = LBRunning(app, app.kube, asyncio.create_task(app.run()), "controller")
        try:
            await until(lambda: _equals(ready_reason(kube, BGPPEERS, "tor-a"), ("True", "Valid")), timeout=20)
            wanted = ("False", "PeerNotFound")
            await until(lambda: _equals(ready_reason(kube, BGPADVERTISEMENTS, "ad"), wanted), timeout=20)
            await until(lambda: controller_events(kube, "ad"), timeout=20)
        finally:
            await running.stop()


async def controller_events(kube: Kube, name: str) -> list[Obj]:
    items = (await kube.list_all(EVENTS, namespace="default")).items
    return [e for e in items if (e.get("regarding") or {}).get("name") == name]


Scenario = Callable[[Path], Awaitable[None]]
CONTROLLER_SCENARIOS: dict[str, Scenario] = {
    "loadbalancer": lb_scenario,
    "bgp-status": bgp_status_scenario,
    **{f"podcidr-{t}": functools.partial(podcidr_scenario, target=t) for t in TARGETS},
}


async def run_scenarios(scenarios: dict[str, Scenario], agent: str, tmp_path: Path) -> list[Call]:
    """Each scenario on its own recording server; the calls made with User-Agent `agent`."""
    calls: list[Call] = []
    for name, scenario in scenarios.items():
        async with recording_server(tmp_path / f"{name}.kubeconfig") as (recorder, kubeconfig):
            await scenario(kubeconfig)
            mine = [c for c in recorder.calls if c.component == agent]
            assert mine, f"scenario {name}: no request carried the User-Agent {agent}/..."
            calls += mine
    return calls


# ---- the speaker -------------------------------------------------------------------------------
SECRET = "tor-a-bgp"


async def speaker_events(kube: Kube, name: str) -> list[Obj]:
    """The speaker's Events about BGPPeer `name` (cluster-scoped: they live in "default")."""
    items = (await kube.list_all(EVENTS, namespace="default")).items
    return [
        e
        for e in items
        if e.get("reportingController") == SPEAKER and (e.get("regarding") or {}).get("name") == name
    ]


async def peer_error(kube: Kube, node: str, peer: str) -> str | None:
    """lastError of `peer` in BGPNodeState/<node> (None while absent)."""
    try:
        state = await kube.get(BGPNODESTATES, node)
    except NotFound:
        return None
    entries = {p["name"]: p for p in (state.get("status") or {}).get("peers") or []}
    return str(entries[peer]["lastError"]) if peer in entries else None


async def speaker_scenario(kubeconfig: Path) -> None:
    """Node n1's speaker with an advertised Service (status written as the controller would), a
    BGPPeer whose TCP MD5 Secret in lbipam-system is missing (a Warning Event, BGPNodeState
    created and its status written), then there (the peer opens, ExaBGP dials a closed port),
    then gone again (the same Event repeats: a series)."""

    async with own_client(kubeconfig) as kube:
        await kube.create(NODES, {"metadata": {"name": "n1"}})
        addresses = [{"type": "InternalIP", "address": "127.0.0.1"}]
        await kube.patch(NODES, "n1", {"status": {"addresses": addresses}}, subresource="status")
        await kube.create(LBPOOLS, pool("a", "192.0.2.0/29"))
        await kube.create(SERVICES, service("web"))
        body = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
        await kube.patch(SERVICES, "web", body, namespace="default", subresource="status")
        await kube.create(ENDPOINTSLICES, endpoint_slice("web", "web-1", ("n1", True)))
        await kube.create(BGPADVERTISEMENTS, {"metadata": {"name": "all"}, "spec": {}})
        ref = {"namespace": NAMESPACE, "name": SECRET}
        spec = {"peerAddress": "127.0.0.1", "peerPort": free_port(), "peerASN": 64512, "localASN": 64513}
        await kube.create(
            BGPPEERS, {"metadata": {"name": "tor-a"}, "spec": {**spec, "passwordSecretRef": ref}}
        )
        speaker_kube = await connect(str(kubeconfig), user_agent=user_agent_for("speaker"))
        with tempfile.TemporaryDirectory(prefix="lbipam-rbac-") as runtime:
            driver = Driver(Path(runtime))
            options = SpeakerOptions(node="n1", debounce=0.02, secret_refresh=0.2)
            speaker = Speaker(speaker_kube, driver, options)
            driver.on_change = speaker.changed
            task = asyncio.create_task(speaker.run())
            try:
                await until(lambda: speaker_events(kube, "tor-a"), timeout=20)
                assert "not found" in str(await until(lambda: peer_error(kube, "n1", "tor-a"), timeout=20))
                await kube.create(SECRETS, secret(SECRET, NAMESPACE, password="s3cret"))
                await until(lambda: _equals(peer_error(kube, "n1", "tor-a"), ""), timeout=20)
                await kube.delete(SECRETS, SECRET, namespace=NAMESPACE)

                async def repeated() -> bool:
                    events = await speaker_events(kube, "tor-a")
                    return any(int((e.get("series") or {}).get("count") or 1) >= 2 for e in events)

                await until(repeated, timeout=20)
            finally:
                task.cancel()  # as SIGTERM: withdraw, stop ExaBGP, write BGPNodeState a last time
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await speaker_kube.close()


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


def free_port() -> int:
    """A loopback TCP port nobody listens on: ExaBGP's connection attempts are refused there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SCENARIOS: dict[str, dict[str, Scenario]] = {
    "controller": CONTROLLER_SCENARIOS,
    "speaker": {"speaker": speaker_scenario},
}
