"""The scale phases of bench/controller.py, each against its own API server and controller:

- `steady`: Cilium's CI scale test for LB-IPAM (50,000 Services within 3 minutes, ~280/s, from a
  /8) against the embedded API with the controller running: creates on a fixed schedule at RATE/s
  into one /8 pool; create -> ingress p50/p99 (acknowledged create, and request sent, to ingress
  seen in a watch) and the controller's peak RSS (VmHWM, its own process);
- `big_pool`: a pool of 100,000 single-address blocks created while the controller runs and a
  Service waits for it: pool POST -> the Service satisfied (the first assignment) and -> the
  pool's status written, with the controller's /healthz polled every 50 ms meanwhile (the worst
  latency tells whether a planning step held its event loop).

Shared with bench/controller.py: the paths, the Service and pool bodies, `install_crds`,
`satisfied`. Imported as `_lbscale` (the bench scripts run as scripts).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _common import IN_FLIGHT, ROOT, Controller, Server, Watch, free_port, install_crd, request, row, until
from _common import percentile as pct

SVCS = "/api/v1/namespaces/default/services"
POOLS = "/apis/lbipam.io/v1alpha1/loadbalancerippools"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
POOL_CRD = ROOT / "crds" / "lbipam.io_loadbalancerippools.yaml"
SATISFIED = "lbipam.io/IPAMRequestSatisfied"
ALLOCATED_FROM = "lbipam.io/allocated-from"
RATE = 280  # creates per second: Cilium's 50,000 Services in 3 minutes
HEALTH_EVERY = 0.05  # seconds between /healthz polls
Obj = dict[str, Any]


async def install_crds(http: aiohttp.ClientSession) -> None:
    """Every lbipam CRD (the controller also watches BGPPeers and BGPAdvertisements, for their
    status), each Established."""
    for path in sorted(POOL_CRD.parent.glob("lbipam.io_*.yaml")):
        await install_crd(http, path)


def satisfied(obj: Obj) -> bool:
    status = obj.get("status") or {}
    if not (status.get("loadBalancer") or {}).get("ingress"):
        return False
    return any(
        c.get("type") == SATISFIED and c.get("status") == "True" for c in status.get("conditions") or []
    )


def service(name: str, pool: str) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"bench-pool": pool}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "selector": {"app": name},
            # 50,000 node ports would not go round; BGP-announced LB IPs do not need them.
            "allocateLoadBalancerNodePorts": False,
        },
    }


def pool(name: str, blocks: list[Obj]) -> Obj:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": name},
        "spec": {"blocks": blocks, "serviceSelector": {"matchLabels": {"bench-pool": name}}},
    }


async def steady(count: int) -> dict[str, float]:
    """`count` creates at RATE/s into one 10.0.0.0/8 pool with the controller running; returns
    p50/p99 create acknowledged -> ingress seen (ms) and the controller's peak RSS (MB)."""
    with tempfile.TemporaryDirectory(prefix="bench-controller-steady-") as tmp:
        server = Server(Path(tmp) / "api.db", Path(tmp) / "kubeconfig")
        await server.start()
        controller = Controller(Path(tmp) / "kubeconfig")
        seen: dict[str, float] = {}

        def on_service(kind: str, obj: Obj, at: float) -> None:
            name = obj["metadata"]["name"]
            if name not in seen and satisfied(obj):
                seen[name] = at

        watch_task: asyncio.Task[None] | None = None
        try:
            async with server.session(limit=64) as http:
                await install_crds(http)
                await request(http, "POST", POOLS, pool("bench-slash8", [{"cidr": "10.0.0.0/8"}]))
                watch = Watch(http, SVCS, on_service)
                await watch.list()
                watch_task = asyncio.create_task(watch.run())
                await controller.start()
                await controller.idle_since()
                base_rss = controller.peak_rss_mb()
                cpu, server_cpu = controller.cpu_seconds(), server.cpu_seconds()
                acked, sent, late = await _on_schedule(http, count)
                await until(
                    lambda: all(n in seen for n in acked),
                    120 + count / 50,
                    "every steady-rate Service satisfied",
                    controller.check,
                )
                done = time.perf_counter()
                cpu, server_cpu = controller.cpu_seconds() - cpu, server.cpu_seconds() - server_cpu
                rss = controller.peak_rss_mb()
            from_ack = [1000 * (seen[n] - acked[n]) for n in acked]
            from_send = [1000 * (seen[n] - sent[n]) for n in acked]
            took = max(sent.values()) - min(sent.values())
            print(f"steady rate: {count} creates at {RATE}/s into one /8, the controller running")
            row("achieved create rate; sends > 50 ms late", f"{count / max(took, 1e-9):8.1f}/s; {late}")
            row(
                "create acked -> ingress seen, p50 p99 max",
                f"{pct(from_ack, 50):8.1f} {pct(from_ack, 99):7.1f} {max(from_ack):7.1f} ms",
            )
            row(
                "create sent -> ingress seen, p50 p99 max",
                f"{pct(from_send, 50):8.1f} {pct(from_send, 99):7.1f} {max(from_send):7.1f} ms",
            )
            row("first send -> last satisfied", f"{done - min(sent.values()):8.1f} s")
            row(
                "CPU per Service: controller, server",
                f"{1000 * cpu / count:8.2f}, {1000 * server_cpu / count:.2f} ms",
            )
            row("controller peak RSS (VmHWM): idle, after", f"{base_rss:8.0f}, {rss:.0f} MB")
            return {"p50": pct(from_ack, 50), "p99": pct(from_ack, 99), "rss": rss}
        finally:
            if watch_task is not None:
                watch_task.cancel()
                await asyncio.gather(watch_task, return_exceptions=True)
            if controller.process is not None and controller.process.returncode is None:
                await controller.stop()
            await server.stop()
            for line in controller.problems[:5]:
                print(f"controller warning: {line}")


