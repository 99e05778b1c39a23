"""Shared helpers of the speaker's end-to-end tests (tests/test_speaker_*.py).

Everything real: the embedded API server (fixtures `kubeconfig`, `lbipam_crds`), the LB-IPAM
controller in-process (tests/lbipam_harness.py), the speaker in-process (`running_speaker`) or as
`python -m lbipam speaker` (tests/process_harness.SpeakerProcess) with its own ExaBGP, and BIRD
(tests/bgplab.py) or FRR (tests/frrlab.py): `router(kind, ...)` makes either, `routes(router)`
reads either's table; `BOTH_ROUTERS` skips a module without both.
- builders: Nodes (with InternalIPs in status), EndpointSlices, BGPPeers, BGPAdvertisements,
  Secrets, plain dicts as a user's manifests;
- `Cluster`: the test's client with the writes those tests make (retrying nothing: no faults);
- readers: BGPNodeState peers, the speaker's Events about an object.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bgp.driver import Driver
from bgp.speaker import Speaker, SpeakerOptions
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.errors import NotFound
from lbipam.k8s.events import SPEAKER
from lbipam.k8s.resources import (
    BGPADVERTISEMENTS,
    BGPNODESTATES,
    BGPPEERS,
    ENDPOINTSLICES,
    EVENTS,
    LBPOOLS,
    NODES,
    PODCIDRPOOLS,
    SECRETS,
    SERVICES,
    Resource,
)
from tests.bgplab import PORT, Bird, Neighbor, Route, have, loopback_pair
from tests.controller_harness import until
from tests.daemon import port_free
from tests.frrlab import Frr, FrrNeighbor, have_frr
from tests.lbipam_harness import controller

Obj = dict[str, Any]
API_VERSION = "lbipam.io/v1alpha1"
ROOT = Path(__file__).resolve().parent.parent


# ---- builders -----------------------------------------------------------------------------------
def bgp_peer(
    name: str, address: str, port: int, *, asn: int = 65000, local_asn: int = 65000, **spec: Any
) -> Obj:
    """A BGPPeer; `spec` takes the wire names (sourceAddress, passwordSecretRef, ...)."""
    body = {"peerAddress": address, "peerPort": port, "peerASN": asn, "localASN": local_asn, **spec}
    return {"apiVersion": API_VERSION, "kind": "BGPPeer", "metadata": {"name": name}, "spec": body}


def bgp_advertisement(name: str, **spec: Any) -> Obj:
    """A BGPAdvertisement; `spec` takes the wire names (communities, localPreference, ...)."""
    return {"apiVersion": API_VERSION, "kind": "BGPAdvertisement", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(service: str, name: str, *endpoints: tuple[str, bool], namespace: str = "default") -> Obj:
    """An EndpointSlice of `service` with one endpoint per (node, ready)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.244.0.{i + 10}"], "nodeName": node, "conditions": {"ready": ready}}
            for i, (node, ready) in enumerate(endpoints)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def secret(name: str, namespace: str = "default", **data: str) -> Obj:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": encoded,
    }


