"""PodCIDR end to end, for every `--podcidr-target`: which CIDRs a Node gets and from which pool
(one per family, dual-stack all or nothing, nodeSelector, disabled, priority then name, Conflict,
a spec the model rejects), with conditions, Events, operator-status and exact pool counters.

Each test starts from a clean embedded API server, runs a real controller in-process over real
HTTP, drives it with API writes, and asserts on the objects read back once it has settled. Pool
edits over time are in test_podcidr_scenarios_pools.py; restarts, strays and deletion in
test_podcidr_scenarios_lifecycle.py; the CRD-backed IP pool in test_podcidr_scenarios_ipam.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lbipam.k8s.resources import NODES, PODCIDRPOOLS
from tests.helpers import eventually
from tests.podcidr_harness import (
    CILIUM,
    Family,
    PCApi,
    controller,
    counts,
    message,
    operator_error,
    pcpool,
    reason,
)

ALLOCATED = ("True", "Allocated")
V6_32_OF_120 = str(2**88)  # /120s in 2001:db8::/32: beyond int64, so the counter must be a string


@pytest.mark.parametrize(
    ("v4", "v6", "a", "b", "v4_counts", "v6_counts"),
    [
        pytest.param(
            (["192.0.2.0/26"], 28), (["2001:db8::/32"], 120),
            ("192.0.2.0/28", "2001:db8::/120"), ("192.0.2.16/28", "2001:db8::100/120"),
            ("4", "2", "2"), (V6_32_OF_120, "2", str(2**88 - 2)), id="dual-stack",
        ),
        pytest.param(
            (["192.0.2.0/26", "198.51.100.0/24"], 26), None, ("192.0.2.0/26",), ("198.51.100.0/26",),
            ("5", "2", "3"), ("0", "0", "0"), id="ipv4-over-two-cidrs",
        ),
        pytest.param(
            None, (["2001:db8:1::/64"], 64), ("2001:db8:1::/64",), (), ("0", "0", "0"), ("1", "1", "0"),
            id="ipv6-one-cidr",
        ),
    ],
)  # fmt: skip
async def test_one_cidr_per_family(
    kubeconfig: Path, api: PCApi, target: str, v4: Family | None, v6: Family | None,
    a: tuple[str, ...], b: tuple[str, ...], v4_counts: tuple[str, ...], v6_counts: tuple[str, ...],
) -> None:  # fmt: skip
    await api.create(PODCIDRPOOLS, pcpool("p", v4, v6))
    await api.join(target, "a")
    await api.join(target, "b")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
    assert (snap.cidrs("a"), snap.cidrs("b")) == (a, b)
    assert reason(snap.node("a")) == ALLOCATED
    assert message(snap.node("a")) == ", ".join(f"{c} (pool p)" for c in a)
    assert await api.node_reasons("a") == [("Normal", "CIDRAssigned")] * len(a)
    pool = snap.pool("p")
    assert (counts(pool, 4), counts(pool, 6)) == (v4_counts, v6_counts)
    assert reason(pool, "Exhausted") == (("True", "NoAddressesFree") if not b else ("False", "AddressesFree"))
    if not b:  # the second node found the pool full
        assert reason(snap.node("b")) == ("False", "CIDRNotAvailable")
        assert await api.node_reasons("b") == [("Warning", "CIDRNotAvailable")]
    if target in CILIUM:
        assert operator_error(snap.cn("a")) == ""
        assert operator_error(snap.cn("b")) == ("" if b else message(snap.node("b")))


async def test_dual_stack_is_all_or_nothing(kubeconfig: Path, api: PCApi, target: str) -> None:
    # IPv4 has room for one node, IPv6 for two: the second node must get neither.
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/28"], 28), (["2001:db8::/119"], 120)))
    await api.join(target, "a")
    await api.join(target, "b")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
    assert (snap.cidrs("a"), snap.cidrs("b")) == (("192.0.2.0/28", "2001:db8::/120"), ())
    assert reason(snap.node("b")) == ("False", "CIDRNotAvailable")
    assert message(snap.node("b")) == "no free IPv4 node CIDR in PodCIDRPool(s) p"
    pool = snap.pool("p")
    assert (counts(pool, 4), counts(pool, 6)) == (("1", "1", "0"), ("2", "1", "1"))  # b's IPv6 went back
    assert reason(pool, "Exhausted") == ("False", "AddressesFree")  # IPv6 is not full
    assert await api.node_reasons("b") == [("Warning", "CIDRNotAvailable")]
    if target in CILIUM:
        assert operator_error(snap.cn("b")) == "no free IPv4 node CIDR in PodCIDRPool(s) p"


async def test_pool_choice_by_selector_disabled_priority_then_name(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    edge = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["edge"]}]}
    await api.create(PODCIDRPOOLS, pcpool("edge", (["192.0.2.0/26"], 28), selector=edge, priority=3))
    await api.create(PODCIDRPOOLS, pcpool("b", (["192.0.2.64/26"], 28), priority=5))
    await api.create(PODCIDRPOOLS, pcpool("a", (["192.0.2.128/26"], 28), priority=5))
    await api.create(PODCIDRPOOLS, pcpool("off", (["192.0.2.192/26"], 28), priority=-1, disabled=True))
    await api.join(target, "n-edge", {"zone": "edge"})
    await api.join(target, "n-core", {"zone": "core"})
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        assert snap.cidrs("n-edge") == ("192.0.2.0/28",)  # its selector matches; priority 3 < 5
        assert snap.cidrs("n-core") == ("192.0.2.128/28",)  # "a" before "b" at equal priority
        assert message(snap.node("n-core")) == "192.0.2.128/28 (pool a)"
        await api.spec("a", {"disabled": True})
        await api.join(target, "n-late", {"zone": "core"})
        snap = await ctl.settle(api)
    assert snap.cidrs("n-late") == ("192.0.2.64/28",)
    assert snap.cidrs("n-core") == ("192.0.2.128/28",)  # a disabled pool keeps what it gave
    assert reason(snap.node("n-core")) == ALLOCATED
    assert counts(snap.pool("a")) == ("4", "1", "3")
    assert counts(snap.pool("off")) == ("4", "0", "4")


async def test_no_pool_selects_the_node_until_it_is_labelled(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    edge = {"matchLabels": {"zone": "edge"}}
    await api.create(PODCIDRPOOLS, pcpool("edge", (["192.0.2.0/26"], 28), selector=edge))
    await api.join(target, "n", {"zone": "core"})
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        assert (snap.cidrs("n"), reason(snap.node("n"))) == ((), ("False", "NoPool"))
        assert message(snap.node("n")) == "no enabled PodCIDRPool selects this node"
        if target in CILIUM:
            assert operator_error(snap.cn("n")) == "no enabled PodCIDRPool selects this node"
        await api.patch(NODES, "n", {"metadata": {"labels": {"zone": "edge"}}})
        snap = await ctl.settle(api)
    assert (snap.cidrs("n"), reason(snap.node("n"))) == (("192.0.2.0/28",), ALLOCATED)
    assert await api.node_reasons("n") == [("Warning", "CIDRNotAvailable"), ("Normal", "CIDRAssigned")]
    if target in CILIUM:
        assert operator_error(snap.cn("n")) == ""


async def test_overlapping_pools_the_newer_loses(kubeconfig: Path, api: PCApi, target: str) -> None:
    made = await api.create(PODCIDRPOOLS, pcpool("b-old", (["192.0.2.0/26"], 28)))
    # creationTimestamp has whole seconds: let the clock pass this one so "a-new" is really newer
    # (by name alone "a-new" would count as the older, and with priority -1 it would be chosen).
    created = made["metadata"]["creationTimestamp"]
    await eventually(lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > created, timeout=3)
    await api.create(PODCIDRPOOLS, pcpool("a-new", (["192.0.2.32/27", "198.51.100.0/24"], 28), priority=-1))
    await api.join(target, "n")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
    assert snap.cidrs("n") == ("192.0.2.0/28",)
    new, old = snap.pool("a-new"), snap.pool("b-old")
    assert reason(new, "Conflict") == ("True", "Overlap")
    assert message(new, "Conflict") == (
        "block 192.0.2.32/27 overlaps block 192.0.2.0/26 of pool b-old, which is older: "
        "this pool serves nothing"
    )
    assert reason(old, "Conflict") == ("False", "NewerPoolOverlaps")  # it serves, and names the newer
    assert "pool(s) a-new serve nothing" in message(old, "Conflict")
    assert (counts(new), counts(old)) == (("0", "0", "0"), ("4", "1", "3"))


@pytest.mark.parametrize(
    ("v4", "field"),
    [
        pytest.param((["192.0.2.0/26", "192.0.2.32/27"], 28), "spec.ipv4.cidrs", id="overlap-in-a-family"),
        pytest.param((["192.0.2.0/26"], 24), "spec.ipv4.maskSize", id="mask-shorter-than-a-cidr"),
        pytest.param((["2001:db8::/64"], 28), "spec.ipv4.cidrs[0]", id="ipv6-cidr-under-ipv4"),
    ],
)
async def test_a_spec_the_schema_takes_but_the_model_refuses(
    kubeconfig: Path, api: PCApi, target: str, v4: Family, field: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("bad", v4))  # the schema lets it in
    await api.join(target, "n")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
    bad = snap.pool("bad")
    assert reason(bad, "Ready") == ("False", "Invalid")
    assert field in message(bad, "Ready")
    assert message(bad, "Ready").endswith("; serving nothing")
    assert bad["status"]["observedGeneration"] == bad["metadata"]["generation"]
    assert counts(bad) == ("0", "0", "0")
    assert (snap.cidrs("n"), reason(snap.node("n"))) == ((), ("False", "NoPool"))
