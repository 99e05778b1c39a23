"""LB-IPAM state that must survive the controller: a real `lbipam controller` process against the
embedded API server, killed with SIGKILL (nothing drained, memory gone) or stopped with SIGTERM.

- an invalid pool edit changes nothing across a kill, whether made before or while no
  controller runs (status.accepted);
- the reuse delay of a released IP survives a kill, and a pool change that moves the range to
  another pool (status.heldBack);
- a pool deleted while no controller runs is a pool deleted: its Services move; an IP lbipam
  never handed out stays;
- SIGTERM drains: after a burst, every IPAllocated Event and every allocated-from annotation is
  written before the process exits;
- a speaker started while a pool is invalid and no controller runs announces what the pool
  served (it reads status.accepted), so the router keeps the route.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.resources import EVENTS, LBPOOLS, SERVICES
from tests.bgplab import PORT, have
from tests.controller_harness import until
from tests.lbipam_harness import (
    Api,
    allocated_from,
    condition,
    ingress,
    message,
    pool,
    reason,
    service,
)
from tests.process_harness import controller_process
from tests.speaker_harness import (
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    cluster,
    endpoint_slice,
    running_speaker,
    table,
)

IPS, POOL = "lbipam.io/ips", "lbipam.io/pool"
SATISFIED = ("True", "Satisfied")
Obj = dict[str, Any]


async def served(api: Api, name: str, *, note: bool = True) -> Obj:
    """Service `name` once the controller has decided about it (a condition) and, with `note`,
    when it holds IPs, written the annotation that says from which pools."""

    async def decided() -> Obj | None:
        got = await api.svc(name)
        noted = not note or not ingress(got) or allocated_from(got) is not None
        return got if condition(got) is not None and noted else None

    return await until(decided, timeout=30)


async def pool_where(api: Api, name: str, check: Any) -> Obj:
    """Pool `name` once `check(pool)` holds."""

    async def read() -> Obj | None:
        got = await api.pool(name)
        return got if check(got) else None

    return await until(read, timeout=30)


def ready(obj: Obj) -> tuple[str, str] | None:
    return reason(obj, "Ready")


def held_back(obj: Obj) -> dict[str, str]:
    """ip -> until, as the pool's status.heldBack lists them."""
    record = (obj.get("status") or {}).get("heldBack") or {}
    return {e["ip"]: e["until"] for e in record.get("addresses") or []}


# ---- an invalid edit ---------------------------------------------------------------------------
OVERLAPPING = {"blocks": [{"cidr": "192.0.2.0/29"}, {"start": "192.0.2.4", "stop": "192.0.2.5"}]}


@pytest.mark.parametrize("while_stopped", [False, True], ids=["edited-then-killed", "edited-while-down"])
async def test_an_invalid_edit_changes_nothing_across_a_kill(
    kubeconfig: Path, api: Api, tmp_path: Path, while_stopped: bool
) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"), service("t"))
    async with controller_process(kubeconfig, tmp_path / "first.log") as first:
        assert ingress(await served(api, "t")) == ["192.0.2.2"]
        await pool_where(api, "p", lambda p: (p["status"].get("accepted") or {}).get("blocks"))
        if not while_stopped:
            await api.patch(LBPOOLS, "p", {"spec": OVERLAPPING})
            await pool_where(api, "p", lambda p: ready(p) == ("False", "Invalid"))
        await first.kill()
    if while_stopped:
        await api.patch(LBPOOLS, "p", {"spec": OVERLAPPING})
    async with controller_process(kubeconfig, tmp_path / "second.log"):
        await api.make(service("u"))
        u = await served(api, "u")
        got = await pool_where(api, "p", lambda p: ready(p) == ("False", "Invalid"))
    assert (ingress(u), reason(u)) == (["192.0.2.3"], SATISFIED)  # from the blocks accepted before
    for name, ip in (("s", "192.0.2.1"), ("t", "192.0.2.2")):
        svc = await api.svc(name)
        assert (ingress(svc), reason(svc), allocated_from(svc)) == ([ip], SATISFIED, "p")
        assert [r for r in await api.reasons(name) if r != "IPAllocated"] == []
    assert "spec.blocks[1]" in message(got, "Ready")
    assert "still serving from the last valid spec (generation 1)" in message(got, "Ready")
    assert got["status"]["accepted"] == {
        "blocks": [{"cidr": "192.0.2.0/29"}],
        "allowFirstLastIPs": False,
        "avoidBuggyIPs": False,
        "generation": 1,
    }


