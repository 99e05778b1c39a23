"""LB-IPAM end to end, the pool side: pool status (Ready, Conflict, Exhausted, counters,
observedGeneration), the reuse delay, pool edits and deletions, bad pool input, and restarts (an
assignment never changes; what fits no pool is kept and reported). One named scenario per rule,
each on a clean embedded API server with a real controller (see test_lbipam_scenarios.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.k8s.resources import EVENTS, LBPOOLS, SERVICES
from tests.helpers import eventually
from tests.lbipam_harness import (
    Api,
    Running,
    allocated_from,
    condition,
    controller,
    counts,
    ingress,
    message,
    pool,
    reason,
    service,
    until,
)

IPS, POOL, KEY = "lbipam.io/ips", "lbipam.io/pool", "lbipam.io/sharing-key"
SATISFIED = ("True", "Satisfied")


def pool_conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}


async def _with_ingress(api: Api, name: str) -> dict[str, Any] | None:
    got = await api.svc(name)
    return got if ingress(got) else None


# ---- pool status ------------------------------------------------------------------------------
async def test_pool_status_counts_and_observed_generation(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/30", "192.0.2.8-192.0.2.9", "2001:db8::/126"), service("s"))
    await ctl.settle(api)
    got = await api.pool("p")
    assert pool_conditions(got) == {
        "Ready": ("True", "Valid"),
        "Conflict": ("False", "NoOverlap"),
        "Exhausted": ("False", "AddressesFree"),
    }
    assert got["status"]["ipv4"] == {"total": "4", "used": "1", "available": "3"}  # .1 .2 .8 .9
    assert got["status"]["ipv6"] == {"total": "2", "used": "0", "available": "2"}
    assert got["status"]["observedGeneration"] == 1
    await api.patch(LBPOOLS, "p", {"spec": {"blocks": [{"cidr": "192.0.2.0/29"}], "allowFirstLastIPs": True}})
    await ctl.settle(api)
    edited = await api.pool("p")
    assert (edited["metadata"]["generation"], edited["status"]["observedGeneration"]) == (2, 2)
    assert (counts(edited, 4), counts(edited, 6)) == ((8, 1, 7), (0, 0, 0))
    assert all(c["observedGeneration"] == 2 for c in edited["status"]["conditions"])


async def test_exhausted_then_freed_ips_only_after_the_reuse_delay(kubeconfig: Path, api: Api) -> None:
    # A reuse delay long enough that the checks made during it cannot race its end.
    await api.make(pool("p", "192.0.2.0/30"), service("a"), service("b"), service("c"))
    async with controller(kubeconfig, reuse_delay=2.0) as ctl:
        c = await ctl.settled(api, "c")
        assert (ingress(c), reason(c), message(c)) == (
            [],
            ("False", "OutOfIPs"),
            "no free IPv4 address in pool(s) p",
        )
        assert pool_conditions(await api.pool("p"))["Exhausted"] == ("True", "NoAddressesFree")
        await api.delete(SERVICES, "a", "default")
        await api.delete(SERVICES, "b", "default")
        await api.make(service("asks", annotations={IPS: "192.0.2.1"}))

        async def held_back() -> bool:  # released, not yet free: counted neither used nor available
            return counts(await api.pool("p")) == (2, 0, 0) and reason(await api.svc("asks")) is not None

        assert await until(held_back, timeout=5)
        assert reason(await api.svc("c")) == ("False", "OutOfIPs")
        asks = await api.svc("asks")
        assert reason(asks) == ("False", "AlreadyAllocated")
        assert message(asks) == (
            "192.0.2.1 (lbipam.io/ips) was released by default/a and is held back by the reuse delay (2s)"
        )
        c = await ctl.settled(api, "c")  # quiet only once the delay is over and c is served
    assert (ingress(c), reason(c)) == (["192.0.2.2"], SATISFIED)
    assert ingress(await api.svc("asks")) == ["192.0.2.1"]
    assert pool_conditions(await api.pool("p"))["Exhausted"] == ("True", "NoAddressesFree")


async def test_with_no_reuse_delay_a_freed_ip_goes_to_a_waiting_service_at_once(
    apiserver: EmbeddedAPIServer, kubeconfig: Path, api: Api
) -> None:
    await api.make(pool("p", "192.0.2.0/30"), service("a"), service("b"), service("c"))
    async with controller(kubeconfig, reuse_delay=0) as ctl:
        assert reason(await ctl.settled(api, "c")) == ("False", "OutOfIPs")
        apiserver.faults.fail_next_writes(1, 409, "loadbalancerippools")  # slows the "1 used" write
        await api.delete(SERVICES, "a", "default")
        c = await ctl.settled(api, "c")
    assert (ingress(c), reason(c)) == (["192.0.2.1"], SATISFIED)
    assert await api.reasons("c") == ["AllocationFailed", "IPAllocated"]
    # The pool's status went 2 used -> 1 -> 2 faster than the watch brings back its own writes:
    # the last write must not be skipped as "unchanged" against the stale cached copy.
    got = await api.pool("p")
    assert (counts(got), pool_conditions(got)["Exhausted"]) == ((2, 2, 0), ("True", "NoAddressesFree"))


async def test_a_freed_ip_goes_at_once_even_while_pool_status_writes_fail(
    apiserver: EmbeddedAPIServer, kubeconfig: Path, api: Api
) -> None:
    """A release must wake the planner by itself, not through the echo of a pool status write."""
    await api.make(pool("p", "192.0.2.0/30"), service("a"), service("b"), service("c"))
    async with controller(kubeconfig, reuse_delay=0) as ctl:
        assert reason(await ctl.settled(api, "c")) == ("False", "OutOfIPs")
        apiserver.faults.fail_next_writes(40, 500, "loadbalancerippools")  # ~20 s of failing writes
        await api.delete(SERVICES, "a", "default")
        c = await until(lambda: _with_ingress(api, "c"), timeout=4)
    assert (ingress(c), reason(c)) == (["192.0.2.1"], SATISFIED)


async def test_a_status_write_that_fails_past_its_retries_is_made_later(
    apiserver: EmbeddedAPIServer, kubeconfig: Path, api: Api
) -> None:
    await api.make(pool("p", "192.0.2.0/30"), service("s"))
    apiserver.faults.fail_next_writes(16, 500, "services")  # both of its writes fail 8 times
    async with controller(kubeconfig) as ctl:
        s = await ctl.settled(api, "s", timeout=30)
    assert (ingress(s), reason(s), allocated_from(s)) == (["192.0.2.1"], SATISFIED, "p")
    assert await api.reasons("s") == ["IPAllocated"]
    assert apiserver.faults.pending() == []


async def test_conflict_the_newer_pool_loses_and_names_the_older(ctl: Running, api: Api) -> None:
    older = await api.create(LBPOOLS, pool("z-older", "192.0.2.0/28"))
    stamp = older["metadata"]["creationTimestamp"]
    await eventually(lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > stamp, timeout=3)
    # Younger but first by name: only the creationTimestamp can make it lose.
    await api.make(
        pool("a-newer", "192.0.2.8/29", "198.51.100.0/30"), service("pinned", annotations={POOL: "a-newer"})
    )
    await ctl.settle(api)
    newer = await api.pool("a-newer")
    assert pool_conditions(newer)["Conflict"] == ("True", "Overlap")
    assert "z-older" in message(newer, "Conflict")
    assert "192.0.2.0/28" in message(newer, "Conflict")
    assert counts(newer) == (0, 0, 0)  # it serves nothing, not even its other block
    winner = await api.pool("z-older")  # it keeps serving, and names the pool it beats
    assert pool_conditions(winner)["Conflict"] == ("False", "NewerPoolOverlaps")
    assert message(winner, "Conflict") == (
        "block 192.0.2.8/29 of pool a-newer overlaps block 192.0.2.0/28; "
        "this pool is older and keeps serving, pool(s) a-newer serve nothing"
    )
    pinned = await api.svc("pinned")
    assert (ingress(pinned), reason(pinned)) == ([], ("False", "NoPool"))
    await api.make(service("asks", annotations={IPS: "192.0.2.9"}))
    assert allocated_from(await ctl.settled(api, "asks")) == "z-older"
    await api.delete(LBPOOLS, "z-older")
    await ctl.settle(api)
    assert pool_conditions(await api.pool("a-newer"))["Conflict"] == ("False", "NoOverlap")
    assert (allocated_from(await api.svc("pinned")), allocated_from(await api.svc("asks"))) == (
        "a-newer",
        "a-newer",
    )
    assert ingress(await api.svc("asks")) == ["192.0.2.9"]  # kept: the new pool contains it


# ---- pool edits -------------------------------------------------------------------------------
async def test_shrinking_blocks_moves_the_services_outside(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("a"), service("b"), service("c"))
    await ctl.settle(api)
    await api.patch(LBPOOLS, "p", {"spec": {"blocks": [{"start": "192.0.2.2", "stop": "192.0.2.5"}]}})
    await ctl.settle(api)
    got = {n: ingress(await api.svc(n)) for n in "abc"}
    assert got == {"a": ["192.0.2.4"], "b": ["192.0.2.2"], "c": ["192.0.2.3"]}  # b and c kept theirs
    assert await api.reasons("a") == ["IPAllocated", "IPReleased", "IPAllocated"]
    assert counts(await api.pool("p")) == (4, 3, 1)


@pytest.mark.parametrize("other", [True, False], ids=["moves-to-another-pool", "no-pool-left"])
async def test_a_deleted_pool(ctl: Running, api: Api, other: bool) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    if other:
        await api.make(pool("q", "198.51.100.0/29", priority=1))
    assert allocated_from(await ctl.settled(api, "s")) == "p"
    await api.delete(LBPOOLS, "p")
    got = await ctl.settled(api, "s")
    if other:
        assert (ingress(got), allocated_from(got), reason(got)) == (["198.51.100.1"], "q", SATISFIED)
        assert await api.reasons("s") == ["IPAllocated", "IPReleased", "IPAllocated"]
    else:
        assert (ingress(got), allocated_from(got), reason(got)) == ([], None, ("False", "NoPool"))
        assert await api.reasons("s") == ["IPAllocated", "IPReleased", "AllocationFailed"]


OVERLAP = {"blocks": [{"cidr": "192.0.2.0/29"}, {"start": "192.0.2.4", "stop": "192.0.2.5"}]}
BACKWARDS = {"blocks": [{"start": "192.0.2.9", "stop": "192.0.2.3"}]}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(OVERLAP, "spec.blocks[1]", id="overlapping-blocks"),
        pytest.param(BACKWARDS, "spec.blocks[0].stop", id="start-after-stop"),
    ],
)
async def test_an_invalid_edit_keeps_the_ips(
    ctl: Running, api: Api, spec: dict[str, Any], words: str
) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    await ctl.settle(api)
    await api.patch(LBPOOLS, "p", {"spec": spec})
    await api.make(service("t"))
    await ctl.settle(api)
    got = await api.pool("p")
    assert pool_conditions(got)["Ready"] == ("False", "Invalid")
    assert words in message(got, "Ready")
    assert "still serving from the last valid spec (generation 1)" in message(got, "Ready")
    assert got["status"]["observedGeneration"] == 2
    assert ingress(await api.svc("s")) == ["192.0.2.1"]
    assert ingress(await api.svc("t")) == ["192.0.2.2"]  # served from the last valid spec
    assert await api.reasons("s") == ["IPAllocated"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(
            OVERLAP, "spec.blocks[1]: '192.0.2.4-192.0.2.5' overlaps blocks[0]", id="overlapping-blocks"
        ),
        pytest.param(BACKWARDS, "spec.blocks[0].stop", id="start-after-stop"),
    ],
)
async def test_a_pool_the_schema_accepts_but_the_model_rejects(
    ctl: Running, api: Api, spec: dict[str, Any], words: str
) -> None:
    body = pool("bad")
    body["spec"] = spec
    await api.make(body, service("s", annotations={POOL: "bad"}))
    await ctl.settle(api)
    got = await api.pool("bad")
    assert pool_conditions(got)["Ready"] == ("False", "Invalid")
    assert words in message(got, "Ready")
    assert message(got, "Ready").endswith("serving nothing")
    assert counts(got) == (0, 0, 0)
    assert reason(await api.svc("s")) == ("False", "NoPool")


# ---- restarts ---------------------------------------------------------------------------------
def fingerprint(obj: dict[str, Any]) -> tuple[Any, ...]:
    cond = condition(obj) or {}
    return (
        ingress(obj),
        allocated_from(obj),
        cond.get("lastTransitionTime"),
        obj["metadata"]["resourceVersion"],
    )


async def test_a_restart_changes_nothing(kubeconfig: Path, api: Api) -> None:
    await api.make(
        pool("p", "192.0.2.0/29"),
        pool("q", "198.51.100.7/32", "2001:db8::/126", priority=1),
        pool("off", "203.0.113.0/29", priority=2),
        service("shared-a", annotations={KEY: "k"}, ports=(("TCP", 1),)),
        service("shared-b", annotations={KEY: "k"}, ports=(("TCP", 2),)),
        service("dual", policy="RequireDualStack", families=("IPv4", "IPv6")),
        service("prefer", policy="PreferDualStack", families=("IPv6", "IPv4"), annotations={POOL: "p"}),
        service("pinned", annotations={POOL: "q"}),
        service("asks", annotations={IPS: "192.0.2.6"}),
        service("in-off", annotations={POOL: "off"}),
        service("bad", annotations={IPS: "nonsense"}),
        service("z-full", annotations={POOL: "q"}),  # after "pinned": q is full
        service("other", lb_class="example.com/other"),
        service("orphan"),
    )
    await api.set_ingress("orphan", "default", "203.0.113.200")  # lies in no pool
    async with controller(kubeconfig) as first:
        await first.settle(api)
        await api.patch(LBPOOLS, "off", {"spec": {"disabled": True}})  # its holder keeps its IP
        await first.settle(api)
    assert reason(await api.svc("z-full")) == ("False", "OutOfIPs")
    before = {s["metadata"]["name"]: fingerprint(s) for s in await api.services()}
    pools_before = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in await api.pools()}
    events_before = len((await api.kube.list_all(EVENTS)).items)
    async with controller(kubeconfig) as second:
        await second.settle(api)
        after = {s["metadata"]["name"]: fingerprint(s) for s in await api.services()}
        assert second.app.lb.status.writes == 0
    assert after == before
    assert {
        p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in await api.pools()
    } == pools_before
    assert len((await api.kube.list_all(EVENTS)).items) == events_before
    assert ingress(await api.svc("in-off")) == ["203.0.113.1"]
    assert reason(await api.svc("orphan")) == ("False", "NoPool")


async def test_an_ip_outside_every_pool_at_start_is_kept_and_reported(kubeconfig: Path, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    await api.set_ingress("s", "default", "203.0.113.9")
    async with controller(kubeconfig) as ctl:
        got = await ctl.settled(api, "s")
        assert (ingress(got), reason(got), allocated_from(got)) == (
            ["203.0.113.9"],
            ("False", "NoPool"),
            None,
        )
        assert "203.0.113.9 lies in no pool" in message(got)
        assert "kept" in message(got)
        assert await api.reasons("s") == ["AllocationFailed"]
        await api.make(pool("late", "203.0.113.0/28"))
        healed = await ctl.settled(api, "s")
    assert (ingress(healed), reason(healed), allocated_from(healed)) == (["203.0.113.9"], SATISFIED, "late")
    assert counts(await api.pool("late"))[1] == 1


async def test_two_services_with_one_ip_at_start_the_older_keeps_it(kubeconfig: Path, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("older"))
    stamp = (await api.svc("older"))["metadata"]["creationTimestamp"]
    await eventually(lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > stamp, timeout=3)
    await api.make(service("a-newer"))  # first by name, second by age
    await api.set_ingress("older", "default", "192.0.2.3")
    await api.set_ingress("a-newer", "default", "192.0.2.3")
    async with controller(kubeconfig) as ctl:
        await ctl.settle(api)
    older, newer = await api.svc("older"), await api.svc("a-newer")
    assert (ingress(older), reason(older)) == (["192.0.2.3"], SATISFIED)
    assert ingress(newer) == ["192.0.2.1"]
    notes = [(e["reason"], e["note"]) for e in await api.events("a-newer")]
    assert notes[0][0] == "AllocationFailed"
    assert "192.0.2.3 is held by default/older" in notes[0][1]
    assert notes[1:] == [("IPAllocated", "192.0.2.1 (pool p)")]
