"""Two LB-IPAM controllers with leader election on, against one embedded API server: exactly one
leads and only it writes; when the leader goes (released lease, a dead leader's lease expiring,
renewals that fail) the other takes over, and no IP is ever held by two Services meanwhile.

A `Guard` watches every Service change the server makes and records any moment at which two
Services held one IP, so "never" covers the whole handover, not only the end state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.k8s.client import Kube
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import EVENTS, LEASES, SERVICES
from tests.helpers import eventually
from tests.lbipam_harness import Api, Obj, Running, candidate, counts, ingress, pool, reason, service, start

COUNT = 12


class Guard:
    """Sees every Service state the server goes through; remembers each IP held twice."""

    def __init__(self, kube: Kube) -> None:
        self.informer = Informer(kube, SERVICES)
        self.informer.add_handler(self._check)
        self.doubles: list[str] = []
        self.task: asyncio.Task[None] | None = None

    def _check(self, event: str, new: Obj, old: Obj | None) -> None:
        holders: dict[str, str] = {}
        for obj in self.informer.list():
            for ip in ingress(obj):
                name = obj["metadata"]["name"]
                if ip in holders:
                    self.doubles.append(f"{ip}: {holders[ip]} and {name}")
                holders[ip] = name

    async def __aenter__(self) -> Guard:
        self.task = asyncio.create_task(self.informer.run())
        await self.informer.synced.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def api(api: Api) -> Api:
    """tests/conftest.py's client, with pool "p" (32 addresses) made."""
    await api.make(pool("p", "192.0.2.0/27"))
    return api


@pytest.fixture
async def pair(kubeconfig: Path, api: Api) -> AsyncIterator[tuple[Running, Running]]:
    """Two candidates; (leader, follower) once one of them leads."""
    a = await start(kubeconfig, reuse_delay=0, leader=candidate("ctl-a"), name="ctl-a")
    b = await start(kubeconfig, reuse_delay=0, leader=candidate("ctl-b"), name="ctl-b")
    try:
        first = await eventually(lambda: leading(a, b), timeout=10)
        assert first is not None
        yield first, (b if first is a else a)
    finally:
        await a.stop()
        await b.stop()


def leads(ctl: Running) -> bool:
    return ctl.app.elector is not None and ctl.app.elector.is_leader


def leading(*ctls: Running) -> Running | None:
    now = [c for c in ctls if leads(c) and not c.stopped]
    assert len(now) <= 1, "two controllers lead at once"
    return now[0] if now else None


async def holder(api: Api) -> str:
    lease = await api.kube.get(LEASES, "lbipam-controller", namespace="default")
    return str(lease["spec"].get("holderIdentity") or "")


async def instances(api: Api) -> dict[str, int]:
    """Events per reportingInstance: who wrote them."""
    found: dict[str, int] = {}
    for event in (await api.kube.list_all(EVENTS, namespace="default")).items:
        found[event["reportingInstance"]] = found.get(event["reportingInstance"], 0) + 1
    return found


def never_wrote(ctl: Running) -> bool:
    return ctl.app.lb.status.writes == 0 and ctl.app.lb.planner is None and not ctl.app.lb.ready.is_set()


async def all_served(api: Api, count: int) -> bool:
    services = await api.services()
    return len(services) == count and all(reason(s) == ("True", "Satisfied") for s in services)


async def test_exactly_one_leads_and_only_it_writes(pair: tuple[Running, Running], api: Api) -> None:
    leader, follower = pair
    for i in range(COUNT):
        await api.make(service(f"s{i}"))
    await leader.settle(api)
    assert await all_served(api, COUNT)
    assert len({ip for s in await api.services() for ip in ingress(s)}) == COUNT
    assert await holder(api) == leader.name
    assert await instances(api) == {leader.name: COUNT}  # one IPAllocated each, all by the leader
    assert leader.app.lb.status.writes > 0
    assert never_wrote(follower)
    assert counts(await api.pool("p"))[1] == COUNT
    for svc in await api.services():  # both replicas write as one field manager; only one wrote
        writers = {m["manager"] for m in svc["metadata"]["managedFields"] if "f:status" in m["fieldsV1"]}
        assert writers == {"lbipam-controller"}


@pytest.mark.parametrize("release", [True, False], ids=["leader-releases", "leader-dies-lease-expires"])
async def test_the_other_takes_over_with_no_ip_held_twice(
    pair: tuple[Running, Running], api: Api, release: bool
) -> None:
    leader, follower = pair
    async with Guard(api.kube) as guard:
        for i in range(COUNT // 2):
            await api.make(service(f"s{i}"))
        await leader.settle(api)
        assert never_wrote(follower)
        assert leader.app.elector is not None
        leader.app.elector.release_on_cancel = release  # False: as if the process were killed
        stopping = asyncio.create_task(leader.stop())
        for i in range(COUNT // 2, COUNT):  # created while leadership moves
            await api.make(service(f"s{i}"))
        await stopping
        await eventually(lambda: leads(follower), timeout=10)
        await follower.settle(api)
        assert await all_served(api, COUNT)
    assert guard.doubles == []
    assert len({ip for s in await api.services() for ip in ingress(s)}) == COUNT
    assert await holder(api) == follower.name
    assert set(await instances(api)) <= {leader.name, follower.name}
    assert counts(await api.pool("p"))[1] == COUNT


async def test_a_leader_whose_renewals_fail_steps_down_before_another_leads(
    apiserver: EmbeddedAPIServer, pair: tuple[Running, Running], api: Api
) -> None:
    leader, follower = pair
    async with Guard(api.kube) as guard:
        await api.make(service("s0"))
        await leader.settle(api)
        apiserver.faults.fail_next_writes(10, 500, "leases")  # ~3 s of failed renewals > renew deadline
        await eventually(lambda: not leads(leader), timeout=10)
        written = leader.app.lb.status.writes, follower.app.lb.status.writes
        assert leading(leader, follower) is None
        for i in range(1, COUNT):  # created while nobody leads
            await api.make(service(f"s{i}"))
        if leading(leader, follower) is None:  # still nobody (the lease holds ~1.5 s more): nobody wrote
            assert (leader.app.lb.status.writes, follower.app.lb.status.writes) == written
        new = await eventually(lambda: leading(leader, follower), timeout=15)
        assert new is not None
        await new.settle(api)
        assert await all_served(api, COUNT)
    assert guard.doubles == []
    assert len({ip for s in await api.services() for ip in ingress(s)}) == COUNT
    assert await holder(api) == new.name