async def test_a_spec_whose_rules_cannot_be_read_keeps_its_holders_across_a_kill(
    kubeconfig: Path, api: Api, tmp_path: Path
) -> None:
    """A selector the schema takes but the model refuses: the pool keeps the Services that hold
    its addresses and hands out nothing new, live and after a kill alike."""
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    bad_selector = {"serviceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}
    async with controller_process(kubeconfig, tmp_path / "first.log") as first:
        assert ingress(await served(api, "s")) == ["192.0.2.1"]
        await api.patch(LBPOOLS, "p", {"spec": bad_selector})
        await pool_where(api, "p", lambda p: ready(p) == ("False", "Invalid"))
        await first.kill()
    async with controller_process(kubeconfig, tmp_path / "second.log"):
        await api.make(service("new"))
        new = await served(api, "new")
        got = await api.pool("p")
    assert (ingress(new), reason(new)) == ([], ("False", "NoPool"))
    s = await api.svc("s")
    assert (ingress(s), reason(s)) == (["192.0.2.1"], SATISFIED)
    assert "spec.serviceSelector.matchExpressions[0].values" in message(got, "Ready")
    assert "keeping the Services that hold its addresses and handing out none" in message(got, "Ready")


# ---- the reuse delay ---------------------------------------------------------------------------
async def test_the_reuse_delay_survives_a_kill(kubeconfig: Path, api: Api, tmp_path: Path) -> None:
    await api.make(pool("p", "192.0.2.0/30"), service("a"), service("b"))
    flags = ("--reuse-delay", "300")  # far longer than the test: the IP cannot come back meanwhile
    async with controller_process(kubeconfig, tmp_path / "first.log", *flags) as first:
        assert ingress(await served(api, "b")) == ["192.0.2.2"]
        await api.delete(SERVICES, "a", "default")
        listed = await pool_where(api, "p", lambda p: "192.0.2.1" in held_back(p))
        await first.kill()
    assert listed["status"]["heldBack"]["addresses"][0]["service"] == "default/a"
    async with controller_process(kubeconfig, tmp_path / "second.log", *flags):
        await api.make(service("c"), service("asks", annotations={IPS: "192.0.2.1"}))
        c, asks = await served(api, "c"), await served(api, "asks")
        got = await api.pool("p")
    assert (ingress(c), reason(c)) == ([], ("False", "OutOfIPs"))
    assert (ingress(asks), reason(asks)) == ([], ("False", "AlreadyAllocated"))
    assert message(asks) == (
        "192.0.2.1 (lbipam.io/ips) was released by default/a and is held back by the reuse delay (300s)"
    )
    assert held_back(got) == held_back(listed)  # the same end, written again the same way
    assert got["status"]["ipv4"] == {"total": "2", "used": "1", "available": "0"}


async def test_the_reuse_delay_follows_a_range_moved_to_another_pool_and_a_kill(
    kubeconfig: Path, api: Api, tmp_path: Path
) -> None:
    await api.make(pool("a", "192.0.2.0/30", "198.51.100.0/30"), service("s", annotations={IPS: "192.0.2.1"}))
    flags = ("--reuse-delay", "300")
    async with controller_process(kubeconfig, tmp_path / "first.log", *flags) as first:
        assert ingress(await served(api, "s")) == ["192.0.2.1"]
        await api.delete(SERVICES, "s", "default")
        await pool_where(api, "a", lambda p: "192.0.2.1" in held_back(p))
        # The range moves from pool a to pool b: the delay goes with it, listed by both.
        await api.patch(LBPOOLS, "a", {"spec": {"blocks": [{"cidr": "198.51.100.0/30"}]}})
        await api.make(pool("b", "192.0.2.0/30"))
        await pool_where(api, "b", lambda p: "192.0.2.1" in held_back(p))
        await api.make(service("live", annotations={IPS: "192.0.2.1"}))
        assert reason(await served(api, "live")) == ("False", "AlreadyAllocated")
        await first.kill()
    async with controller_process(kubeconfig, tmp_path / "second.log", *flags):
        await api.make(service("after", annotations={IPS: "192.0.2.1"}))
        after = await served(api, "after")
    assert (ingress(after), reason(after)) == ([], ("False", "AlreadyAllocated"))
    assert "held back by the reuse delay" in message(after)


# ---- a pool deleted while no controller runs ---------------------------------------------------
@pytest.mark.parametrize("while_stopped", [False, True], ids=["deleted-live", "deleted-while-down"])
async def test_a_pool_deleted_while_down_is_a_pool_deleted(
    kubeconfig: Path, api: Api, tmp_path: Path, while_stopped: bool
) -> None:
    await api.make(pool("gone", "192.0.2.0/30"), pool("other", "198.51.100.0/30", priority=1), service("s"))
    flags = ("--reuse-delay", "0")
    async with controller_process(kubeconfig, tmp_path / "first.log", *flags) as first:
        s = await served(api, "s")
        assert (ingress(s), allocated_from(s)) == (["192.0.2.1"], "gone")
        if not while_stopped:
            await api.delete(LBPOOLS, "gone")
            await until(lambda: _moved(api), timeout=30)
            await until(lambda: _told(api), timeout=30)  # a kill would lose Events not yet written
        await first.kill()
    if while_stopped:
        await api.delete(LBPOOLS, "gone")
    # Another tool (or a person) gave this one an IP of the deleted range: lbipam never handed
    # it out, so it is kept and reported, never renumbered.
    await api.make(service("foreign"))
    await api.set_ingress("foreign", "default", "192.0.2.2")
    async with controller_process(kubeconfig, tmp_path / "second.log", *flags):
        s = await until(lambda: _moved(api), timeout=30)
        await until(lambda: _told(api), timeout=30)
        foreign = await served(api, "foreign", note=False)  # in no pool: no pool to name
    assert (ingress(s), reason(s)) == (["198.51.100.1"], SATISFIED)
    assert [r for r in await api.reasons("s") if r != "AllocationFailed"][-2:] == [
        "IPReleased",
        "IPAllocated",
    ]
    assert (ingress(foreign), reason(foreign)) == (["192.0.2.2"], ("False", "NoPool"))
    assert "kept from before the controller started" in message(foreign)


async def _told(api: Api) -> bool:
    return [r for r in await api.reasons("s") if r != "AllocationFailed"][-2:] == [
        "IPReleased",
        "IPAllocated",
    ]


async def _moved(api: Api) -> Obj | None:
    s = await api.svc("s")
    return s if allocated_from(s) == "other" and ingress(s) == ["198.51.100.1"] else None


# ---- SIGTERM drains ----------------------------------------------------------------------------
BURST = 300


async def test_sigterm_after_a_burst_loses_no_event_and_no_annotation(
    kubeconfig: Path, api: Api, tmp_path: Path
) -> None:
    await api.make(pool("p", "10.20.0.0/16"))
    async with controller_process(kubeconfig, tmp_path / "controller.log", "--reuse-delay", "0") as ctl:
        for index in range(BURST):
            await api.create(SERVICES, service(f"s{index}"))

        async def all_served() -> bool:
            return sum(bool(ingress(s)) for s in await api.services()) == BURST

        await until(all_served, timeout=120)
        assert await ctl.terminate() == 0, ctl.tail()
    services = await api.services()
    events = (await api.kube.list_all(EVENTS, namespace="default")).items
    allocated = {e["regarding"]["name"] for e in events if e["reason"] == "IPAllocated"}
    assert len(allocated) == BURST, f"{BURST - len(allocated)} IPAllocated Events lost"
    assert [s["metadata"]["name"] for s in services if allocated_from(s) != "p"] == []
    assert "drained the writes planned before shutdown" in ctl.log.read_text()


# ---- the speaker -------------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")
async def test_a_speaker_started_while_a_pool_is_invalid_keeps_announcing(
    kubeconfig: Path, api: Api, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, cluster(kubeconfig) as client:
        await client.node("node-a", ipv4=source)
        await client.apply(
            pool("p", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source),
            bgp_advertisement("all"),
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        async with controller_process(kubeconfig, tmp_path / "controller.log") as ctl:
            (ip,) = ingress(await served(api, "web"))
            await pool_where(api, "p", lambda p: (p["status"].get("accepted") or {}).get("blocks"))
            await api.patch(LBPOOLS, "p", {"spec": {"blocks": [{"cidr": "198.51.100.1/28"}]}})  # host bits
            await pool_where(api, "p", lambda p: ready(p) == ("False", "Invalid"))
            await ctl.kill()
        # No controller, an invalid spec, a speaker that never saw the valid one.
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as speaker:
            await table(bgp, {f"{ip}/32"}, protocol="speaker")
            speaker.alive()
