"""Benchmark of the LB-IPAM controller on the embedded API. Prints its figures; asserts nothing.

    python bench/controller.py [--sizes 10000,50000] [--pools 50] [--steady 50000]
                               [--blocks 100000] [--quick]

The API server (`lbipam apiserver`, SQLite file, HTTPS and a token: the default way) and the
controller (`lbipam controller --no-leader-elect`) each run in their own process, as in
production; this process creates objects with plain aiohttp and sees the results through plain
aiohttp watches. In one run, for each size N (a fresh server each):
- the ceiling: merge patches/s of Service status by a plain aiohttp client (8 in flight), and the
  time of a bare list of every Service (one request, parsed; median of 5), with the Services
  unassigned and assigned (the ratio uses the latter); a list in pages of 500 for comparison;
- cold start: N Services across P pools (selected by label) exist before the controller starts;
  controller spawn -> all N satisfied (ingress and IPAMRequestSatisfied=True seen in a watch), and
  assignments/s, as a ratio of the PATCH ceiling (goal >= 0.6); spawn -> every IPAllocated Event
  and allocated-from annotation seen, as a ratio of spawn -> all satisfied (goal <= 1.3);
- restart with N assigned: SIGTERM, start again; Services whose resourceVersion changed (must be
  0) and time to ready, as a ratio of the bare list (goal <= 2). Ready = the controller has gone
  idle (under 20 ms of CPU in a second, from /proc) after its first full pass: it logs no line
  for that moment, and "leading: imported assignments" comes before that pass;
then (bench/_lbscale.py) the steady rate: 50,000 creates at 280/s into one /8 with the controller
running, create -> ingress p50/p99 (goal p99 <= 100 ms) and the controller's peak RSS (goal <=
600 MB); and a pool of 100,000 blocks: pool POST -> first assignment, and the worst latency of
/healthz polled every 50 ms meanwhile. A summary prints every goal's figure and ratio.
Also: API writes per assignment (Service writes and Events seen in the watches), the pools'
counters summed, and CPU per assignment of the controller and server (/proc) and of this process.
--quick (a smoke run of a minute or two): sizes 1000 and 3000, 3000 steady creates, 20,000 blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    IMPORTED,
    IN_FLIGHT,
    LEADING,
    MERGE,
    QUIET,
    Controller,
    Server,
    Watch,
    bare_list,
    in_parallel,
    paged_list,
    request,
    row,
    run_client,
    until,
)
from _lbscale import (
    ALLOCATED_FROM,
    EVENTS,
    POOLS,
    SVCS,
    big_pool,
    install_crds,
    pool,
    satisfied,
    service,
    steady,
)


class Seen:
    """What the watches saw: when each Service was first satisfied, first carried the
    allocated-from annotation and first had an IPAllocated Event; writes by kind."""

    def __init__(self) -> None:
        self.satisfied: dict[str, float] = {}
        self.annotated: dict[str, float] = {}
        self.evented: dict[str, float] = {}
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
        meta = obj["metadata"]
        name = meta["name"]
        if kind == "MODIFIED":
            self.service_writes += 1
        if name not in self.satisfied and satisfied(obj):
            self.satisfied[name] = at
        if name not in self.annotated and ALLOCATED_FROM in (meta.get("annotations") or {}):
            self.annotated[name] = at

    def pool(self, kind: str, obj: dict[str, Any], at: float) -> None:
        self.pool_writes += kind == "MODIFIED"

    def event(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind == "ADDED":
            reason = obj.get("reason", "")
            self.events[reason] += 1
            name = (obj.get("regarding") or {}).get("name", "")
            if reason == "IPAllocated" and name not in self.evented:
                self.evented[name] = at

    def written(self, names: int) -> float | None:
        """When the last of `names` Services had both its annotation and its Event, or None."""
        if len(self.annotated) < names or len(self.evented) < names:
            return None
        return max(*self.annotated.values(), *self.evented.values())


def pool_name(index: int) -> str:
    return f"bench-p{index:02d}"


async def setup(http: aiohttp.ClientSession, server: Server, services: int, pools: int) -> None:
    """The pool CRD, `pools` pools of a /20 each, then `services` Services spread over them."""
    await install_crds(http)
    for index in range(pools):
        await request(http, "POST", POOLS, pool(pool_name(index), [{"cidr": f"10.{100 + index}.0.0/20"}]))

    async def create(i: int) -> None:
        await request(http, "POST", SVCS, service(f"svc{i:05d}", pool_name(i % pools)))

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
) -> dict[str, float]:
    """Start the controller on `services` unassigned Services; returns assignments/s, API writes
    (Service writes and Events) per assignment, and spawn -> all satisfied and -> all written."""
    cpu, own = server.cpu_seconds(), time.process_time()
    await controller.start()
    await until(
        lambda: len(seen.satisfied) >= services,
        60 + services / 20,
        "every Service satisfied",
        controller.check,
    )
    await until(
        lambda: seen.written(services) is not None,
        60 + services / 10,
        "every Event and annotation",
        controller.check,
    )
    idle = await controller.idle_since()
    cpus = [controller.cpu_seconds(), server.cpu_seconds() - cpu, time.process_time() - own]
    times = sorted(seen.satisfied.values())
    start, first, done = controller.began, times[0], times[-1]
    written = seen.written(services) or float("nan")
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
    row("every IPAllocated Event and annotation seen", f"{written - start:8.2f} s")
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
    row("controller peak RSS (VmHWM)", f"{controller.peak_rss_mb():8.0f} MB")
    return {"rate": rate, "writes": writes, "satisfied": done - start, "written": written - start}


async def restart(
    controller: Controller, http: aiohttp.ClientSession, seen: Seen, before: dict[str, str]
) -> tuple[float, int]:
    """Stop and start the controller with every Service assigned; returns seconds to ready and
    the Services whose resourceVersion changed."""
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
    return ready, changed


async def watch_all(http: aiohttp.ClientSession, seen: Seen) -> list[asyncio.Task[None]]:
    tasks = []
    for path, handler in ((SVCS, seen.service), (POOLS, seen.pool), (EVENTS, seen.event)):
        watch = Watch(http, path, handler)
        await watch.list()  # before the controller starts: every write it makes is seen
        tasks.append(asyncio.create_task(watch.run()))
    return tasks


async def one_size(services: int, pools: int) -> dict[str, float]:
    """Ceiling, cold start and restart with `services` Services, against a fresh server."""
    print(f"== {services} Services, {pools} pools")
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
                cold = await cold_start(controller, server, http, seen, services)
                print("ceiling, again:")
                list_time, before = await bare_list(http, SVCS, "Services, all assigned")
                await paged_list(http, SVCS, "Services")
                ready, changed = await restart(controller, http, seen, before)
            return {**cold, "ceiling": patch_rate, "list": list_time, "ready": ready, "changed": changed}
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            if controller.process is not None and controller.process.returncode is None:
                await controller.stop()
            await server.stop()
            for line in controller.problems[:5]:
                print(f"controller warning: {line[:300]}")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def goal(met: bool) -> str:
    return "met" if met else "MISSED"


async def run(sizes: list[int], pools: int, steady_count: int, blocks: int) -> None:
    print(f"load average at the start: {loadavg()} ({os.cpu_count()} CPUs)")
    began = time.perf_counter()
    results = {n: await one_size(n, pools) for n in sizes}
    scale: dict[str, float] = {}
    if steady_count:
        print(f"== steady rate, {steady_count} Services")
        scale = await steady(steady_count)
    big: dict[str, float] = {}
    if blocks:
        print(f"== a pool of {blocks} blocks")
        big = await big_pool(blocks)
    print(f"summary ({time.perf_counter() - began:.0f} s; load average now {loadavg()}):")
    if scale:
        steady_summary(steady_count, scale)
    cold_summary(results)
    if big:
        row(f"pool of {blocks} blocks: first assignment", f"{big['first']:.2f} s")
        row(
            f"pool of {blocks} blocks: worst /healthz",
            f"{big['health']:.1f} ms   (goal ~100 ms: {goal(big['health'] <= 100)})",
        )


def steady_summary(steady_count: int, scale: dict[str, float]) -> None:
    row(
        f"steady {steady_count} at 280/s: p50, p99",
        f"{scale['p50']:.1f}, {scale['p99']:.1f} ms   (goal p99 <= 100 ms: {goal(scale['p99'] <= 100)})",
    )
    row(
        "steady: controller peak RSS",
        f"{scale['rss']:.0f} MB   (goal <= 600 MB: {goal(scale['rss'] <= 600)})",
    )


def cold_summary(results: dict[int, dict[str, float]]) -> None:
    for n, r in results.items():
        ratio = r["rate"] / r["ceiling"]
        row(
            f"cold {n}: assignments/s / PATCH ceiling",
            f"{r['rate']:.0f}/s / {r['ceiling']:.0f}/s = {ratio:.2f}   (goal >= 0.6: {goal(ratio >= 0.6)})",
        )
        ratio = r["written"] / r["satisfied"]
        row(
            f"cold {n}: Events+annotations / satisfied",
            f"{r['written']:.2f} s / {r['satisfied']:.2f} s = {ratio:.2f}"
            f"   (goal <= 1.3: {goal(ratio <= 1.3)})",
        )
        writes = r["writes"] * n / r["written"]  # spawn -> every write seen
        row(
            f"cold {n}: writes/s ({r['writes']:.1f} each) / ceiling",
            f"{writes:.0f}/s / {r['ceiling']:.0f}/s = {writes / r['ceiling']:.2f}",
        )
    for n, r in results.items():
        ratio = r["ready"] / r["list"]
        row(f"restart {n}: Services changed", f"{r['changed']:.0f}   (must be 0: {goal(r['changed'] == 0)})")
        row(
            f"restart {n}: ready / bare list",
            f"{r['ready']:.2f} s / {r['list']:.3f} s = {ratio:.1f}   (goal <= 2: {goal(ratio <= 2)})",
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="10000,50000",
        help="Services for the cold starts and restarts (comma list; '' none)",
    )
    parser.add_argument("--pools", type=int, default=50, help="pools the Services are spread over")
    parser.add_argument("--steady", type=int, default=50_000, help="Services created at 280/s (0: none)")
    parser.add_argument("--blocks", type=int, default=100_000, help="blocks of the big pool (0: none)")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,3000; 3000 steady; 20,000 blocks")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.steady, args.blocks = "1000,3000", 3000, 20_000
    sizes = [int(n) for n in args.sizes.split(",") if n]
    run_client(run(sizes, args.pools, args.steady, args.blocks))


if __name__ == "__main__":
    main()