# ---- the test's client --------------------------------------------------------------------------
class Cluster:
    """The test's own reads and writes, through `lbipam.k8s.Kube` over real HTTP."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        ipv4: str | None = None,
        ipv6: str | None = None,
        pod_cidrs: Sequence[str] = (),
    ) -> Obj:
        """Create a Node; its InternalIPs go to status (a write to the Node itself ignores it)."""
        spec: Obj = {}
        if pod_cidrs:
            spec = {"podCIDR": pod_cidrs[0], "podCIDRs": list(pod_cidrs)}
        meta = {"name": name, "labels": dict(labels or {})}
        await self.kube.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec})
        addresses = [{"type": "InternalIP", "address": a} for a in (ipv4, ipv6) if a]
        addresses.append({"type": "Hostname", "address": name})
        return await self.kube.patch(NODES, name, {"status": {"addresses": addresses}}, subresource="status")

    async def create(self, res: Resource, obj: Obj) -> Obj:
        return await self.kube.create(res, obj)

    async def apply(self, *objs: Obj) -> None:
        """Create objects of the kinds these tests use, in order."""
        kinds = {
            "Service": SERVICES,
            "LoadBalancerIPPool": LBPOOLS,
            "PodCIDRPool": PODCIDRPOOLS,
            "BGPPeer": BGPPEERS,
            "BGPAdvertisement": BGPADVERTISEMENTS,
            "EndpointSlice": ENDPOINTSLICES,
            "Secret": SECRETS,
        }
        for obj in objs:
            await self.kube.create(kinds[obj["kind"]], obj)

    async def patch(self, res: Resource, name: str, body: Obj, namespace: str | None = None) -> Obj:
        return await self.kube.patch(res, name, body, namespace=namespace)

    async def delete(self, res: Resource, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(NotFound):
            await self.kube.delete(res, name, namespace=namespace)

    async def ingress(self, name: str, namespace: str = "default") -> list[str]:
        """The Service's ingress IPs (what the controller assigned)."""
        svc = await self.kube.get(SERVICES, name, namespace=namespace)
        return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    async def node_state(self, node: str) -> dict[str, Obj]:
        """BGPNodeState/<node> status.peers by name ({} while it does not exist)."""
        try:
            obj = await self.kube.get(BGPNODESTATES, node)
        except NotFound:
            return {}
        return {p["name"]: p for p in (obj.get("status") or {}).get("peers") or []}

    async def speaker_events(self, name: str, namespace: str = "default") -> list[tuple[str, str]]:
        """(reason, note) of the speaker's Events about cluster-scoped object `name` (their
        Events live in "default") or a namespaced one."""
        items = (await self.kube.list_all(EVENTS, namespace=namespace)).items
        return sorted(
            (e["reason"], e["note"])
            for e in items
            if e.get("reportingController") == SPEAKER and (e.get("regarding") or {}).get("name") == name
        )


@contextlib.asynccontextmanager
async def cluster(kubeconfig: Path) -> AsyncIterator[Cluster]:
    kube = await connect(str(kubeconfig))
    try:
        yield Cluster(kube)
    finally:
        await kube.close()


@contextlib.asynccontextmanager
async def world(kubeconfig: Path) -> AsyncIterator[Cluster]:
    """The test's client, with the LB-IPAM controller running (it gives Services their IPs)."""
    async with cluster(kubeconfig) as client, controller(kubeconfig):
        yield client


# ---- routers ------------------------------------------------------------------------------------
def addresses(key: str, speakers: int = 1) -> tuple[str, list[str]]:
    """The router's 127.a.b.1 and `speakers` ExaBGP addresses 127.a.b.2, .3, ... (port checked)."""
    router, first = loopback_pair(key)
    base = first.rsplit(".", 1)[0]
    others = [f"{base}.{2 + i}" for i in range(speakers)]
    for address in others:
        if not port_free(address, PORT):
            raise RuntimeError(f"{address}:{PORT} is taken")
    return router, others


def bird(directory: Path, router: str, *speakers: str, password: str | None = None) -> Bird:
    """A BIRD with one iBGP neighbor (graceful restart on) per speaker address, named
    `speaker` for the first and `speaker2`, `speaker3`... for the others."""
    names = ["speaker", *(f"speaker{i}" for i in range(2, len(speakers) + 1))]
    return Bird(
        directory,
        router,
        [Neighbor(a, name=n, password=password) for a, n in zip(speakers, names, strict=True)],
    )


Router = Bird | Frr
ROUTERS = ("bird", "frr")  # the kinds `router` makes, for parametrize
BOTH_ROUTERS = pytest.mark.skipif(
    not (have("bird", "birdc") and have_frr()), reason="needs BIRD 2 and FRR 8"
)  # for the modules whose tests run against each of ROUTERS


def router(
    kind: str,
    directory: Path,
    address: str,
    speaker: str,
    *,
    password: str | None = None,
    netns: str | None = None,
    asn: int = 65000,
    speaker_asn: int = 65000,
    refuse: bool = False,
) -> Router:
    """A BIRD or FRR (`kind`) at `address` that accepts one session from `speaker`, graceful
    restart on (helper). `refuse`: a router that ends every session the speaker's routes reach
    with a NOTIFICATION (FRR: the 127.x next hop, 3/8; BIRD: more than one route, 6/1)."""
    if kind == "frr":
        neighbor = FrrNeighbor(speaker, asn=speaker_asn, password=password)
        return Frr(directory, address, [neighbor], asn=asn, allow_martian=not refuse, netns=netns)
    neighbor = Neighbor(
        speaker, asn=speaker_asn, local_asn=asn, password=password, limit=1 if refuse else None
    )
    return Bird(directory, address, [neighbor], netns=netns)


