"""Benchmark of the LB-IPAM controller on the embedded API. Prints its figures; asserts nothing.

    python bench/controller.py [--services 10000] [--pools 50] [--quick]

The API server (`lbipam apiserver`, SQLite file) and the controller (`lbipam controller
--no-leader-elect`) each run in their own process, as in production; this process creates objects
with plain aiohttp and sees the results through plain aiohttp watches. In one run:
- the ceiling: merge patches/s of Service status by a plain aiohttp client (8 in flight), and the
  time of a bare list of every Service (one request, parsed; median of 5), with the Services
  unassigned and assigned (the ratio uses the latter); a list in pages of 500 for comparison;
- cold start: N Services across P pools (selected by label) exist before the controller starts;
  controller spawn -> all N satisfied (ingress and IPAMRequestSatisfied=True seen in a watch), and
  assignments/s, as a ratio of the PATCH ceiling (goal >= 0.5);
- restart with N assigned: SIGTERM, start again; Services whose resourceVersion changed (must be
  0) and time to ready, as a ratio of the bare list (goal <= 2). Ready = the controller has gone
  idle (under 20 ms of CPU in a second, from /proc) after its first full pass: it logs no line
  for that moment, and "leading: imported assignments" comes before that pass;
- create -> ingress latency p50/p99 at a steady 50 creates/s with the controller running.
Also: API writes per assignment (Service writes and Events seen in the watches), the pools'
counters summed, and CPU per assignment of the controller and server (/proc) and of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from _common import (
    IMPORTED,
    IN_FLIGHT,
    LEADING,
    MERGE,
    QUIET,
    ROOT,
    Controller,
    Server,
    Watch,
    bare_list,
    in_parallel,
    paged_list,
    request,
    row,
    until,
)
from _common import percentile as pct

SVCS = "/api/v1/namespaces/default/services"
POOLS = "/apis/lbipam.io/v1alpha1/loadbalancerippools"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
SATISFIED = "lbipam.io/IPAMRequestSatisfied"
RATE = 50  # creates per second in the latency phase


def satisfied(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if not (status.get("loadBalancer") or {}).get("ingress"):
        return False
    return any(
        c.get("type") == SATISFIED and c.get("status") == "True" for c in status.get("conditions") or []
    )


class Seen:
    """What the watches saw: when each Service was first satisfied, and writes by kind."""

    def __init__(self) -> None:
        self.satisfied: dict[str, float] = {}
        self.service_writes = 0
        self.pool_writes = 0
        self.events: Counter[str] = Counter()

    def writes(self) -> tuple[int, int, int]:
        """Service writes, pool status writes and Events seen so far."""
        return self.service_writes, self.pool_writes, sum(self.events.values())

    def report_writes(self, since: tuple[int, int, int]) -> None:
        now = self.writes()
        row(
            "writes seen: Service, pool status, Event",
            f"{now[0] - since[0]:8d}, {now[1] - since[1]}, {now[2] - since[2]}",
        )

    def service(self, kind: str, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "MODIFIED":
            self.service_writes += 1
        if name not in self.satisfied and satisfied(obj):
            self.satisfied[name] = at

    def pool(self, kind: str, obj: dict[str, Any], at: float) -> None:
        self.pool_writes += kind == "MODIFIED"

    def event(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind == "ADDED":
            self.events[obj.get("reason", "")] += 1


def pool_name(index: int) -> str:
    return f"bench-p{index:02d}"


def service(name: str, pool: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"bench-pool": pool_name(pool)}},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "selector": {"app": name},
            # 2,768 node ports would not go round; BGP-announced LB IPs do not need them.
            "allocateLoadBalancerNodePorts": False,
        },
    }


async def setup(http: aiohttp.ClientSession, server: Server, services: int, pools: int) -> None:
    """The pool CRD, `pools` pools of a /20 each, then `services` Services spread over them."""
    crd = yaml.safe_load((ROOT / "crds" / "lbipam.io_loadbalancerippools.yaml").read_text())
    await request(http, "POST", CRDS, crd)

    async def established() -> bool:
        async with http.get(f"{CRDS}/{crd['metadata']['name']}") as response:
            conditions = ((await response.json()).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    for _ in range(200):
        if await established():
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit("the LoadBalancerIPPool CRD did not become Established")
    for index in range(pools):
        pool = {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "LoadBalancerIPPool",
            "metadata": {"name": pool_name(index)},
            "spec": {
                "blocks": [{"cidr": f"10.{100 + index}.0.0/20"}],
                "serviceSelector": {"matchLabels": {"bench-pool": pool_name(index)}},
            },
        }
        await request(http, "POST", POOLS, pool)

    async def create(i: int) -> None:
        await request(http, "POST", SVCS, service(f"svc{i:05d}", i % pools))

    cpu = server.cpu_seconds()
    took = await in_parallel(services, create)
    print(f"setup: {pools} pools, {services} Services")
    row("Service creates", f"{services / took:8.0f}/s   server {per_call(server, cpu, services)}")


def per_call(server: Server, cpu_before: float, calls: int) -> str:
    return f"{1000 * (server.cpu_seconds() - cpu_before) / calls:.2f} ms CPU each"


async def ceiling(http: aiohttp.ClientSession, server: Server, services: int) -> float:
    """Status merge patches/s of a plain client, 8 in flight: sets then clears a probe condition
    (so that the controller still starts cold). Returns the mean of the two rates."""
    probe = {
        "type": "bench.lbipam.io/Probe", "status": "True", "reason": "Probe",
        "message": "bench/controller.py ceiling", "lastTransitionTime": "2025-01-01T00:00:00Z",
    }  # fmt: skip
    rates = []
    print(f"ceiling: plain aiohttp, {IN_FLIGHT} in flight")
    for label, conditions in (("set", [probe]), ("clear", None)):
        body = {"status": {"conditions": conditions}}

        async def patch(i: int, body: Any = body) -> None:
            await request(http, "PATCH", f"{SVCS}/svc{i:05d}/status", body, MERGE)

        cpu = server.cpu_seconds()
        took = await in_parallel(services, patch)
        rates.append(services / took)
        row(
            f"status PATCH ({label} a condition)",
            f"{rates[-1]:8.0f}/s   server {per_call(server, cpu, services)}",
        )
    return statistics.mean(rates)


def log_lines(controller: Controller) -> None:
    row("'leading' log line", f"{controller.since_start(LEADING):8.2f} s")
    row("'leading: imported assignments' log line", f"{controller.since_start(IMPORTED):8.2f} s")


async def cold_start(
    controller: Controller, server: Server, http: aiohttp.ClientSession, seen: Seen, services: int
) -> tuple[float, float]:
    """Start the controller on `services` unassigned Services; returns assignments/s and API
    writes (Service writes and Events) per assignment."""
    cpu, own = server.cpu_seconds(), time.process_time()
    await controller.start()
    await until(
        lambda: len(seen.satisfied) >= services,
        60 + services / 20,
        "every Service satisfied",
        controller.check,
    )
    idle = await controller.idle_since()
    cpus = [controller.cpu_seconds(), server.cpu_seconds() - cpu, time.process_time() - own]
    times = sorted(seen.satisfied.values())
    start, first, done = controller.began, times[0], times[-1]
    rate = services / (done - start)
    tenth = max(1, services // 10)
    tenths = [
        tenth / max(times[k + tenth - 1] - times[k], 1e-9) for k in range(0, services - tenth + 1, tenth)
    ]
    async with http.get(POOLS) as response:
        used = sum(
            int(((p.get("status") or {}).get("ipv4") or {}).get("used") or 0)
            for p in (await response.json())["items"]
        )
    print(f"cold start: {services} Services unassigned; from the controller's spawn:")
    log_lines(controller)
    row("first Service satisfied", f"{first - start:8.2f} s")
    row("all Services satisfied", f"{done - start:8.2f} s")
    row("controller idle (Events and pools written)", f"{idle - start:8.2f} s")
    row("assignments/s, spawn -> all satisfied", f"{rate:8.0f}/s")
    row("assignments/s, first -> last satisfied", f"{services / max(done - first, 1e-9):8.0f}/s")
    row("assignments/s by tenth", " ".join(f"{r:.0f}" for r in tenths))
    writes = (seen.service_writes + sum(seen.events.values())) / services
    row("Service writes seen per assignment", f"{seen.service_writes / services:8.2f}")
    row("Events created per assignment", f"{sum(seen.events.values()) / services:8.2f}   {dict(seen.events)}")
    row("pool status writes; pools' ipv4.used summed", f"{seen.pool_writes:8d}; {used}")
    row(
        "CPU per assignment: controller, server, bench",
        "{:8.2f}, {:.2f}, {:.2f} ms".format(*(1000 * c / services for c in cpus)),
    )
    return rate, writes


async def restart(
    controller: Controller, http: aiohttp.ClientSession, seen: Seen, before: dict[str, str]
) -> float:
    """Stop and start the controller with every Service assigned; returns seconds to ready."""
    stopped = await controller.stop()
    written = seen.writes()
    await controller.start()
    await until(lambda: IMPORTED in controller.lines, 120, "the import log line", controller.check)
    ready = await controller.idle_since() - controller.began
    await asyncio.sleep(QUIET)  # a quiet period in which any late write would still show up
    print(f"restart: SIGTERM -> exited in {stopped:.2f} s; {len(before)} Services assigned; from the spawn:")
    log_lines(controller)
    row("ready (idle after the first full pass)", f"{ready:8.2f} s")
    _, after = await bare_list(http, SVCS, "Services, after it")
    changed = sum(1 for name, rv in before.items() if after.get(name) != rv)
    row("Services whose resourceVersion changed", f"{changed:8d}   (must be 0)")
    seen.report_writes(written)
    return ready


async def latency(
    controller: Controller, http: aiohttp.ClientSession, seen: Seen, count: int, pools: int
) -> None:
    """`count` creates at a steady RATE/s; create acknowledged -> satisfied seen in the watch."""
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}

    async def create(name: str, pool: int) -> None:
        sent[name] = time.perf_counter()
        await request(http, "POST", SVCS, service(name, pool))
        acked[name] = time.perf_counter()

    tasks = []
    before = seen.writes()
    began = time.perf_counter()
    for i in range(count):  # on a fixed schedule: a slow acknowledgement does not delay the next
        delay = began + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create(f"lat{i:05d}", i % pools)))
    await asyncio.gather(*tasks)
    await until(
        lambda: all(n in seen.satisfied for n in acked),
        120,
        "every latency Service satisfied",
        controller.check,
    )
    from_ack = [1000 * (seen.satisfied[n] - acked[n]) for n in acked]
    from_send = [1000 * (seen.satisfied[n] - sent[n]) for n in acked]
    print(f"latency: {count} creates at {RATE}/s (achieved {count / (max(sent.values()) - began):.1f}/s)")
    row(
        "create acked -> ingress seen, p50 p99 max",
        f"{pct(from_ack, 50):8.1f} {pct(from_ack, 99):7.1f} {max(from_ack):7.1f} ms",
    )
    row(
        "create sent -> ingress seen, p50 p99 max",
        f"{pct(from_send, 50):8.1f} {pct(from_send, 99):7.1f} {max(from_send):7.1f} ms",
    )
    seen.report_writes(before)


async def watch_all(http: aiohttp.ClientSession, seen: Seen) -> list[asyncio.Task[None]]:
    tasks = []
    for path, handler in ((SVCS, seen.service), (POOLS, seen.pool), (EVENTS, seen.event)):
        watch = Watch(http, path, handler)
        await watch.list()  # before the controller starts: every write it makes is seen
        tasks.append(asyncio.create_task(watch.run()))
    return tasks


async def run(services: int, pools: int, late: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        server = Server(Path(tmp) / "api.db", Path(tmp) / "kubeconfig")
        await server.start()
        controller = Controller(Path(tmp) / "kubeconfig")
        seen = Seen()
        watches: list[asyncio.Task[None]] = []
        try:
            async with server.session(limit=IN_FLIGHT * 2 + 4) as http:
                await setup(http, server, services, pools)
                patch_rate = await ceiling(http, server, services)
                await bare_list(http, SVCS, "Services, none assigned")
                watches = await watch_all(http, seen)
                rate, writes = await cold_start(controller, server, http, seen, services)
                print("ceiling, again:")
                list_time, before = await bare_list(http, SVCS, "Services, all assigned")
                await paged_list(http, SVCS, "Services")
                ready = await restart(controller, http, seen, before)
                await latency(controller, http, seen, late, pools)
            print("summary:")
            row(
                "assignments/s / status PATCH ceiling",
                f"{rate:.0f}/s / {patch_rate:.0f}/s = {rate / patch_rate:.2f}   (goal >= 0.5)",
            )
            row(
                f"API writes/s ({writes:.1f} each) / PATCH ceiling",
                f"{writes * rate:.0f}/s / {patch_rate:.0f}/s = {writes * rate / patch_rate:.2f}",
            )
            row(
                "restart ready / bare list",
                f"{ready:.2f} s / {list_time:.3f} s = {ready / list_time:.1f}   (goal <= 2)",
            )
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            if controller.process is not None and controller.process.returncode is None:
                await controller.stop()
            await server.stop()
            for line in controller.problems[:5]:
                print(f"controller warning: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--services", type=int, default=10_000, help="Services for the cold start and restart"
    )
    parser.add_argument("--pools", type=int, default=50, help="pools the Services are spread over")
    parser.add_argument("--latency-creates", type=int, default=1000, help=f"Services created at {RATE}/s")
    parser.add_argument("--quick", action="store_true", help="1000 Services, 200 latency creates")
    args = parser.parse_args()
    services, late = (1000, 200) if args.quick else (args.services, args.latency_creates)
    asyncio.run(run(services, args.pools, late))


if __name__ == "__main__":
    main()
