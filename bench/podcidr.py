"""Benchmark of the PodCIDR controller (`--podcidr-target node`). Prints its figures; asserts nothing.

    python bench/podcidr.py [--nodes 5000] [--dual-stack] [--quick]

`lbipam apiserver` (SQLite) and `lbipam controller --no-leader-elect --podcidr-target node` run as
child processes; this one writes with plain aiohttp and sees the results in plain aiohttp watches
("assigned": spec.podCIDRs seen). Pool 10.0.0.0/8 maskSize 24 (--dual-stack: + 2001:db8::/104 /120).
- join: N Nodes created (8 in flight) with the controller ready: first create -> all assigned;
- ceiling: Node label merge patches/s by a plain client, 8 in flight, the controller stopped; a
  bare list of the N Nodes (one request, parsed; median of 5);
- restart with N assigned: Nodes whose resourceVersion changed (must be 0); spawn and 'leading'
  line -> the PodCIDR controller's "ready" line (and idle, by /proc CPU);
- cold start: those Nodes deleted, N new ones created, then the controller started: spawn -> all;
- exhaustion through the controller: a /16 pool (256 /24s) created under 257 waiting Nodes ->
  256 assigned, the pool's Exhausted condition, the 257th's CIDRNotAvailable;
- exhaustion of the pure core: a /8 carved into /24s by PodCIDRPlanner alone (65,536 node views,
  no API), the 65,537th refused; then the 65,536 imported and planned again (a restart).
Also API writes and CPU (/proc) per assignment.
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
from _common import (
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
    install_crd,
    paged_list,
    request,
    row,
    until,
)
from _common import percentile as pct

from lbipam.core.addresses import cidr_block
from lbipam.core.pcplanner import PodCIDRPlanner
from lbipam.core.pcviews import FamilySpec, NodeView, PCPoolView
from lbipam.core.poolstatus import pool_status

NODES = "/api/v1/nodes"
POOLS = "/apis/lbipam.io/v1alpha1/podcidrpools"
EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
CONDITION = "lbipam.io/PodCIDRsAllocated"
IMPORTED = "leading: imported node CIDRs"
READY = "lbipam.controller.podcidr ready: every object planned"  # the LB controller says it too
BIG, SMALL = "bench-big", "bench-small"
Http = aiohttp.ClientSession
Writes = tuple[int, int, int]  # Node writes, pool status writes, Events
V4, V6 = ("10.0.0.0/8", 24), ("2001:db8::/104", 120)
SMALL_V4 = ("198.18.0.0/16", 24)  # RFC 2544's benchmarking range; outside the big pool


class Seen:
    """What the watches saw: when each Node was first assigned, its condition, writes by kind."""

    def __init__(self) -> None:
        self.assigned: dict[str, float] = {}
        self.cidrs: dict[str, int] = {}  # CIDRs per assigned Node
        self.reason: dict[str, tuple[str, float]] = {}  # our condition's reason, and when first seen
        self.exhausted: dict[str, float] = {}
        self.node_writes = self.pool_writes = 0
        self.events: Counter[tuple[str, str]] = Counter()  # (reason, Node)

    def writes(self) -> Writes:
        return self.node_writes, self.pool_writes, self.events.total()

    def report_writes(self, since: Writes) -> None:
        now = ", ".join(f"{a - b}" for a, b in zip(self.writes(), since, strict=True))
        row("writes seen: Node, pool status, Event", f"{now:>8}")

    def node(self, kind: str, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        self.node_writes += kind == "MODIFIED"
        cidrs = (obj.get("spec") or {}).get("podCIDRs") or []
        if cidrs and name not in self.assigned:
            self.assigned[name], self.cidrs[name] = at, len(cidrs)
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == CONDITION and self.reason.get(name, ("",))[0] != c.get("reason"):
                self.reason[name] = (str(c.get("reason")), at)

    def pool(self, kind: str, obj: dict[str, Any], at: float) -> None:
        self.pool_writes += kind == "MODIFIED"
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Exhausted" and c.get("status") == "True":
                self.exhausted.setdefault(obj["metadata"]["name"], at)

    def event(self, kind: str, obj: dict[str, Any], at: float) -> None:
        if kind == "ADDED":
            self.events[(obj.get("reason", ""), (obj.get("regarding") or {}).get("name", ""))] += 1

    def count(self, names: list[str]) -> int:
        return sum(1 for n in names if n in self.assigned)


def pool(name: str, *families: tuple[str, int]) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeSelector": {"matchLabels": {"bench-pool": name}}}
    for (cidr, mask), key in zip(families, ("ipv4", "ipv6"), strict=False):
        spec[key] = {"cidrs": [cidr], "maskSize": mask}
    kind = {"apiVersion": "lbipam.io/v1alpha1", "kind": "PodCIDRPool"}
    return {**kind, "metadata": {"name": name}, "spec": spec}


async def create_nodes(http: Http, names: list[str], label: str) -> tuple[float, dict[str, float]]:
    """Create the Nodes, 8 in flight; returns the elapsed seconds and when each was acknowledged."""
    acked: dict[str, float] = {}

    async def create(i: int) -> None:
        await request(http, "POST", NODES, {"metadata": {"name": names[i], "labels": {"bench-pool": label}}})
        acked[names[i]] = time.perf_counter()

    return await in_parallel(len(names), create), acked


def cpu_row(label: str, cpus: list[float], n: int) -> None:
    row(f"CPU ms per {label}: ctl, server, bench", "    " + ", ".join(f"{1000 * c / n:.2f}" for c in cpus))


class Bench:
    """The phases, in the order `run` calls them, sharing one server, controller and watches."""

    def __init__(self, server: Server, controller: Controller, http: Http, families: int) -> None:
        self.server, self.controller, self.http, self.families = server, controller, http, families
        self.seen = Seen()

    def cpus(self) -> list[float]:
        return [self.controller.cpu_seconds(), self.server.cpu_seconds(), time.process_time()]

    def since(self, before: list[float]) -> list[float]:
        return [a - b for a, b in zip(self.cpus(), before, strict=True)]

    async def all_assigned(self, names: list[str]) -> None:
        seen, c = self.seen, self.controller
        await until(lambda: seen.count(names) == len(names), 60 + len(names) / 20, "all assigned", c.check)

    async def join(self, names: list[str]) -> tuple[float, float]:
        """The controller is running and ready; create the Nodes; returns assignments/s and the
        controller's API writes/s."""
        writes, cpus = self.seen.writes(), self.cpus()
        began = time.perf_counter()
        took, acked = await create_nodes(self.http, names, BIG)
        await self.all_assigned(names)
        idle = await self.controller.idle_since()
        cpu = self.since(cpus)
        done = max(self.seen.assigned[n] for n in names)
        lag = [1000 * (self.seen.assigned[n] - acked[n]) for n in names]
        print(f"join: {len(names)} Nodes created with the controller running and ready")
        row("Node creates (8 in flight), while it works", f"{len(names) / took:8.0f}/s")
        row("first create -> all assigned", f"{done - began:8.2f} s")
        row("first create -> controller idle", f"{idle - began:8.2f} s")
        row("last create acked -> all assigned", f"{done - max(acked.values()):8.2f} s")
        late = f"{pct(lag, 50):8.1f} {pct(lag, 99):.1f} {max(lag):.1f} ms"
        row("create acked -> assigned, p50 p99 max", late)
        written = self.assignment_rows(names, writes, cpu, idle - began)
        return len(names) / (done - began), written

    def assignment_rows(self, names: list[str], writes: Writes, cpu: list[float], seconds: float) -> float:
        """Rows about the Nodes' assignment; returns the controller's API writes/s over `seconds`."""
        seen = self.seen
        node_writes, pool_writes, events = (a - b for a, b in zip(seen.writes(), writes, strict=True))
        allocated = sum(1 for n in names if seen.reason.get(n, ("",))[0] == "Allocated")
        partial = sum(1 for n in names if seen.cidrs.get(n) != self.families)  # not one per family
        row("Nodes with condition Allocated; partial", f"{allocated:8d}; {partial}   (must be 0)")
        row("Node writes per assignment", f"{node_writes / len(names):8.2f}")
        row("Events per assignment; pool status writes", f"{events / len(names):8.2f}; {pool_writes}")
        cpu_row("assignment", cpu, len(names))
        rate = (node_writes + pool_writes + events) / seconds
        row("the controller's API writes/s, to idle", f"{rate:8.0f}/s")
        return rate

    async def ceiling(self, names: list[str]) -> float:
        """Node label merge patches/s of a plain client, 8 in flight (set, then clear)."""
        rates = []
        print(f"ceiling: plain aiohttp, {IN_FLIGHT} in flight, the controller stopped")
        for label, value in (("set", "x"), ("clear", None)):
            body = {"metadata": {"labels": {"bench-probe": value}}}

            async def patch(i: int, body: Any = body) -> None:
                await request(self.http, "PATCH", f"{NODES}/{names[i]}", body, MERGE)

            cpu = self.server.cpu_seconds()
            rates.append(len(names) / await in_parallel(len(names), patch))
            used = 1000 * (self.server.cpu_seconds() - cpu) / len(names)
            row(f"Node PATCH ({label} a label)", f"{rates[-1]:8.0f}/s   server {used:.2f} ms CPU each")
        return statistics.mean(rates)

    def log_rows(self) -> None:
        c = self.controller
        row("'leading' log line", f"{c.since_start(LEADING):8.2f} s")
        row(f"'{IMPORTED}' log line", f"{c.since_start(IMPORTED):8.2f} s")
        row("podcidr 'ready: every object planned' line", f"{c.since_start(READY):8.2f} s")

    async def restart(self, before: dict[str, str]) -> tuple[float, float]:
        """Start the controller on N assigned Nodes; returns seconds to the ready line from the
        spawn and from the 'leading' line."""
        c, writes = self.controller, self.seen.writes()
        await c.start()
        await until(lambda: READY in c.lines, 120, "the podcidr ready line", c.check)
        idle = await c.idle_since() - c.began
        await asyncio.sleep(QUIET)  # a quiet period in which any late write would still show up
        print(f"restart: {len(before)} Nodes assigned; from the controller's spawn:")
        self.log_rows()
        row("idle after the first full pass", f"{idle:8.2f} s")
        from_leading = c.lines[READY] - c.lines.get(LEADING, c.began)
        row("ready line, from the 'leading' line", f"{from_leading:8.2f} s")
        _, after = await bare_list(self.http, NODES, "Nodes, after it")
        changed = sum(1 for name, rv in before.items() if after.get(name) != rv)
        row("Nodes whose resourceVersion changed", f"{changed:8d}   (must be 0)")
        self.seen.report_writes(writes)
        return c.since_start(READY), from_leading

    async def cold_start(self, names: list[str]) -> tuple[float, float]:
        """Start the controller on N unassigned Nodes; returns assignments/s from the spawn and
        the controller's API writes/s."""
        c, seen = self.controller, self.seen
        writes, cpus = seen.writes(), [0.0, self.server.cpu_seconds(), time.process_time()]
        await c.start()
        await self.all_assigned(names)
        idle = await c.idle_since()
        cpu = self.since(cpus)
        times = sorted(seen.assigned[n] for n in names)
        print(f"cold start: {len(names)} Nodes unassigned; from the controller's spawn:")
        self.log_rows()
        row("first Node assigned", f"{times[0] - c.began:8.2f} s")
        row("all Nodes assigned", f"{times[-1] - c.began:8.2f} s")
        row("controller idle (conditions, Events written)", f"{idle - c.began:8.2f} s")
        rate = len(names) / (times[-1] - c.began)
        leading = c.lines.get(LEADING, c.began)
        row("assignments/s, spawn -> all assigned", f"{rate:8.0f}/s")
        row("assignments/s, 'leading' -> all assigned", f"{len(names) / (times[-1] - leading):8.0f}/s")
        row("assignments/s, first -> last assigned", f"{len(names) / max(times[-1] - times[0], 1e-9):8.0f}/s")
        written = self.assignment_rows(names, writes, cpu, idle - c.began)
        start = c.cpu_at.get(LEADING, 0.0)  # its start-up: imports, informers' lists
        each = 1000 * (cpu[0] - start) / len(names)
        row("controller CPU: to 'leading'; after, each", f"{start:8.2f} s; {each:.2f} ms")
        return rate, written

    async def exhaust(self) -> None:
        """A /16 pool (256 node CIDRs) created under 257 waiting Nodes."""
        c, seen, http = self.controller, self.seen, self.http
        names = [f"small-{i:03d}" for i in range(257)]
        await create_nodes(http, names, SMALL)
        await until(lambda: all(n in seen.reason for n in names), 60, "NoPool on the waiting Nodes", c.check)
        await c.idle_since()
        writes, cpus = seen.writes(), self.cpus()
        began = time.perf_counter()
        await request(http, "POST", POOLS, pool(SMALL, SMALL_V4))

        def refused() -> list[str]:
            return [n for n in names if seen.reason.get(n, ("",))[0] == "CIDRNotAvailable"]

        def finished() -> bool:
            return seen.count(names) >= 256 and SMALL in seen.exhausted and bool(refused())

        await until(finished, 120, "256 assigned, Exhausted, and CIDRNotAvailable", c.check)
        idle = await c.idle_since()
        done = max(seen.assigned[n] for n in names if n in seen.assigned)
        last = refused()[0]
        print(f"exhaustion through the controller: {SMALL_V4[0]} maskSize {SMALL_V4[1]} under 257 Nodes")
        row("pool created -> 256 assigned", f"{done - began:8.2f} s   ({seen.count(names)} assigned)")
        row("pool created -> pool Exhausted=True seen", f"{seen.exhausted[SMALL] - began:8.2f} s")
        row(f"pool created -> {last} CIDRNotAvailable", f"{seen.reason[last][1] - began:8.2f} s")
        warned = seen.events[("CIDRNotAvailable", last)]
        row(f"Events CIDRNotAvailable about {last}", f"{warned:8d}   (one of them for NoPool, before)")
        row("pool created -> controller idle", f"{idle - began:8.2f} s")
        seen.report_writes(writes)
        cpu_row("node CIDR", self.since(cpus), 256)


