"""The routed lab: a router, nodes running real speakers, a client, in network namespaces.

    client (198.51.100.2) -- router (BIRD or FRR; 198.51.100.1 | 192.0.2.1 on a bridge)
                                 |-- node-1 (192.0.2.11)   each: `lbipam speaker`, ExaBGP, BFD,
                                 |-- node-2 (192.0.2.12)   an HTTP backend on port 80 and the
                                 |-- node-3 (192.0.2.13)   Service IPs on a dummy interface

The nodes hang off a bridge in the router namespace, as servers hang off a switch: a cut link
(`cut`) is then invisible to the router (no carrier change on its side), and only BGP's hold
timer or BFD can tell. The API server stays the test's embedded one: each namespace reaches it
at the same 127.0.0.1 address through `tests.netns.ApiBridge`, so one kubeconfig serves all.
The LB-IPAM controller runs in the test process. The client's requests are made from this
process with sockets opened inside the client namespace (`request`). Addresses come from the
documentation ranges; everything is removed on exit. Used by tests/test_lab_routed.py,
tests/test_bfd_interop.py and bench/failover.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.labrouters import NODE_ASN, ROUTER_ASN, BirdRouter, FrrRouter, LabRouter
from tests.lbipam_harness import controller
from tests.netns import ApiBridge, Namespaces, addr, in_ns, ip, socket_in, sysctl
from tests.process_harness import SpeakerProcess
from tests.speaker_harness import bgp_advertisement, bgp_peer, cluster, endpoint_slice

ROUTER = "192.0.2.1"
CLIENT = "198.51.100.2"
POOL = "203.0.113.0/28"
PORT = 80
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LabNode:
    name: str  # the Kubernetes Node
    ns: str
    address: str
    link: str  # its veth end inside the node namespace
    directory: Path
    vip_device: str = "lb0"  # where the Service IPs are bound
    speaker: SpeakerProcess | None = None
    backend: asyncio.subprocess.Process | None = None
    starts: int = 0


@dataclass
class Lab:
    spaces: Namespaces
    router: LabRouter
    nodes: list[LabNode]
    client: str  # the client namespace
    kubeconfig: Path
    cluster: Any  # tests.speaker_harness.Cluster
    service_ips: list[str] = field(default_factory=list)

    def node(self, name: str) -> LabNode:
        return next(n for n in self.nodes if n.name == name)

    # ---- speakers -------------------------------------------------------------------------
    async def start_speaker(self, node: LabNode) -> None:
        node.starts += 1
        runtime = node.directory / f"run{node.starts}"
        runtime.mkdir(parents=True, exist_ok=True)
        log = node.directory / f"speaker{node.starts}.log"
        node.speaker = await SpeakerProcess.start(
            self.kubeconfig, node.name, runtime, log, "--metrics-port", "0", wrap=in_ns(node.ns)
        )

    async def rollout(self, node: LabNode) -> None:
        """What a DaemonSet rollout does to one node: SIGTERM the speaker, start a new one."""
        assert node.speaker is not None
        await node.speaker.terminate()
        await self.start_speaker(node)

    async def kill_node(self, node: LabNode) -> None:
        """The node dies: its link goes first (so nothing it says on dying gets out), then every
        process in it, SIGKILLed."""
        self.cut(node)
        for pid in ip("netns", "pids", node.ns, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for proc in (node.speaker.proc if node.speaker else None, node.backend):
            if proc is not None:
                await proc.wait()

    def cut(self, node: LabNode) -> None:
        ip("link", "set", node.link, "down", ns=node.ns)

    async def revive(self, node: LabNode) -> None:
        """A dead node boots again: link up, backend and speaker started (bench/failover.py)."""
        ip("link", "set", node.link, "up", ns=node.ns)
        ip("route", "replace", "default", "via", ROUTER, ns=node.ns)
        await self.start_backend(node)
        await self.start_speaker(node)

    async def start_backend(self, node: LabNode) -> None:
        node.backend = await asyncio.create_subprocess_exec(
            *in_ns(node.ns, sys.executable, "-m", "tests.lab_backend", node.name, str(PORT)),
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    # ---- Services -------------------------------------------------------------------------
    async def service(self, name: str, *, local: bool = False, endpoints: Sequence[str] = ()) -> str:
        """A LoadBalancer Service with ready endpoints on `endpoints` (default: every node);
        its IP once the controller assigned it, bound on every node's dummy interface."""
        spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": PORT, "protocol": "TCP"}]}
        if local:
            spec["externalTrafficPolicy"] = "Local"
        await self.cluster.create_service(name, spec)
        on = list(endpoints) or [n.name for n in self.nodes]
        await self.cluster.apply(endpoint_slice(name, f"{name}-1", *((n, True) for n in on)))
        ips = await self.cluster.wait_ingress(name)
        for node in self.nodes:
            for address in ips:
                ip("addr", "add", f"{address}/32", "dev", node.vip_device, ns=node.ns, check=False)
        self.service_ips += ips
        return ips[0]

    # ---- the client -----------------------------------------------------------------------
    async def request(self, address: str, timeout: float = 1.0) -> str | None:  # noqa: ASYNC109
        """GET http://address/ from the client namespace on a new connection: the node that
        answered, or None when it failed (refused, reset, timed out)."""
        loop = asyncio.get_running_loop()
        sock = socket_in(self.client)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, PORT))
                await loop.sock_sendall(sock, b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
                data = b""
                while chunk := await loop.sock_recv(sock, 4096):
                    data += chunk
        except (OSError, TimeoutError):
            return None
        finally:
            sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode() if head.startswith(b"HTTP/1.0 200") else None

    async def spread(self, address: str, count: int) -> list[str | None]:
        return [await self.request(address) for _ in range(count)]


def _layout(spaces: Namespaces, count: int, directory: Path) -> tuple[str, str, list[LabNode]]:
    router = spaces.add("r")
    client = spaces.add("c")
    ip("link", "add", "br0", "type", "bridge", ns=router)
    ip("link", "set", "br0", "up", ns=router)
    addr(router, "br0", f"{ROUTER}/24")
    sysctl(router, "net.ipv4.ip_forward", "1")
    sysctl(router, "net.ipv4.fib_multipath_hash_policy", "1")  # per flow, by L4 ports too
    left, right = spaces.veth(router, client, "c")
    addr(router, left, "198.51.100.1/24")
    addr(client, right, f"{CLIENT}/24")
    ip("route", "add", "default", "via", "198.51.100.1", ns=client)
    nodes = []
    for index in range(1, count + 1):
        ns = spaces.add(f"n{index}")
        port, link = spaces.veth(router, ns, f"n{index}")
        ip("link", "set", port, "master", "br0", ns=router)
        address = f"192.0.2.{10 + index}"
        addr(ns, link, f"{address}/24")
        ip("route", "add", "default", "via", ROUTER, ns=ns)
        # The Service IPs go on a dummy interface; a kernel without the dummy driver (some
        # sandboxes) gets them on the namespace's loopback, which serves the same purpose.
        dummy = ip("link", "add", "lb0", "type", "dummy", ns=ns, check=False) == "" and _exists(ns, "lb0")
        ip("link", "set", "lb0" if dummy else "lo", "up", ns=ns)
        nodes.append(
            LabNode(f"node-{index}", ns, address, link, directory / f"node-{index}", "lb0" if dummy else "lo")
        )
    return router, client, nodes


def _api_port(kubeconfig: Path) -> int:
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    return int(str(urlsplit(server).port))


def _exists(ns: str, device: str) -> bool:
    return bool(ip("link", "show", device, ns=ns, check=False))


@contextlib.asynccontextmanager
async def lab(
    kubeconfig: Path,
    directory: Path,
    *,
    nodes: int = 3,
    router: str = "bird",
    bfd: bool = True,
    hold_time: int = 90,
    graceful_restart: bool = True,
) -> AsyncIterator[Lab]:
    """The whole lab, running: every speaker Established with the router."""
    port = _api_port(kubeconfig)
    bridge = ApiBridge(port)
    with Namespaces() as spaces:
        router_ns, client_ns, lab_nodes = _layout(spaces, nodes, directory)
        (directory / "router").mkdir(parents=True, exist_ok=True)
        kind = BirdRouter if router == "bird" else FrrRouter
        neighbors = {n.name.replace("-", ""): n.address for n in lab_nodes}
        the_router = kind(router_ns, directory / "router", ROUTER, neighbors, bfd=bfd, hold_time=hold_time)
        async with cluster(kubeconfig) as client, controller(kubeconfig, reuse_delay=0.1):
            the_lab = Lab(spaces, the_router, lab_nodes, client_ns, kubeconfig, LabCluster(client))
            try:
                await bridge.open([n.ns for n in lab_nodes])
                await the_router.start()
                await _objects(the_lab, bfd=bfd, hold_time=hold_time, graceful_restart=graceful_restart)
                for node in lab_nodes:
                    node.directory.mkdir(parents=True, exist_ok=True)
                    await the_lab.start_backend(node)
                    await the_lab.start_speaker(node)
                yield the_lab
            finally:
                await _stop_all(the_lab)
                await bridge.close()


async def _stop_all(the_lab: Lab) -> None:
    for node in the_lab.nodes:
        if node.speaker is not None:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await node.speaker.terminate(timeout=20)
            await node.speaker.kill()
        if node.backend is not None and node.backend.returncode is None:
            node.backend.kill()
            await node.backend.wait()
    await the_lab.router.stop()
    for node in the_lab.nodes:  # anything left (an ExaBGP or BFD process of a killed speaker)
        for pid in ip("netns", "pids", node.ns, check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


async def _objects(the_lab: Lab, *, bfd: bool, hold_time: int, graceful_restart: bool) -> None:
    client = the_lab.cluster
    for node in the_lab.nodes:
        await client.cluster.node(node.name, ipv4=node.address)
    await client.cluster.apply(
        {"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "lab"},
         "spec": {"blocks": [{"cidr": POOL}]}},
        bgp_peer("router", ROUTER, 179, asn=ROUTER_ASN, local_asn=NODE_ASN, holdTime=hold_time,
                 gracefulRestart={"enabled": graceful_restart, "restartTime": 60},
                 bfd={"enabled": bfd, "minRxMs": 300, "minTxMs": 300, "multiplier": 3}),
        bgp_advertisement("everything"),
    )  # fmt: skip


class LabCluster:
    """The test's client: Services and slices, and waits on what the controller writes."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    async def apply(self, *objs: dict[str, Any]) -> None:
        await self.cluster.apply(*objs)

    async def create_service(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
                "spec": spec}  # fmt: skip
        await self.cluster.apply(body)

    async def wait_ingress(self, name: str, timeout: float = 20) -> list[str]:  # noqa: ASYNC109
        from tests.controller_harness import until

        async def assigned() -> list[str] | None:
            return await self.cluster.ingress(name) or None

        ips: list[str] = await until(assigned, timeout=timeout)
        return ips

    async def peer_state(self, node: str) -> dict[str, Any]:
        return dict((await self.cluster.node_state(node)).get("router") or {})