@contextlib.asynccontextmanager
async def router_lab(
    kind: str, kubeconfig: Path, directory: Path, key: str, **options: Any
) -> AsyncIterator[tuple[Router, Cluster, str, str]]:
    """A running `router(kind, ...)` (in `directory`/`kind`, `options` as `router` takes them) on
    the loopback addresses for `key` (a test's node id, `addresses`), and the test's client
    (`world`): (router, client, the router's address, the speaker's)."""
    router_address, (source,) = addresses(key)
    bgp = router(kind, directory / kind, router_address, source, **options)
    async with bgp, world(kubeconfig) as client:
        yield bgp, client, router_address, source


async def routes(router: Router, protocol: str | None = None) -> dict[str, Route]:
    """Every route the router holds, both families."""
    if isinstance(router, Frr):
        return {**await router.routes("ipv4"), **await router.routes("ipv6")}
    return await router.routes(protocol)


async def session_state(router: Router, speaker: str) -> str:
    """The router's BGP state of the session from `speaker` (Established, Active, ...)."""
    if isinstance(router, Frr):
        return await router.state(speaker)
    return await router.state()


async def restarting(router: Router) -> bool:
    """Whether the router is holding our routes for a restarting speaker (graceful restart
    helper at work: FRR marks them stale, BIRD says so of the protocol)."""
    if isinstance(router, Frr):
        found = await routes(router)
        return bool(found) and all(r.stale for r in found.values())
    return (await router.updates_received())[1]


async def table(
    router: Router,
    expected: set[str],
    protocol: str | None = None,
    timeout: float = 20,  # noqa: ASYNC109  # a polling deadline, as `eventually` has
) -> dict[str, Route]:
    """Wait until the router holds exactly `expected` (BIRD: from `protocol`); its routes then."""

    async def holds() -> tuple[dict[str, Route]] | None:
        found = await routes(router, protocol)
        return (found,) if set(found) == expected else None  # a tuple: {} is falsy

    (found,) = await until(holds, timeout=timeout)
    return found


def md5_failures() -> int:
    """The kernel's count of TCP segments dropped for a wrong MD5 signature (TcpExt)."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] == "TcpExt:":
            return int(values[names.index("TCPMD5Failure")])
    raise AssertionError("no TcpExt counters")


# ---- the speaker in this process ----------------------------------------------------------------
@dataclass
class RunningSpeaker:
    speaker: Speaker
    kube: Kube
    task: asyncio.Task[None]
    stopped: bool = field(default=False)

    def alive(self) -> None:
        """Raise the speaker's error here if its task has ended."""
        if self.task.done():
            self.task.result()
            raise AssertionError("the speaker has stopped")

    async def stop(self) -> None:
        """Cancel it as SIGTERM does: it withdraws its routes and stops ExaBGP first."""
        if self.stopped:
            return
        self.stopped = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.kube.close()


async def start_speaker(
    kubeconfig: Path,
    node: str,
    runtime_dir: Path,
    *,
    secret_refresh: float = 60.0,
    status_interval: float = 0.2,
    exabgp: Sequence[str] | None = None,
) -> RunningSpeaker:
    """A speaker for `node` in this process, with its own client and ExaBGP (in `runtime_dir`,
    run as `exabgp` when given: e.g. inside a network namespace). BGPNodeState is written at
    most every `status_interval` seconds (tests that count writes give the default's 3 s)."""
    kube = await connect(str(kubeconfig))
    options = SpeakerOptions(
        node=node, debounce=0.02, secret_refresh=secret_refresh, status_interval=status_interval
    )
    speaker = Speaker(kube, Driver(runtime_dir, command=exabgp), options)
    task = asyncio.create_task(speaker.run(), name=f"speaker-{node}")
    return RunningSpeaker(speaker, kube, task)


@contextlib.asynccontextmanager
async def running_speaker(
    kubeconfig: Path, node: str, runtime_dir: Path, **options: Any
) -> AsyncIterator[RunningSpeaker]:
    running = await start_speaker(kubeconfig, node, runtime_dir, **options)
    try:
        yield running
    finally:
        await running.stop()
