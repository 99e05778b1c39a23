"""LB-IPAM end to end: IP sharing (`lbipam.io/sharing-key` and its rules) and dual-stack
(`ipFamilyPolicy`/`ipFamilies`), one named scenario per rule, each on a clean embedded API server
with a real controller (see test_lbipam_scenarios.py for the set-up and the other rules)."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.k8s.resources import SERVICES
from tests.lbipam_harness import (
    Api,
    Running,
    allocated_from,
    counts,
    ingress,
    message,
    namespace,
    pool,
    reason,
    service,
)

IPS, KEY, XNS = "lbipam.io/ips", "lbipam.io/sharing-key", "lbipam.io/sharing-cross-namespace"
SATISFIED = ("True", "Satisfied")
TCP80, TCP443 = (("TCP", 80),), (("TCP", 443),)


# ---- sharing ----------------------------------------------------------------------------------
def joiner(ns: str = "default", *, ask: bool = False, key: str = "k", **kw: Any) -> dict[str, Any]:
    annotations = {KEY: key, **({IPS: "192.0.2.1"} if ask else {})}
    return service("j", ns, annotations=annotations, **kw)


@pytest.mark.parametrize(
    ("joining", "outcome"),
    [
        pytest.param(joiner(ports=TCP443), "shares", id="same-key-other-port"),
        pytest.param(joiner(ports=(("UDP", 80),)), "shares", id="same-key-same-port-other-protocol"),
        pytest.param(joiner(ports=TCP80), "192.0.2.2", id="port-clash-gets-another-ip"),
        pytest.param(
            joiner(ports=TCP80, ask=True),
            "IncompatibleSharing: 192.0.2.1: port TCP/80 is already used by default/a",
            id="port-clash-requested",
        ),
        pytest.param(joiner(ports=TCP443, traffic_policy="Local"), "192.0.2.2", id="other-traffic-policy"),
        pytest.param(
            joiner(ports=TCP443, traffic_policy="Local", ask=True),
            "IncompatibleSharing: 192.0.2.1: externalTrafficPolicy Local differs from default/a's Cluster",
            id="other-traffic-policy-requested",
        ),
        pytest.param(joiner(ports=TCP443, key="other"), "192.0.2.2", id="other-key"),
        pytest.param(
            joiner(ports=TCP443, key="other", ask=True),
            "AlreadyAllocated: 192.0.2.1 is held by default/a under another sharing key",
            id="other-key-requested",
        ),
        pytest.param(joiner("two", ports=TCP443), "192.0.2.2", id="other-namespace"),
        pytest.param(
            joiner("two", ports=TCP443, ask=True),
            "IncompatibleSharing: 192.0.2.1 is shared by default/a in namespace default; both Services",
            id="other-namespace-requested",
        ),
    ],
)
async def test_sharing_rules(ctl: Running, api: Api, joining: dict[str, Any], outcome: str) -> None:
    await api.make(
        namespace("two"), pool("p", "192.0.2.0/29"), service("a", annotations={KEY: "k"}, ports=TCP80)
    )
    assert ingress(await ctl.settled(api, "a")) == ["192.0.2.1"]
    await api.make(joining)
    got = await ctl.settled(api, "j", joining["metadata"]["namespace"])
    if outcome == "shares":
        assert (ingress(got), reason(got), allocated_from(got)) == (["192.0.2.1"], SATISFIED, "p")
        assert counts(await api.pool("p"))[1] == 1  # a shared IP counts once
    elif ":" not in outcome:
        assert (ingress(got), reason(got)) == ([outcome], SATISFIED)
    else:
        why, words = outcome.split(": ", 1)
        assert (ingress(got), reason(got)) == ([], ("False", why))
        assert message(got).startswith(words)
    assert ingress(await api.svc("a")) == ["192.0.2.1"]  # the holder never moves


async def test_local_traffic_policy_shares_only_with_the_same_selector(ctl: Running, api: Api) -> None:
    local: dict[str, Any] = {"annotations": {KEY: "k"}, "traffic_policy": "Local"}
    await api.make(
        pool("p", "192.0.2.0/29"),
        service("a", ports=(("TCP", 1),), selector={"app": "x"}, **local),
        service("same", ports=(("TCP", 2),), selector={"app": "x"}, **local),
        service("other", ports=(("TCP", 3),), selector={"app": "y"}, **local),
    )
    await ctl.settle(api)
    assert ingress(await api.svc("same")) == ingress(await api.svc("a")) == ["192.0.2.1"]
    assert ingress(await api.svc("other")) == ["192.0.2.2"]
    local["annotations"] = {KEY: "k", IPS: "192.0.2.1"}
    await api.make(service("asks", ports=(("TCP", 4),), selector={"app": "y"}, **local))
    asks = await ctl.settled(api, "asks")
    assert reason(asks) == ("False", "IncompatibleSharing")
    assert message(asks).endswith(
        "with externalTrafficPolicy Local the pod selector must equal default/a's (lbipam.io/ips)"
    )


async def test_cross_namespace_sharing_needs_both_sides(ctl: Running, api: Api) -> None:
    await api.make(namespace("one"), namespace("two"), namespace("three"), pool("p", "192.0.2.0/29"))
    await api.make(
        service("x", "one", annotations={KEY: "k", XNS: "two"}, ports=(("TCP", 1),)),
        service("y", "two", annotations={KEY: "k", XNS: "one"}, ports=(("TCP", 2),)),
        service("z", "three", annotations={KEY: "k", XNS: "*"}, ports=(("TCP", 3),)),
        service("w", "two", annotations={KEY: "k", XNS: "*", IPS: "192.0.2.1"}, ports=(("TCP", 4),)),
    )
    await ctl.settle(api)
    assert ingress(await api.svc("x", "one")) == ingress(await api.svc("y", "two")) == ["192.0.2.1"]
    assert ingress(await api.svc("z", "three")) == ["192.0.2.2"]  # x does not admit namespace three
    w = await api.svc("w", "two")  # x admits namespace two, and y lives there
    assert (ingress(w), reason(w)) == (["192.0.2.1"], SATISFIED)
    await api.patch(SERVICES, "x", {"metadata": {"annotations": {XNS: "three"}}}, "one")
    moved = await ctl.settled(api, "x", "one")  # x no longer admits y's namespace: x moves
    assert ingress(moved) == ["192.0.2.2"]  # ... onto z's IP, which it may now share
    assert ingress(await api.svc("y", "two")) == ["192.0.2.1"]


async def test_a_sharer_whose_ports_start_to_clash_moves(ctl: Running, api: Api) -> None:
    await api.make(
        pool("p", "192.0.2.0/29"),
        service("a", annotations={KEY: "k"}, ports=TCP80),
        service("b", annotations={KEY: "k"}, ports=TCP443),
    )
    assert ingress(await ctl.settled(api, "b")) == ["192.0.2.1"]
    await api.patch(
        SERVICES, "b", {"spec": {"ports": [{"name": "p80-tcp", "protocol": "TCP", "port": 80}]}}, "default"
    )
    b = await ctl.settled(api, "b")
    assert (ingress(b), ingress(await api.svc("a"))) == (["192.0.2.2"], ["192.0.2.1"])
    assert await api.reasons("b") == ["IPAllocated", "IPReleased", "IPAllocated"]
    await api.delete(SERVICES, "a", "default")
    await ctl.settle(api)
    assert counts(await api.pool("p"))[1] == 1


# ---- dual-stack -------------------------------------------------------------------------------
DUAL = ("IPv4", "IPv6")


async def test_single_stack_ipv6_and_ipv6_first_order(ctl: Running, api: Api) -> None:
    await api.make(
        pool("dual", "192.0.2.0/29", "2001:db8::/125"),
        service("six", policy="SingleStack", families=("IPv6",)),
        service("six-four", policy="PreferDualStack", families=("IPv6", "IPv4")),
    )
    six = await ctl.settled(api, "six")
    assert (ingress(six), reason(six), allocated_from(six)) == (["2001:db8::1"], SATISFIED, "dual")
    assert ingress(await api.svc("six-four")) == ["2001:db8::2", "192.0.2.1"]
    status = await api.pool("dual")
    assert (counts(status, 4), counts(status, 6)) == ((6, 1, 5), (6, 2, 4))


async def test_prefer_dual_stack_takes_what_it_can_then_completes(ctl: Running, api: Api) -> None:
    await api.make(pool("v4", "192.0.2.0/29"), service("s", policy="PreferDualStack", families=DUAL))
    partial = await ctl.settled(api, "s")
    assert (ingress(partial), reason(partial)) == (["192.0.2.1"], SATISFIED)
    assert "IPv6" in message(partial)
    await api.make(pool("v6", "2001:db8::/125"))
    full = await ctl.settled(api, "s")
    assert (ingress(full), allocated_from(full), reason(full)) == (
        ["192.0.2.1", "2001:db8::1"],
        "v4,v6",
        SATISFIED,
    )
    assert message(full) == "192.0.2.1 (pool v4), 2001:db8::1 (pool v6)"
    assert await api.reasons("s") == ["IPAllocated", "IPAllocated"]


async def test_require_dual_stack_is_all_or_nothing(ctl: Running, api: Api) -> None:
    await api.make(
        pool("v4", "192.0.2.0/29"),
        service("s", policy="RequireDualStack", families=DUAL),
        service("asks-one", policy="RequireDualStack", families=DUAL, annotations={IPS: "192.0.2.5"}),
    )
    none = await ctl.settled(api, "s")
    assert (ingress(none), reason(none)) == ([], ("False", "NoPool"))
    assert "IPv6" in message(none)
    assert counts(await api.pool("v4"))[1] == 0  # the IPv4 it could have had was given back
    assert reason(await api.svc("asks-one")) == ("False", "InvalidRequest")
    await api.make(pool("v6", "2001:db8::/125"))
    both = await ctl.settled(api, "s")
    assert (ingress(both), reason(both)) == (["192.0.2.1", "2001:db8::1"], SATISFIED)
    annotations = {IPS: "2001:db8::5, 192.0.2.5"}
    await api.patch(SERVICES, "asks-one", {"metadata": {"annotations": annotations}}, "default")
    asked = await ctl.settled(api, "asks-one")
    assert (ingress(asked), reason(asked)) == (["192.0.2.5", "2001:db8::5"], SATISFIED)
