"""LB-IPAM end to end, rules of the pool contract that live controllers must keep: Exhausted per
family (and its metric), pool order for sharing, avoidBuggyIPs through the API, namespaces
matched by `kubernetes.io/metadata.name`, and the reuse delay across a leader failover. One named
scenario per rule, each on a clean embedded API server with real controllers in this process
(test_lbipam_restarts.py kills real processes for the rules about restarts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lbipam.controllers.lbipam.convert import pool_view, service_view
from lbipam.k8s.resources import LBPOOLS, SERVICES
from lbipam.observe.metrics import controller_registry
from tests.lbipam_harness import (
    Api,
    Running,
    candidate,
    controller,
    counts,
    ingress,
    message,
    namespace,
    pool,
    reason,
    service,
    start,
    until,
)

IPS, KEY, POOL = "lbipam.io/ips", "lbipam.io/sharing-key", "lbipam.io/pool"
SATISFIED = ("True", "Satisfied")
Obj = dict[str, Any]


@pytest.fixture
async def ctl(kubeconfig: Path, api: Api) -> AsyncIterator[Running]:
    """tests/conftest.py's controller, with no reuse delay."""
    async with controller(kubeconfig, reuse_delay=0) as running:
        yield running


def pool_condition(obj: Obj, type_: str) -> tuple[str, str, str]:
    found = next(c for c in obj["status"]["conditions"] if c["type"] == type_)
    return found["status"], found["reason"], found["message"]


