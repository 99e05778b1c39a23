"""The controller's /metrics, /healthz and /readyz over real HTTP, with the controller running in
this process against the embedded API server (real client, real HTTP both ways).

The metrics are asserted exactly, after the controllers have settled: pool addresses by family and
state (equal to what the pools' status says), exhaustion, allocation results (also checked against
the Events the controller recorded), the leader gauge; a standby's view; totals that survive a new
leadership term. Each app has its own registry: several run in this one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDROptions
from lbipam.k8s.client import connect
from lbipam.k8s.resources import EVENTS, NODES, PODCIDRPOOLS, SERVICES
from lbipam.observe.metrics import controller_registry
from lbipam.observe.server import ObserveServer
from tests.controller_harness import Running, settled_read, until
from tests.helpers import eventually
from tests.lbipam_harness import candidate, pool, service
from tests.podcidr_harness import PCApi, node, pcpool

Obj = dict[str, Any]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SMALL = "192.0.2.10-192.0.2.11"  # two addresses
PINNED_SMALL = {"lbipam.io/pool": "small"}


async def scrape(url: str) -> Samples:
    """Every sample of GET `url`/metrics: (name, labels) -> value."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def status(url: str, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}{path}") as r:
        return r.status


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def results(samples: Samples, name: str) -> dict[str, float]:
    """result label -> value of a *_total counter, only the non-zero ones."""
    return {dict(k)["result"]: v for k, v in series(samples, name).items() if v}


@dataclass
class Observed:
    app: ControllerApp
    server: ObserveServer
    running: Running | None = None

    def run(self, name: str = "controller") -> Running:
        """Start the app as a task (the endpoints already serve)."""
        task = asyncio.create_task(self.app.run(), name=name)
        self.running = Running(self.app, self.app.kube, task, name)
        return self.running

    async def scrape(self) -> Samples:
        if self.running is not None:
            self.running.alive()
        return await scrape(self.server.url)


@contextlib.asynccontextmanager
async def observed(kubeconfig: Path, leader: LeaderOptions, podcidr: str = "node") -> AsyncIterator[Observed]:
    """A ControllerApp (reuse delays 0) with its endpoints on 127.0.0.1, wired as `lbipam
    controller` wires them (`controller_registry`, `app.ready`); `run()` starts the app."""
    kube = await connect(str(kubeconfig))
    settings = PodCIDRSettings(podcidr, options=PodCIDROptions(reuse_delay=0.0))
    app = ControllerApp(kube, LBOptions(reuse_delay=0.0), leader, settings)
    server = ObserveServer(controller_registry(app), app.ready, "127.0.0.1", 0)
    o = Observed(app, server)
    try:
        await server.start()
        yield o
    finally:
        await server.stop()
        if o.running is not None:
            await o.running.stop()  # closes the client too
        else:
            await kube.close()


async def settle(app: ControllerApp, api: PCApi) -> None:
    """Until both controllers have nothing left to do (tests/controller_harness.settled_read)."""
    lb, pc = app.lb, app.podcidr
    assert pc is not None

    async def lb_read() -> list[list[Obj]]:
        return list(await asyncio.gather(api.services(), api.pools(), api.namespaces()))

    async def pc_read() -> list[list[Obj]]:
        return list(await asyncio.gather(api.nodes(), api.pcpools()))

    async def both() -> bool:
        done_lb = await settled_read(lb, lb.status, lb_read, (lb.services, lb.pools, lb.namespaces))
        done_pc = await settled_read(pc, pc.status, pc_read, (pc.nodes, pc.pools))
        return done_lb is not None and done_pc is not None

    await until(both, timeout=20)


async def event_counts(api: PCApi) -> dict[str, int]:
    """Event reason -> how many times it happened (a series counts its repeats)."""
    got: dict[str, int] = {}
    for event in (await api.kube.list_all(EVENTS, namespace="default")).items:
        repeats = int((event.get("series") or {}).get("count") or 1)
        got[event["reason"]] = got.get(event["reason"], 0) + repeats
    return got


def status_counts(obj: Obj, family: int) -> dict[str, float]:
    got = (obj.get("status") or {}).get(f"ipv{family}") or {}
    return {state: float(got[state]) for state in ("total", "used", "available")}


def pool_series(samples: Samples, name: str, pool_name: str) -> dict[tuple[str, str], float]:
    """(family, state) -> value of one pool's address (or CIDR) series."""
    return {
        (dict(k)["family"], dict(k)["state"]): v
        for k, v in series(samples, name).items()
        if dict(k)["pool"] == pool_name
    }


