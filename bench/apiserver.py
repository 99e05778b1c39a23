"""Benchmark of the embedded API server, run as a subprocess. Prints its figures; asserts nothing.

    python bench/apiserver.py [--objects 10000] [--quick]

With a plain aiohttp client and 8 requests in flight, against `python -m lbipam apiserver` on a
SQLite file (every write committed with synchronous=FULL before it is acknowledged):
- creates/s of ConfigMap objects and of Services (cluster IP allocation, validation);
- merge patches/s on those objects, and /status merge patches/s on the Services;
- watch fan-out: one write at a time, 4 watchers; write acknowledged -> event received, p50/p99
  (negative when the event beats the acknowledgement), and request sent -> event received;
- restart time with every object on disk: process start -> `apiserver ready` line.
Server CPU per request comes from /proc (utime + stime of the server process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from _common import IN_FLIGHT, MERGE, Server, in_parallel, percentile, request

WATCHERS = 4
CMS = "/api/v1/namespaces/default/configmaps"
SVCS = "/api/v1/namespaces/default/services"


async def phase(server: Server, label: str, count: int, one: Callable[[int], Awaitable[None]]) -> None:
    cpu = server.cpu_seconds()
    elapsed = await in_parallel(count, one)
    used = server.cpu_seconds() - cpu
    print(f"{label:<38} {count / elapsed:8.0f}/s   server CPU {1000 * used / count:5.2f} ms/request")


async def throughput(server: Server, http: aiohttp.ClientSession, objects: int, services: int) -> None:
    async def create_cm(i: int) -> None:
        await request(
            http,
            "POST",
            CMS,
            {"metadata": {"name": f"cm{i}", "labels": {"n": str(i % 10)}}, "data": {"k": "v"}},
        )

    async def patch_cm(i: int) -> None:
        await request(http, "PATCH", f"{CMS}/cm{i}", {"data": {"k": f"v{i}"}}, MERGE)

    async def create_svc(i: int) -> None:
        body = {"metadata": {"name": f"svc{i}"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
        await request(http, "POST", SVCS, body)

    async def patch_svc_status(i: int) -> None:
        ip = f"198.51.{100 + i // 250}.{i % 250 + 1}"
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        await request(http, "PATCH", f"{SVCS}/svc{i}/status", body, MERGE)

    await phase(server, f"ConfigMap creates ({objects})", objects, create_cm)
    await phase(server, f"ConfigMap merge patches ({objects})", objects, patch_cm)
    await phase(server, f"Service creates ({services})", services, create_svc)
    await phase(server, f"Service /status merge patches ({services})", services, patch_svc_status)
    began = time.perf_counter()
    async with http.get(CMS) as response:
        listed = await response.json()
    took = 1000 * (time.perf_counter() - began)
    print(f"list of {len(listed['items'])} ConfigMaps                  {took:8.1f} ms")


async def fan_out(http: aiohttp.ClientSession, writes: int) -> None:
    """Sequential writes, each observed by WATCHERS watches; latencies in milliseconds."""
    async with http.post(CMS, json={"metadata": {"name": "fan"}, "data": {"i": "0"}}) as response:
        start_rv = (await response.json())["metadata"]["resourceVersion"]
    received: list[dict[str, float]] = [{} for _ in range(WATCHERS)]
    done = asyncio.Event()

    async def watch(slot: int) -> None:
        params = {"watch": "true", "resourceVersion": start_rv, "fieldSelector": "metadata.name=fan"}
        async with http.get(CMS, params=params, timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                event = json.loads(line)
                received[slot][event["object"]["metadata"]["resourceVersion"]] = time.perf_counter()
                if len(received[slot]) >= writes and all(len(r) >= writes for r in received):
                    done.set()
                    return

    tasks = [asyncio.create_task(watch(slot)) for slot in range(WATCHERS)]
    await asyncio.sleep(0.5)  # let the four watches connect (a benchmark, not a test)
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    for i in range(writes):
        began = time.perf_counter()
        result = await request(http, "PATCH", f"{CMS}/fan", {"data": {"i": str(i + 1)}}, MERGE)
        rv = result["metadata"]["resourceVersion"]
        sent[rv], acked[rv] = began, time.perf_counter()
    await asyncio.wait_for(done.wait(), 60)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    from_ack = [1000 * (r[rv] - acked[rv]) for r in received for rv in acked]
    from_send = [1000 * (r[rv] - sent[rv]) for r in received for rv in sent]
    print(f"watch fan-out to {WATCHERS} watchers, {writes} writes:")
    print(
        f"  ack -> event    p50 {percentile(from_ack, 50):7.2f} ms   p99 {percentile(from_ack, 99):7.2f} ms"
    )
    print(
        f"  send -> event   p50 {percentile(from_send, 50):7.2f} ms   p99 {percentile(from_send, 99):7.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000, help="ConfigMaps to create and patch")
    parser.add_argument("--services", type=int, default=2_000, help="Services to create and status-patch")
    parser.add_argument("--quick", action="store_true", help="1000 objects, 200 Services, 200 watched writes")
    args = parser.parse_args()
    objects, services, writes = (1000, 200, 200) if args.quick else (args.objects, args.services, 1000)
    with tempfile.TemporaryDirectory(prefix="bench-apiserver-") as tmp:
        server = Server(Path(tmp) / "api.db")
        print(f"server start (empty database)           {1000 * await server.start():8.0f} ms")
        try:
            async with server.session(limit=IN_FLIGHT + WATCHERS + 2) as http:
                await throughput(server, http, objects, services)
                await fan_out(http, writes)
        finally:
            await server.stop()
        size = (Path(tmp) / "api.db").stat().st_size / 1e6
        times = []
        for _ in range(3):
            times.append(await server.start())
            await server.stop()
        total = objects + services + 5
        runs = ", ".join(f"{1000 * t:.0f}" for t in times)
        median = 1000 * statistics.median(times)
        print(f"restart with {total} objects ({size:.1f} MB)   median {median:6.0f} ms (runs: {runs} ms)")


if __name__ == "__main__":
    asyncio.run(main())