async def _on_schedule(
    http: aiohttp.ClientSession, count: int
) -> tuple[dict[str, float], dict[str, float], int]:
    """Create `count` Services on a fixed schedule (a slow acknowledgement does not delay the
    next send); returns when each was acknowledged and sent, and how many sends were late."""
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}
    tasks: set[asyncio.Task[None]] = set()
    late = 0

    async def create(name: str) -> None:
        sent[name] = time.perf_counter()
        await request(http, "POST", "/api/v1/namespaces/default/services", service(name, "bench-slash8"))
        acked[name] = time.perf_counter()

    began = time.perf_counter()
    for i in range(count):
        delay = began + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late += delay < -0.05
        task = asyncio.create_task(create(f"s{i:06d}"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return acked, sent, late


def big_blocks(count: int) -> list[Obj]:
    """`count` single addresses two apart from 10.0.0.0 (no two adjacent: the free map keeps
    every one apart), as /32 CIDRs."""
    out = []
    for i in range(count):
        a = 2 * i
        out.append({"cidr": f"10.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}/32"})
    return out


async def big_pool(count: int) -> dict[str, float]:
    """A pool of `count` blocks created under a waiting Service, /healthz polled meanwhile."""
    with tempfile.TemporaryDirectory(prefix="bench-controller-bigpool-") as tmp:
        server = Server(Path(tmp) / "api.db", Path(tmp) / "kubeconfig")
        await server.start()
        port = free_port()
        controller = Controller(
            Path(tmp) / "kubeconfig", args=("--metrics-address", "127.0.0.1", "--metrics-port", str(port))
        )
        marks: dict[str, float] = {}

        def on_service(kind: str, obj: Obj, at: float) -> None:
            if "satisfied" not in marks and satisfied(obj):
                marks["satisfied"] = at

        def on_pool(kind: str, obj: Obj, at: float) -> None:
            conditions = (obj.get("status") or {}).get("conditions") or []
            if "status" not in marks and any(c.get("type") == "Ready" for c in conditions):
                marks["status"] = at
                marks["ready"] = float(
                    any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                )

        tasks: list[asyncio.Task[None]] = []
        try:
            async with server.session(limit=IN_FLIGHT, read_bufsize=2**24) as http:
                await install_crds(http)
                for path, handler in ((SVCS, on_service), (POOLS, on_pool)):
                    watch = Watch(http, path, handler)
                    await watch.list()
                    tasks.append(asyncio.create_task(watch.run()))
                await request(http, "POST", SVCS, service("waiting", "bench-big"))
                await controller.start()
                await controller.idle_since()
                body = json.dumps(pool("bench-big", big_blocks(count)), separators=(",", ":"))
                latencies: list[float] = []
                failed = [0]
                polling = asyncio.create_task(_poll_health(port, latencies, failed))
                began = time.perf_counter()
                async with http.post(POOLS, data=body, headers={"Content-Type": "application/json"}) as r:
                    if r.status >= 300:
                        raise SystemExit(
                            f"POST the {count}-block pool: {r.status} {(await r.json()).get('message')}"
                        )
                posted = time.perf_counter()

                def check() -> None:
                    controller.check()
                    for task in tasks:
                        if task.done():
                            task.result()  # a watch that ended raises here
                            raise SystemExit("a watch ended")

                await until(lambda: "satisfied" in marks, 600, "the first assignment", check)
                await until(lambda: "status" in marks, 600, "the big pool's status", check)
                idle = await controller.idle_since()
                polling.cancel()
                await asyncio.gather(polling, return_exceptions=True)
                rss = controller.peak_rss_mb()
            print(f"big pool: {count} single-address blocks ({len(body) / 1e6:.1f} MB), a Service waiting")
            row("pool POST acknowledged", f"{posted - began:8.2f} s")
            row("pool POST -> first assignment seen", f"{marks['satisfied'] - began:8.2f} s")
            ready = "True" if marks["ready"] else "not True"
            row(
                "pool POST -> pool status (Ready) seen", f"{marks['status'] - began:8.2f} s   (Ready {ready})"
            )
            row("pool POST -> controller idle", f"{idle - began:8.2f} s")
            worst = max(latencies) if latencies else float("nan")
            row(
                "/healthz every 50 ms meanwhile: polls, p50, worst",
                f"{len(latencies):8d}, {pct(latencies, 50):.1f}, {worst:.1f} ms   ({failed[0]} failed)",
            )
            row("controller peak RSS (VmHWM)", f"{rss:8.0f} MB")
            return {"first": marks["satisfied"] - began, "health": worst}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if controller.process is not None and controller.process.returncode is None:
                await controller.stop()
            await server.stop()
            for line in controller.problems[: int(os.environ.get("BENCH_WARNINGS", "5"))]:
                print(f"controller warning: {line[:300]}")


async def _poll_health(port: int, latencies: list[float], failed: list[int]) -> None:
    """GET /healthz every HEALTH_EVERY seconds (a new poll does not wait for a slow answer to
    start, so a held event loop shows as the answer's latency); appends each latency in ms and
    counts failures (an error, or an answer other than 200) in failed[0]."""
    url = f"http://127.0.0.1:{port}/healthz"
    timeout = aiohttp.ClientTimeout(total=60)

    async def one(http: aiohttp.ClientSession) -> None:
        began = time.perf_counter()
        try:
            async with http.get(url, timeout=timeout) as response:
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        latencies.append(1000 * (time.perf_counter() - began))
        failed[0] += not ok

    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as http:
        try:
            while True:
                task = asyncio.create_task(one(http))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(HEALTH_EVERY)
        finally:
            for task in list(pending):
                task.cancel()