# ---- the tests -----------------------------------------------------------------------------------
async def test_health_and_readiness(kubeconfig: Path, api: PCApi) -> None:
    """/healthz answers from the start; /readyz only once the informers synced and, leading,
    the first round is planned; unknown paths are 404."""
    async with observed(kubeconfig, LeaderOptions(enabled=False)) as o:
        url = o.server.url
        assert await status(url, "/healthz") == 200
        assert await status(url, "/readyz") == 503  # not started: nothing synced
        o.run()
        await eventually(lambda: o.app.podcidr is not None and o.app.podcidr.ready.is_set())
        await eventually(o.app.lb.ready.is_set)
        await eventually(o.app.bgp.ready.is_set)  # the BGP Ready conditions written once too
        assert await status(url, "/readyz") == 200
        assert await status(url, "/healthz") == 200
        assert await status(url, "/nothing") == 404


async def test_lb_and_podcidr_metrics(kubeconfig: Path, api: PCApi) -> None:
    async with observed(kubeconfig, LeaderOptions(enabled=False)) as o:
        o.run()
        await eventually(o.app.ready)
        samples = await o.scrape()
        assert series(samples, "lbipam_pool_addresses") == {}
        assert value(samples, "lbipam_leader", controller="lbipam") == 1.0
        assert value(samples, "lbipam_leader", controller="podcidr") == 1.0
        assert value(samples, "lbipam_allocations_total", result="outOfIPs") == 0.0  # exists at 0
        assert value(samples, "lbipam_podcidr_allocations_total", result="cidrNotAvailable") == 0.0

        # LB-IPAM: a pool of two (pinned-only), a dual-stack pool; a, b fill "small", c waits.
        # (Pools settle first: a Service or Node seen before its pool would fail with noPool once.)
        await api.make(
            pool("small", SMALL, autoAssign=False),
            pool("dual", "198.51.100.1-198.51.100.4", "2001:db8::1-2001:db8::8"),
        )
        # PodCIDR: room for two /26s, for labelled nodes only.
        await api.create(
            PODCIDRPOOLS,
            pcpool("pods", (["203.0.113.0/25"], 26), selector={"matchLabels": {"pods": "yes"}}),
        )
        await settle(o.app, api)
        await api.make(service("a", annotations=PINNED_SMALL), service("b", annotations=PINNED_SMALL))
        await settle(o.app, api)
        await api.make(service("c", annotations=PINNED_SMALL))
        for name in ("n1", "n2"):
            await api.create(NODES, node(name, {"pods": "yes"}))
        await settle(o.app, api)
        samples = await o.scrape()
        assert pool_series(samples, "lbipam_pool_addresses", "small") == {
            ("ipv4", "total"): 2.0,
            ("ipv4", "used"): 2.0,
            ("ipv4", "available"): 0.0,
        }
        assert value(samples, "lbipam_pool_exhausted", pool="small", family="ipv4") == 1.0
        assert results(samples, "lbipam_allocations_total") == {"allocated": 2.0, "outOfIPs": 1.0}
        assert value(samples, "lbipam_podcidr_pool_exhausted", pool="pods", family="ipv4") == 1.0
        assert results(samples, "lbipam_podcidr_allocations_total") == {"allocated": 2.0}

        # b goes: c gets its address (reuse delay 0); n3 finds no room, n0 no pool; n1 goes, n3 gets its CIDR.
        await api.delete(SERVICES, "b", "default")
        await api.make(
            service("d", policy="RequireDualStack", families=("IPv4", "IPv6")),
            service("e", annotations={"lbipam.io/pool": "missing"}),
        )
        await api.create(NODES, node("n3", {"pods": "yes"}))
        await api.create(NODES, node("n0"))
        await settle(o.app, api)
        assert results(await o.scrape(), "lbipam_podcidr_allocations_total") == {
            "allocated": 2.0,
            "cidrNotAvailable": 1.0,
            "noPool": 1.0,
        }
        await api.leave("n1")
        await settle(o.app, api)
        samples = await o.scrape()

        assert results(samples, "lbipam_allocations_total") == {
            "allocated": 5.0,  # a, b, c, d's two
            "released": 1.0,  # b's
            "outOfIPs": 1.0,  # c, once (not at every replan)
            "noPool": 1.0,  # e
        }
        assert results(samples, "lbipam_podcidr_allocations_total") == {
            "allocated": 3.0,
            "released": 1.0,
            "cidrNotAvailable": 1.0,
            "noPool": 1.0,
        }
        assert pool_series(samples, "lbipam_pool_addresses", "dual") == {
            ("ipv4", "total"): 4.0,
            ("ipv4", "used"): 1.0,
            ("ipv4", "available"): 3.0,
            ("ipv6", "total"): 8.0,
            ("ipv6", "used"): 1.0,
            ("ipv6", "available"): 7.0,
        }
        assert value(samples, "lbipam_pool_exhausted", pool="dual", family="ipv4") == 0.0
        assert value(samples, "lbipam_pool_exhausted", pool="dual", family="ipv6") == 0.0
        assert value(samples, "lbipam_pool_exhausted", pool="small", family="ipv4") == 1.0
        assert pool_series(samples, "lbipam_podcidr_pool_cidrs", "pods") == {
            ("ipv4", "total"): 2.0,
            ("ipv4", "used"): 2.0,
            ("ipv4", "available"): 0.0,
        }
        assert value(samples, "lbipam_podcidr_pool_exhausted", pool="pods", family="ipv4") == 1.0

        # The same numbers as the pools' status and the Events say.
        for obj in await api.pools():
            name = obj["metadata"]["name"]
            for family in (4, 6):
                mine = {
                    s: v
                    for (f, s), v in pool_series(samples, "lbipam_pool_addresses", name).items()
                    if f == f"ipv{family}"
                }
                assert mine in ({}, status_counts(obj, family)), (name, family)
        assert status_counts(await api.pcpool("pods"), 4) == {"total": 2.0, "used": 2.0, "available": 0.0}
        events = await event_counts(api)
        assert (events.get("IPAllocated"), events.get("IPReleased")) == (5, 1)
        assert (events.get("CIDRAssigned"), events.get("CIDRReleased")) == (3, 1)


