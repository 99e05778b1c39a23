"""PodCIDR end to end: the target is the record. When a hand (or another operator) changes the
CIDRs a target shows, lbipam follows what the target shows: it imports the new CIDRs, gives back
the ones no longer shown, reports what lies outside the pools or is no CIDR at all, and serves a
Node anew once such a value is removed, never writing a stray value back. For the targets whose
CIDRs can change after they are written (`node` keeps spec.podCIDRs as first set).
"""

from __future__ import annotations

from pathlib import Path

import netaddr
import pytest

from lbipam.k8s.resources import CILIUMNODES, NODES, PODCIDRPOOLS
from tests.podcidr_harness import (
    ANNOTATIONS,
    CILIUM,
    PCApi,
    PCSnapshot,
    ciliumnode,
    controller,
    counts,
    message,
    node,
    operator_error,
    pcpool,
    reason,
)

ALLOCATED = ("True", "Allocated")
OUTSIDE = ("False", "OutsidePools")
EDITABLE = ("ciliumnode", "ciliumnode-pool", "node-annotations")


@pytest.fixture(params=EDITABLE)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def overlaps(snap: PCSnapshot) -> list[tuple[str, str]]:
    """Pairs of Nodes whose CIDRs overlap."""
    held = [(n, netaddr.IPNetwork(c)) for n, cidrs in snap.assigned().items() for c in cidrs if "/" in c]
    return [(a, b) for i, (a, x) in enumerate(held) for b, y in held[i + 1 :] if x in y or y in x]


async def test_a_hand_edit_of_the_cidr_wins(kubeconfig: Path, api: PCApi, target: str) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        assert (await ctl.settle(api)).cidrs("a") == ("192.0.2.0/28",)
        await api.rewrite(target, "a", ["192.0.2.32/28"])
        await api.join(target, "b")
        await api.join(target, "c")
        snap = await ctl.settle(api)
    assert snap.cidrs("a") == ("192.0.2.32/28",)
    assert (reason(snap.node("a")), message(snap.node("a"))) == (ALLOCATED, "192.0.2.32/28 (pool p)")
    assert (snap.cidrs("b"), snap.cidrs("c")) == (("192.0.2.0/28",), ("192.0.2.16/28",))  # .0 given back
    assert counts(snap.pool("p")) == ("4", "3", "1")
    assert overlaps(snap) == []


@pytest.mark.parametrize("target", CILIUM)
async def test_a_late_ciliumnode_with_cidrs_of_its_own_wins(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    async with controller(kubeconfig, target) as ctl:
        created = await api.create(NODES, node("n"))  # its agent has not started yet
        await ctl.settle(api)
        await api.create(CILIUMNODES, ciliumnode(created, {"podCIDRs": ["192.0.2.16/28"]}))
        await api.join(target, "m")
        snap = await ctl.settle(api)
    assert snap.cidrs("n") == ("192.0.2.16/28",)
    assert (reason(snap.node("n")), message(snap.node("n"))) == (ALLOCATED, "192.0.2.16/28 (pool p)")
    assert operator_error(snap.cn("n")) == ""
    assert snap.cidrs("m") == ("192.0.2.0/28",)
    assert counts(snap.pool("p")) == ("4", "2", "2")


async def test_removing_a_stray_cidr_lets_the_node_be_served(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "n", cidrs=["203.0.113.0/24"])
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        assert (snap.cidrs("n"), reason(snap.node("n"))) == (("203.0.113.0/24",), OUTSIDE)
        await api.rewrite(target, "n", [])
        snap = await ctl.settle(api)
    assert (snap.cidrs("n"), reason(snap.node("n"))) == (("192.0.2.0/28",), ALLOCATED)  # not the stray again
    assert await api.node_reasons("n") == [("Warning", "CIDROutsidePools"), ("Normal", "CIDRAssigned")]
    if target in CILIUM:
        assert operator_error(snap.cn("n")) == ""


async def test_an_annotation_that_is_no_cidr_is_reported_until_removed(kubeconfig: Path, api: PCApi) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28), (["2001:db8::/112"], 120)))
    banana = {"metadata": {"annotations": {ANNOTATIONS[4]: "banana"}}}
    await api.create(NODES, node("n", fragment=banana))
    async with controller(kubeconfig, "node-annotations") as ctl:
        snap = await ctl.settle(api)
        assert (snap.cidrs("n"), reason(snap.node("n"))) == (("banana",), OUTSIDE)
        assert "'banana' is not a CIDR" in message(snap.node("n"))
        assert (counts(snap.pool("p"), 4), counts(snap.pool("p"), 6)) == (
            ("4", "0", "4"),
            ("256", "0", "256"),
        )
        await api.rewrite("node-annotations", "n", [])
        snap = await ctl.settle(api)
    assert (snap.cidrs("n"), reason(snap.node("n"))) == (("192.0.2.0/28", "2001:db8::/120"), ALLOCATED)