def carve_core(prefix: int, families: int) -> None:
    """The pure core: 10.0.0.0/`prefix` (dual-stack: and an IPv6 range of as many /120s) carved
    into /24s, node view by node view, until exhausted; then a restart's import. No API."""
    per = 2 ** (24 - prefix)
    v6 = f"2001:db8::/{120 - (24 - prefix)}"
    fam = {4: FamilySpec((cidr_block(f"10.0.0.0/{prefix}"),), 24)}
    if families == 2:
        fam[6] = FamilySpec((cidr_block(v6),), 120)
    views = [NodeView(f"n{i:05d}", uid=f"u{i}") for i in range(per + 1)]
    what = f"10.0.0.0/{prefix}" + (f" + {v6}" if families == 2 else "")
    print(f"exhaustion of the pure core (PodCIDRPlanner alone, no API): {what}, {per} node CIDRs each")
    planner = PodCIDRPlanner()
    began = time.perf_counter()
    planner.set_pools([PCPoolView("core", families=fam)], now=0)
    plans = [planner.plan(v, now=0) for v in views[:per]]
    took = time.perf_counter() - began
    refused = planner.plan(views[per], now=0)
    status = pool_status(planner.pools["core"], None, changes=True)
    exhausted = {t: c.status for t, c in status.conditions}.get("Exhausted")
    row(f"{per} node views planned", f"{took:8.2f} s   {per / took:.0f} nodes/s")
    row(f"node {per + 1}: reason; pool Exhausted", f"{refused.condition.reason:>8}; {exhausted}")
    row("distinct CIDRs handed out", f"{len({c for p in plans for c in p.cidrs}):8d}")
    assigned = [NodeView(v.name, uid=v.uid, cidrs=p.cidrs) for v, p in zip(views, plans, strict=False)]
    restarted, began = PodCIDRPlanner(), time.perf_counter()
    restarted.set_pools([PCPoolView("core", families=fam)], now=0)
    for view in assigned:
        restarted.import_node(view, now=0)
    imported = time.perf_counter()
    replans = [restarted.plan(v, now=0) for v in assigned]
    times = f"{imported - began:8.2f} s; {time.perf_counter() - imported:.2f} s"
    same = sum(1 for p, q in zip(plans, replans, strict=True) if p.cidrs == q.cidrs and not q.events)
    row(f"restart: {per} imported; planned again", f"{times}   unchanged {same}")