async def test_counts_survive_a_new_leadership_term(kubeconfig: Path, api: PCApi) -> None:
    """Each term plans with a new writer; the process's totals still only go up."""
    async with observed(kubeconfig, LeaderOptions(enabled=False), podcidr="none") as o:
        o.run()
        await eventually(o.app.ready)
        await api.make(pool("dual", "198.51.100.1-198.51.100.4"), service("a"))
        # No scrape before the step-down: the step-down itself must keep the first term's counts.
        await until(lambda: _has_ingress(api, "a"))
        await eventually(o.app.lb.quiet)
        # Step down and lead again, as a lost and regained Lease does (no elector here).
        await o.app._stop_leading()
        assert value(await o.scrape(), "lbipam_leader", controller="lbipam") == 0.0
        await o.app._start_leading()
        await api.make(service("b"))
        await eventually(lambda: o.app.lb.quiet() and o.app.results("lbipam")["allocated"] == 2)
        samples = await o.scrape()
        assert value(samples, "lbipam_allocations_total", result="allocated") == 2.0
        assert value(samples, "lbipam_leader", controller="lbipam") == 1.0
        assert series(samples, "lbipam_podcidr_allocations_total") == {}  # --podcidr-target none
        assert series(samples, "lbipam_leader") == {frozenset({("controller", "lbipam")}): 1.0}


async def _has_ingress(api: PCApi, name: str) -> bool:
    obj = await api.svc(name)
    return bool(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


async def test_standby_and_handover(kubeconfig: Path, api: PCApi) -> None:
    """Two replicas, one process, two registries: the standby is ready, reports leader 0 and no
    pool series; when the leader goes, it takes over and reports the pools."""
    await api.make(pool("dual", "198.51.100.1-198.51.100.4"), service("a"))
    async with (
        observed(kubeconfig, candidate("one"), podcidr="none") as one,
        observed(kubeconfig, candidate("two"), podcidr="none") as two,
    ):
        one.run("one")
        two.run("two")
        await eventually(lambda: one.app.leading or two.app.leading)
        leader, standby = (one, two) if one.app.leading else (two, one)
        await eventually(lambda: leader.app.lb.quiet() and leader.app.bgp.quiet() and standby.app.ready())
        assert await status(standby.server.url, "/readyz") == 200
        assert await status(leader.server.url, "/readyz") == 200
        theirs, mine = await leader.scrape(), await standby.scrape()
        assert value(theirs, "lbipam_leader", controller="lbipam") == 1.0
        assert value(mine, "lbipam_leader", controller="lbipam") == 0.0
        assert pool_series(theirs, "lbipam_pool_addresses", "dual")[("ipv4", "used")] == 1.0
        assert series(mine, "lbipam_pool_addresses") == {}
        assert value(theirs, "lbipam_allocations_total", result="allocated") == 1.0
        assert value(mine, "lbipam_allocations_total", result="allocated") == 0.0

        assert leader.running is not None
        await leader.running.stop()  # releases the Lease
        await eventually(lambda: standby.app.leading and standby.app.lb.quiet(), timeout=20)
        mine = await standby.scrape()
        assert value(mine, "lbipam_leader", controller="lbipam") == 1.0
        assert pool_series(mine, "lbipam_pool_addresses", "dual")[("ipv4", "used")] == 1.0
        # It imported a's address: nothing newly allocated in this process.
        assert value(mine, "lbipam_allocations_total", result="allocated") == 0.0