def exhausted_series(ctl: Running, pool_name: str) -> dict[str, float]:
    """family -> lbipam_pool_exhausted of one pool, as a scrape shows it."""
    text = generate_latest(controller_registry(ctl.app)).decode()
    return {
        s.labels["family"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "lbipam_pool_exhausted" and s.labels["pool"] == pool_name
    }


# ---- Exhausted per family ---------------------------------------------------------------------
async def test_a_dual_stack_pool_out_of_ipv4_is_exhausted_for_ipv4_while_a_service_waits(
    ctl: Running, api: Api
) -> None:
    await api.make(pool("dual", "192.0.2.7/32", "2001:db8::/126"), service("first"))
    await ctl.settle(api)
    full_v4 = await api.pool("dual")
    assert pool_condition(full_v4, "Exhausted") == (
        "False",
        "AddressesFree",
        "IPv4 0 of 1 available, IPv6 2 of 2 available",
    )  # nobody waits: IPv6 is free, so the pool is not exhausted
    await api.make(service("waits"))
    await ctl.settle(api)
    waits = await api.svc("waits")
    assert (ingress(waits), reason(waits)) == ([], ("False", "OutOfIPs"))
    assert pool_condition(await api.pool("dual"), "Exhausted") == (
        "True",
        "NoAddressesFree",
        "no free IPv4 address, and a Service waits for one: IPv4 0 of 1 available, IPv6 2 of 2 available",
    )
    assert exhausted_series(ctl, "dual") == {"ipv4": 1.0, "ipv6": 0.0}
    await api.delete(SERVICES, "waits", "default")
    await ctl.settle(api)
    assert pool_condition(await api.pool("dual"), "Exhausted")[:2] == ("False", "AddressesFree")
    assert exhausted_series(ctl, "dual") == {"ipv4": 0.0, "ipv6": 0.0}


async def test_a_pool_with_every_family_used_up_is_exhausted_for_each(ctl: Running, api: Api) -> None:
    await api.make(
        pool("dual", "192.0.2.7/32", "2001:db8::7/128"),
        service("both", policy="RequireDualStack", families=("IPv4", "IPv6")),
    )
    await ctl.settle(api)
    assert pool_condition(await api.pool("dual"), "Exhausted") == (
        "True",
        "NoAddressesFree",
        "no free address: IPv4 0 of 1 available, IPv6 0 of 1 available",
    )
    assert exhausted_series(ctl, "dual") == {"ipv4": 1.0, "ipv6": 1.0}


# ---- sharing follows pool order ---------------------------------------------------------------
async def test_a_shared_ip_is_joined_in_the_first_eligible_pool_not_the_lowest_ip(
    ctl: Running, api: Api
) -> None:
    # "first" is tried first (priority 0) but holds the higher addresses.
    await api.make(
        pool("first", "198.51.100.0/30", priority=0),
        pool("second", "192.0.2.0/30", priority=1),
        service("in-second", annotations={KEY: "k", POOL: "second"}),
        service("in-first", annotations={KEY: "k", POOL: "first"}),
    )
    await ctl.settle(api)
    assert ingress(await api.svc("in-second")) == ["192.0.2.1"]
    assert ingress(await api.svc("in-first")) == ["198.51.100.1"]
    await api.make(service("joiner", annotations={KEY: "k"}, ports=(("TCP", 443),)))
    joiner = await ctl.settled(api, "joiner")
    assert (ingress(joiner), reason(joiner)) == (["198.51.100.1"], SATISFIED)
    assert message(joiner) == "198.51.100.1 (pool first)"


# ---- avoidBuggyIPs ------------------------------------------------------------------------------
async def test_avoid_buggy_ips_skips_dot_zero_and_dot_255_through_the_api(ctl: Running, api: Api) -> None:
    # allowFirstLastIPs: the network and broadcast addresses would be handed out, but for
    # avoidBuggyIPs, which is all that keeps .0 and .255 out here.
    await api.make(
        pool("p", "192.0.2.0/24", allowFirstLastIPs=True, avoidBuggyIPs=True),
        service("first"),
        service("asks", annotations={IPS: "192.0.2.255"}),
    )
    await ctl.settle(api)
    got = await api.pool("p")
    assert ingress(await api.svc("first")) == ["192.0.2.1"]
    asks = await api.svc("asks")
    assert (ingress(asks), reason(asks)) == ([], ("False", "InvalidRequest"))
    assert "ends in .0 or .255 and the pool avoids those" in message(asks)
    assert counts(got) == (254, 1, 253)
    assert got["status"]["accepted"]["avoidBuggyIPs"] is True
    await api.patch(LBPOOLS, "p", {"spec": {"avoidBuggyIPs": False}})
    await ctl.settle(api)
    assert counts(await api.pool("p")) == (256, 2, 254)
    assert ingress(await api.svc("asks")) == ["192.0.2.255"]


# ---- namespaces by kubernetes.io/metadata.name -------------------------------------------------
def test_namespaces_are_matched_by_their_name_label_even_when_the_cluster_sets_none() -> None:
    """Kubernetes 1.21+ labels every Namespace with kubernetes.io/metadata.name; lbipam adds it
    for matching, so a namespaceSelector on it works on any cluster, before the Namespace is seen."""
    selector = {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}
    pool_obj = {**pool("p", "192.0.2.0/30", namespaceSelector=selector), "metadata": {"name": "p"}}
    view = pool_view(pool_obj)
    unlabelled = service_view(service("s", "team-a"), {}, True)  # the Namespace has no labels
    other = service_view(service("s", "team-b"), {"kubernetes.io/metadata.name": "team-a"}, True)
    assert unlabelled.namespace_labels == {"kubernetes.io/metadata.name": "team-a"}
    assert view.selects(unlabelled)
    assert not view.selects(other)  # the real name wins over a label that lies


async def test_a_pool_for_one_namespace_by_its_name_label(ctl: Running, api: Api) -> None:
    selector = {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a"]}]
    }
    await api.make(
        namespace("team-a"),
        namespace("team-b"),
        pool("p", "192.0.2.0/30", namespaceSelector=selector),
        service("s", "team-a"),
        service("s", "team-b"),
    )
    await ctl.settle(api)
    assert ingress(await api.svc("s", "team-a")) == ["192.0.2.1"]
    assert reason(await api.svc("s", "team-b")) == ("False", "NoPool")


# ---- the reuse delay across a leader failover --------------------------------------------------
async def test_the_reuse_delay_survives_a_leader_failover(kubeconfig: Path, api: Api) -> None:
    await api.make(pool("p", "192.0.2.0/30"), service("a"), service("b"))
    first = await start(kubeconfig, reuse_delay=300, leader=candidate("ctl-a"), name="ctl-a")
    second = await start(kubeconfig, reuse_delay=300, leader=candidate("ctl-b"), name="ctl-b")
    try:
        leader, standby = await until(lambda: _roles(first, second), timeout=20)
        await leader.settle(api)
        released = ingress(await api.svc("a"))[0]
        await api.delete(SERVICES, "a", "default")

        async def listed() -> bool:
            addresses = ((await api.pool("p"))["status"].get("heldBack") or {}).get("addresses") or []
            return any(e["ip"] == released for e in addresses)

        await until(listed, timeout=20)
        await leader.stop()  # the standby takes over, with nothing of the leader's memory
        await until(lambda: _leads(standby), timeout=20)
        await api.make(service("asks", annotations={IPS: released}), service("c"))
        # Not "settled": the new leader waits for the end of the delay (300 s) to serve them.
        asks, c = await until(lambda: _decided(api, "asks", "c"), timeout=20)
    finally:
        await first.stop()
        await second.stop()
    assert (ingress(asks), reason(asks)) == ([], ("False", "AlreadyAllocated"))
    assert "held back by the reuse delay" in message(asks)
    assert (ingress(c), reason(c)) == ([], ("False", "OutOfIPs"))


async def _decided(api: Api, *names: str) -> list[Obj] | None:
    got = [await api.svc(name) for name in names]
    return got if all(reason(s) is not None for s in got) else None


async def _roles(a: Running, b: Running) -> tuple[Running, Running] | None:
    if a.app.leading and a.app.lb.ready.is_set():
        return a, b
    if b.app.leading and b.app.lb.ready.is_set():
        return b, a
    return None


async def _leads(r: Running) -> bool:
    return r.app.leading and r.app.lb.ready.is_set()