async def setup(http: Http, seen: Seen, families: int) -> list[asyncio.Task[None]]:
    """The CRDs, the big pool, and the watches (listed before the controller starts)."""
    for crd in ("lbipam.io_podcidrpools.yaml", "lbipam.io_loadbalancerippools.yaml"):
        await install_crd(http, ROOT / "crds" / crd)  # the LB controller runs beside it
    await request(http, "POST", POOLS, pool(BIG, *(V4, V6)[:families]))
    print(f"setup: PodCIDRPool {BIG}: " + ", ".join(f"{c} maskSize {m}" for c, m in (V4, V6)[:families]))
    tasks = []
    for path, handler in ((NODES, seen.node), (POOLS, seen.pool), (EVENTS, seen.event)):
        watch = Watch(http, path, handler)
        await watch.list()
        tasks.append(asyncio.create_task(watch.run()))
    return tasks


async def phases(bench: Bench, count: int) -> None:
    controller, http = bench.controller, bench.http
    await controller.start()
    await until(lambda: READY in controller.lines, 60, "the podcidr ready line", controller.check)
    joined = [f"join-{i:05d}" for i in range(count)]
    join = await bench.join(joined)
    await controller.stop()
    patch_rate = await bench.ceiling(joined)
    list_time, before = await bare_list(http, NODES, "Nodes, all assigned")
    await paged_list(http, NODES, "Nodes")  # as the controller's informer lists
    ready, from_leading = await bench.restart(before)
    await controller.stop()
    await in_parallel(count, lambda i: request(http, "DELETE", f"{NODES}/{joined[i]}", {}))
    fresh = [f"cold-{i:05d}" for i in range(count)]
    await create_nodes(http, fresh, BIG)
    cold = await bench.cold_start(fresh)
    await bench.exhaust()
    print("summary:")
    for label, (rate, written) in (("join", join), ("cold start", cold)):
        ratio = f"{rate:.0f}/s / {patch_rate:.0f}/s = {rate / patch_rate:.2f}"
        row(f"{label}: assignments/s / PATCH ceiling", f"{ratio}   (goal >= 0.5)")
        ratio = f"{written:.0f}/s / {patch_rate:.0f}/s = {written / patch_rate:.2f}"
        row(f"{label}: API writes/s / PATCH ceiling", ratio)
    row("restart: ready from spawn; from 'leading'", f"{ready:.2f} s; {from_leading:.2f} s")
    ratio = f"{from_leading:.2f} s / {list_time:.3f} s = {from_leading / list_time:.1f}"
    row("restart: ready from 'leading' / bare list", ratio)


