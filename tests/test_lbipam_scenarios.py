"""LB-IPAM end to end, one named scenario per rule of issue 4 / README "LoadBalancer IPAM": which
Services are handled, how pools are chosen, requested IPs, sharing, dual-stack, Events.

Each test starts from a clean embedded API server (function-scoped fixtures), runs a real
controller in-process over real HTTP, drives it with API writes, and asserts on the objects read
back. Pool-side rules (status, edits, conflicts, restarts) are in test_lbipam_scenarios_pools.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.resources import LBPOOLS, NAMESPACES, SERVICES
from tests.lbipam_harness import (
    Api,
    Running,
    allocated_from,
    controller,
    counts,
    ingress,
    message,
    namespace,
    pool,
    reason,
    service,
)

IPS, POOL, KEY, XNS = (
    "lbipam.io/ips",
    "lbipam.io/pool",
    "lbipam.io/sharing-key",
    "lbipam.io/sharing-cross-namespace",
)
SATISFIED = ("True", "Satisfied")


# ---- which Services are handled ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "default_class", "handled"),
    [
        pytest.param({}, True, True, id="no-class"),
        pytest.param({"lb_class": "lbipam.io/bgp"}, True, True, id="lbipam-class"),
        pytest.param({"lb_class": "example.com/other"}, True, False, id="another-class"),
        pytest.param({}, False, False, id="no-class-with-no-default-class"),
        pytest.param({"lb_class": "lbipam.io/bgp"}, False, True, id="lbipam-class-with-no-default-class"),
        pytest.param({"type_": "ClusterIP"}, True, False, id="type-ClusterIP"),
        pytest.param({"type_": "NodePort"}, True, False, id="type-NodePort"),
    ],
)
async def test_handled_or_left_alone(
    kubeconfig: Path, api: Api, kw: dict[str, Any], default_class: bool, handled: bool
) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s", **kw))
    async with controller(kubeconfig, default_class=default_class) as ctl:
        got = await ctl.settled(api, "s")
    if handled:
        assert (ingress(got), reason(got), allocated_from(got)) == (["192.0.2.1"], SATISFIED, "p")
        assert message(got) == "192.0.2.1 (pool p)"
        assert await api.reasons("s") == ["IPAllocated"]
        assert counts(await api.pool("p")) == (6, 1, 5)
    else:
        assert (ingress(got), reason(got), allocated_from(got)) == ([], None, None)
        assert await api.reasons("s") == []
        assert counts(await api.pool("p")) == (6, 0, 6)


async def test_release_and_cleanup_on_delete(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    assert ingress(await ctl.settled(api, "s")) == ["192.0.2.1"]
    await api.delete(SERVICES, "s", "default")
    await ctl.settle(api)
    assert counts(await api.pool("p"))[1] == 0
    released = [e for e in await api.events("s") if e["reason"] == "IPReleased"]
    assert [e["note"] for e in released] == ["192.0.2.1 (pool p)"]
    await api.make(service("t"))  # the reuse delay holds .1 back
    assert ingress(await ctl.settled(api, "t")) == ["192.0.2.2"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"spec": {"type": "ClusterIP"}}, id="type-to-ClusterIP"),
    ],
)
async def test_release_and_cleanup_when_no_longer_handled(
    ctl: Running, api: Api, change: dict[str, Any]
) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    assert allocated_from(await ctl.settled(api, "s")) == "p"
    await api.patch(SERVICES, "s", change, "default")
    got = await ctl.settled(api, "s")
    assert (ingress(got), reason(got), allocated_from(got)) == ([], None, None)
    assert await api.reasons("s") == ["IPAllocated", "IPReleased"]
    assert counts(await api.pool("p"))[1] == 0


async def test_a_restart_with_no_default_class_lets_go_of_classless_services(
    kubeconfig: Path, api: Api
) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"), service("t", lb_class="lbipam.io/bgp"))
    async with controller(kubeconfig) as ctl:
        assert allocated_from(await ctl.settled(api, "s")) == "p"
    async with controller(kubeconfig, default_class=False) as ctl:
        got = await ctl.settled(api, "s")
        assert (ingress(got), reason(got), allocated_from(got)) == ([], None, None)
        assert await api.reasons("s") == ["IPAllocated", "IPReleased"]
        assert ingress(await api.svc("t")) == ["192.0.2.2"]
        assert counts(await api.pool("p"))[1] == 1


# ---- choosing a pool --------------------------------------------------------------------------
async def test_pool_pinning(ctl: Running, api: Api) -> None:
    await api.make(pool("a", "192.0.2.0/29"), pool("b", "198.51.100.0/29", priority=1))
    await api.make(
        service("to-b", annotations={POOL: "b"}),
        service("to-a-or-b", annotations={POOL: "b, a"}),
        service("to-nope", annotations={POOL: "nope"}),
        service("to-nope-or-b", annotations={POOL: "nope,b"}),
    )
    to_b = await ctl.settled(api, "to-b")
    assert (ingress(to_b), allocated_from(to_b)) == (["198.51.100.1"], "b")
    assert await api.reasons("to-b") == ["IPAllocated"]  # straight there, no detour through a
    assert allocated_from(await api.svc("to-a-or-b")) == "a"  # among the pins, pool order decides
    assert allocated_from(await api.svc("to-nope-or-b")) == "b"
    nope = await api.svc("to-nope")
    assert (ingress(nope), reason(nope)) == ([], ("False", "NoPool"))
    assert "lbipam.io/pool" in message(nope)
    assert "nope" in message(nope)
    assert await api.reasons("to-nope") == ["AllocationFailed"]


async def test_service_selector_with_synthetic_labels(ctl: Running, api: Api) -> None:
    await api.make(
        pool("web", "192.0.2.0/29", serviceSelector={"matchLabels": {"app": "web"}}),
        pool("named", "198.51.100.0/29", serviceSelector={"matchLabels": {"lbipam.io/service-name": "db"}}),
        service("front", labels={"app": "web"}),
        service("db"),
        service("other"),
    )
    assert allocated_from(await ctl.settled(api, "front")) == "web"
    assert allocated_from(await api.svc("db")) == "named"
    other = await api.svc("other")
    assert (ingress(other), reason(other)) == ([], ("False", "NoPool"))
    assert message(other) == "no IPv4 pool selects this Service"
    await api.patch(SERVICES, "other", {"metadata": {"labels": {"app": "web"}}}, "default")
    assert allocated_from(await ctl.settled(api, "other")) == "web"  # a relabel brings an IP
    await api.make(pool("rest", "203.0.113.0/29", priority=5))
    await api.patch(SERVICES, "front", {"metadata": {"labels": {"app": "api"}}}, "default")
    moved = await ctl.settled(api, "front")  # web no longer selects it: it moves
    assert (ingress(moved), allocated_from(moved)) == (["203.0.113.1"], "rest")
    assert await api.reasons("front") == ["IPAllocated", "IPReleased", "IPAllocated"]


async def test_namespace_selector_and_a_namespace_relabel(ctl: Running, api: Api) -> None:
    await api.create(NAMESPACES, namespace("team", {"color": "blue"}))
    await api.make(
        pool("blue", "192.0.2.0/29", namespaceSelector={"matchLabels": {"color": "blue"}}),
        pool("any", "198.51.100.0/29", priority=1),
        service("s", "team"),
        service("d"),
    )
    assert allocated_from(await ctl.settled(api, "s", "team")) == "blue"
    assert allocated_from(await api.svc("d")) == "any"
    await api.patch(NAMESPACES, "team", {"metadata": {"labels": {"color": "red"}}})
    moved = await ctl.settled(api, "s", "team")
    assert (ingress(moved), allocated_from(moved)) == (["198.51.100.2"], "any")
    assert await api.reasons("s", "team") == ["IPAllocated", "IPReleased", "IPAllocated"]


async def test_auto_assign_false_only_when_asked(ctl: Running, api: Api) -> None:
    await api.make(
        pool("special", "192.0.2.0/29", autoAssign=False),
        pool("general", "198.51.100.0/29", priority=1),
        service("plain"),
        service("pinned", annotations={POOL: "special"}),
        service("asks", annotations={IPS: "192.0.2.5"}),
    )
    assert allocated_from(await ctl.settled(api, "plain")) == "general"
    assert (ingress(await api.svc("pinned")), allocated_from(await api.svc("pinned"))) == (
        ["192.0.2.1"],
        "special",
    )
    assert ingress(await api.svc("asks")) == ["192.0.2.5"]


async def test_priority_then_name(ctl: Running, api: Api) -> None:
    await api.make(
        pool("c-one", "203.0.113.1/32"),
        pool("b-one", "198.51.100.1/32"),
        pool("a-late", "192.0.2.1/32", priority=1),
    )
    for name in ("s1", "s2", "s3", "s4"):
        await api.make(service(name))
        await ctl.settle(api)
    got = [allocated_from(await api.svc(n)) for n in ("s1", "s2", "s3")]
    assert got == ["b-one", "c-one", "a-late"]
    last = await api.svc("s4")
    assert reason(last) == ("False", "OutOfIPs")
    assert message(last) == "no free IPv4 address in pool(s) b-one, c-one, a-late"


async def test_disabled_pool_keeps_but_gives_nothing_new(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("old"))
    assert ingress(await ctl.settled(api, "old")) == ["192.0.2.1"]
    await api.patch(LBPOOLS, "p", {"spec": {"disabled": True}})
    await api.make(service("new"), service("asks", annotations={IPS: "192.0.2.4"}))
    assert ingress(await ctl.settled(api, "old")) == ["192.0.2.1"]
    new = await api.svc("new")
    assert (ingress(new), reason(new)) == ([], ("False", "NoPool"))
    asks = await api.svc("asks")
    assert (ingress(asks), reason(asks)) == ([], ("False", "NoPool"))
    assert message(asks) == "192.0.2.4 (lbipam.io/ips) is in pool p, which is disabled"
    await api.patch(LBPOOLS, "p", {"spec": {"disabled": False}})
    assert ingress(await ctl.settled(api, "asks")) == ["192.0.2.4"]
    assert ingress(await api.svc("new")) == ["192.0.2.2"]


# ---- requested IPs ----------------------------------------------------------------------------
async def test_requested_ips_annotation_wins_over_load_balancer_ip(ctl: Running, api: Api) -> None:
    await api.make(
        pool("p", "192.0.2.0/29"),
        service("by-field", lb_ip="192.0.2.6"),
        service("by-annotation", annotations={IPS: "192.0.2.5"}, lb_ip="192.0.2.4"),
    )
    assert ingress(await ctl.settled(api, "by-field")) == ["192.0.2.6"]
    assert ingress(await api.svc("by-annotation")) == ["192.0.2.5"]
    assert counts(await api.pool("p"))[1] == 2


@pytest.mark.parametrize(
    ("ask", "why", "words"),
    [
        pytest.param(
            {IPS: "203.0.113.7"}, "NoPool", "203.0.113.7 (lbipam.io/ips) lies in no pool", id="NoPool"
        ),
        pytest.param(
            {"lb_ip": "203.0.113.7"},
            "NoPool",
            "203.0.113.7 (spec.loadBalancerIP) lies in no pool",
            id="NoPool-field",
        ),
        pytest.param(
            {IPS: "198.51.100.3"},
            "PoolSelectorMismatch",
            "198.51.100.3 (lbipam.io/ips) is in pool web, whose selectors do not select this Service",
            id="PoolSelectorMismatch",
        ),
        pytest.param(
            {IPS: "192.0.2.3", POOL: "web"},
            "PoolSelectorMismatch",
            "192.0.2.3 (lbipam.io/ips) is in pool p, not in lbipam.io/pool (web)",
            id="PoolSelectorMismatch-pin",
        ),
        pytest.param(
            {IPS: "192.0.2.1"},
            "AlreadyAllocated",
            "192.0.2.1 is held by default/holder, which has no sharing key",
            id="AlreadyAllocated",
        ),
        pytest.param(
            {IPS: "192.0.2.x"},
            "InvalidRequest",
            "lbipam.io/ips: '192.0.2.x' is not an IP address",
            id="malformed-ip",
        ),
        pytest.param(
            {IPS: "192.0.2.2,192.0.2.3"},
            "InvalidRequest",
            "lbipam.io/ips asks for two IPv4 addresses",
            id="two-of-a-family",
        ),
        pytest.param(
            {"lbipam.io/ip": "192.0.2.3"},
            "InvalidRequest",
            "unknown annotation lbipam.io/ip (lbipam reads",
            id="unknown-annotation",
        ),
        pytest.param(
            {KEY: "k", XNS: "Bad_NS"},
            "InvalidRequest",
            "lbipam.io/sharing-cross-namespace: 'Bad_NS' is not a list of namespaces or *",
            id="bad-sharing-cross-namespace",
        ),
    ],
)
async def test_requests_that_cannot_be_had(
    ctl: Running, api: Api, ask: dict[str, str], why: str, words: str
) -> None:
    await api.make(
        pool("p", "192.0.2.0/29"),
        pool("web", "198.51.100.0/29", serviceSelector={"matchLabels": {"app": "web"}}),
        service("holder"),
    )
    assert ingress(await ctl.settled(api, "holder")) == ["192.0.2.1"]
    lb_ip = ask.pop("lb_ip", None)
    await api.make(service("s", annotations=ask, lb_ip=lb_ip))
    got = await ctl.settled(api, "s")
    assert (ingress(got), reason(got), allocated_from(got)) == ([], ("False", why), None)
    assert words in message(got)
    assert await api.reasons("s") == ["AllocationFailed"]
    assert counts(await api.pool("p"))[1] == 1  # no fallback to another IP


async def test_a_requested_ip_is_honoured_once_it_can_be(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s", annotations={IPS: "203.0.113.7"}))
    assert reason(await ctl.settled(api, "s")) == ("False", "NoPool")
    await api.make(pool("late", "203.0.113.0/28"))
    got = await ctl.settled(api, "s")
    assert (ingress(got), reason(got), allocated_from(got)) == (["203.0.113.7"], SATISFIED, "late")
    await api.patch(SERVICES, "s", {"metadata": {"annotations": {IPS: "192.0.2.4"}}}, "default")
    moved = await ctl.settled(api, "s")  # a new request: the old IP goes, the new one comes
    assert (ingress(moved), allocated_from(moved)) == (["192.0.2.4"], "p")
    assert await api.reasons("s") == ["AllocationFailed", "IPAllocated", "IPReleased", "IPAllocated"]


async def test_a_broken_annotation_keeps_the_ip_and_says_invalid_request(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"))
    assert reason(await ctl.settled(api, "s")) == SATISFIED
    await api.patch(SERVICES, "s", {"metadata": {"annotations": {IPS: "192.0.2.x"}}}, "default")
    got = await ctl.settled(api, "s")
    assert (ingress(got), reason(got)) == (["192.0.2.1"], ("False", "InvalidRequest"))
    assert message(got) == "lbipam.io/ips: '192.0.2.x' is not an IP address"
    await api.patch(SERVICES, "s", {"metadata": {"annotations": {IPS: None}}}, "default")
    healed = await ctl.settled(api, "s")
    assert (ingress(healed), reason(healed)) == (["192.0.2.1"], SATISFIED)
    assert await api.reasons("s") == ["IPAllocated", "AllocationFailed"]


# ---- Events and observedGeneration ------------------------------------------------------------
async def test_events_only_on_change_and_observed_generation(ctl: Running, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/29"), service("s"), service("f", annotations={POOL: "nope"}))
    first = await ctl.settled(api, "s")
    await api.patch(SERVICES, "s", {"metadata": {"labels": {"unrelated": "x"}}}, "default")
    await api.patch(SERVICES, "f", {"metadata": {"labels": {"unrelated": "x"}}}, "default")
    await api.patch(
        SERVICES, "s", {"spec": {"ports": [{"name": "p81-tcp", "protocol": "TCP", "port": 81}]}}, "default"
    )
    again = await ctl.settled(api, "s")
    assert again["metadata"]["generation"] == 2
    cond = next(c for c in again["status"]["conditions"] if c["type"] == "lbipam.io/IPAMRequestSatisfied")
    assert cond["observedGeneration"] == 2
    assert cond["lastTransitionTime"] == first["status"]["conditions"][0]["lastTransitionTime"]
    assert (await api.reasons("s"), await api.reasons("f")) == (["IPAllocated"], ["AllocationFailed"])