async def run(count: int, families: int, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-podcidr-") as tmp:
        server = Server(Path(tmp) / "api.db", Path(tmp) / "kubeconfig")
        await server.start()
        args, marks = ("--podcidr-target", "node", *extra), (LEADING, IMPORTED, READY)
        controller = Controller(Path(tmp) / "kubeconfig", args, marks)
        watches: list[asyncio.Task[None]] = []
        try:
            async with server.session(limit=IN_FLIGHT * 2 + 4) as http:
                bench = Bench(server, controller, http, families)
                watches = await setup(http, bench.seen, families)
                await phases(bench, count)
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
            if controller.process is not None and controller.process.returncode is None:
                await controller.stop()
            await server.stop()
            # Warning Events (CIDRNotAvailable) are logged at WARNING too; show the other lines.
            others = [line for line in controller.problems if "lbipam.k8s.events event " not in line]
            print(f"controller WARNING/ERROR lines: {len(controller.problems)}, not Events: {len(others)}")
            for line in others[:5]:
                print(f"  {line}")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--nodes", type=int, default=5000, help="Nodes joining, restarted on, cold-started")
    parser.add_argument("--dual-stack", action="store_true", help="the big pool serves IPv6 too")
    parser.add_argument("--quick", action="store_true", help="500 Nodes; the core carves a /12, not a /8")
    parser.add_argument("--controller-arg", action="append", default=[], help="passed to the controller")
    args = parser.parse_args()
    families = 2 if args.dual_stack else 1
    carve_core(12 if args.quick else 8, families)
    asyncio.run(run(500 if args.quick else args.nodes, families, args.controller_arg))


if __name__ == "__main__":
    main()
