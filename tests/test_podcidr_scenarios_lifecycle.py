"""PodCIDR end to end, for every `--podcidr-target`: a Node's CIDRs over its life and the
controller's. A restart imports every CIDR and changes nothing; a CIDR found outside every pool
(kube #82773) is kept and reported, never handed out twice, never a crash; a deleted Node's CIDR
comes back only after the reuse delay; CIDRs are written only where none are (for `node`:
spec.podCIDR(s) only while empty); a CiliumNode that appears late is served then.
"""

from __future__ import annotations

from pathlib import Path

import netaddr
import pytest

from lbipam.k8s.resources import CILIUMNODES, NODES, PODCIDRPOOLS
from tests.helpers import eventually
from tests.podcidr_harness import (
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


def overlaps(snap: PCSnapshot) -> list[tuple[str, str]]:
    """Pairs of Nodes whose CIDRs overlap."""
    held = [(n, netaddr.IPNetwork(c)) for n, cidrs in snap.assigned().items() for c in cidrs]
    return [(a, b) for i, (a, x) in enumerate(held) for b, y in held[i + 1 :] if x in y or y in x]


async def test_a_restart_imports_everything_and_changes_nothing(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/27"], 28), (["2001:db8::/32"], 120)))
    for name in ("c", "a", "b"):
        await api.join(target, name)
    async with controller(kubeconfig, target) as ctl:
        before = await ctl.settle(api)
    events = {n: await api.node_events(n) for n in "abc"}
    assert before.reasons()["c"] == ("False", "CIDRNotAvailable")  # two /28s for three nodes
    async with controller(kubeconfig, target) as ctl:
        after = await ctl.settle(api)
        assert after.versions() == before.versions()  # not one write: no Node, CiliumNode or pool
        assert ctl.podcidr.status.writes == 0
        assert {n: await api.node_events(n) for n in "abc"} == events
        # Every imported CIDR is taken: growing the pool serves c from the new CIDR.
        await api.spec("p", {"ipv4": {"cidrs": ["192.0.2.0/27", "198.51.100.0/28"]}})
        grown = await ctl.settle(api)
    assert grown.assigned() == {**before.assigned(), "c": ("198.51.100.0/28", "2001:db8::200/120")}
    assert counts(grown.pool("p"), 6) == (str(2**88), "3", str(2**88 - 3))


@pytest.mark.parametrize(
    ("stray", "others", "used"),
    [
        pytest.param(("203.0.113.0/24",), ("192.0.2.0/28", "192.0.2.16/28", "192.0.2.32/28"), "4",
                     id="outside-every-pool"),
        pytest.param(("192.0.2.32/27",), ("192.0.2.0/28", "192.0.2.16/28", ()), "5",
                     id="in-a-pool-with-a-shorter-mask"),
        pytest.param(("192.0.2.40/29",), ("192.0.2.0/28", "192.0.2.16/28", "192.0.2.48/28"), "5",
                     id="in-a-pool-with-a-longer-mask"),
        pytest.param(("192.0.2.0/23",), ((), (), ()), "5", id="over-a-whole-pool-cidr"),
        pytest.param(("192.0.2.16/28", "2001:db8:ffff::/120"),
                     ("192.0.2.0/28", "192.0.2.32/28", "192.0.2.48/28"), "5", id="one-family-outside"),
    ],
)  # fmt: skip
async def test_a_cidr_outside_the_pools_is_kept_reported_and_never_handed_out(
    kubeconfig: Path, api: PCApi, target: str, stray: tuple[str, ...], others: tuple[object, ...], used: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26", "198.51.100.0/28"], 28)))
    await api.join(target, "stray", cidrs=stray)  # by hand, before lbipam runs
    await api.join(target, "fine", cidrs=["198.51.100.0/28"])
    for name in ("n1", "n2", "n3"):
        await api.join(target, name)
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        before = snap.versions()
        assert (snap.cidrs("stray"), reason(snap.node("stray"))) == (stray, OUTSIDE)
        outside = [c for c in stray if not c.startswith("192.0.2.16/")]
        assert message(snap.node("stray")) == (
            f"{', '.join(outside)} lies in no PodCIDRPool that serves it; kept, never handed out"
        )
        assert await api.node_reasons("stray") == [("Warning", "CIDROutsidePools")]
        if target in CILIUM:
            assert operator_error(snap.cn("stray")) == message(snap.node("stray"))
        assert (snap.cidrs("fine"), reason(snap.node("fine"))) == (("198.51.100.0/28",), ALLOCATED)
        assert await api.node_reasons("fine") == []  # imported: nothing assigned anew
        # What the stray covers is not handed out again (and is counted as used).
        assert tuple(c[0] if c else () for c in map(snap.cidrs, ("n1", "n2", "n3"))) == others
        assert overlaps(snap) == []
        assert counts(snap.pool("p")) == ("5", used, str(5 - int(used)))
    async with controller(kubeconfig, target) as ctl:  # and a restart sees the same
        assert (await ctl.settle(api)).versions() == before
        await api.leave("stray")  # once the stray goes, what it covered is free again
        snap = await ctl.settle(api)
    assert counts(snap.pool("p")) == ("5", "4", "1")  # fine, n1, n2, n3: all served now
    assert all(snap.cidrs(n) for n in ("n1", "n2", "n3"))
    assert overlaps(snap) == []


async def test_a_stray_too_wide_to_block_at_once_is_never_overlapped(kubeconfig: Path, api: PCApi) -> None:
    # 2001:db8::/96 covers all 2^20 /124s of the pool: they are blocked as allocation meets them,
    # a bounded number per try, so n waits (never an overlap) until the stray goes.
    await api.create(PODCIDRPOOLS, pcpool("p", v6=(["2001:db8::/104"], 124)))
    await api.join("node", "stray", cidrs=["2001:db8::/96"])
    await api.join("node", "n")
    async with controller(kubeconfig, "node") as ctl:
        snap = await ctl.settle(api)
        assert (snap.cidrs("n"), reason(snap.node("n"))) == ((), ("False", "CIDRNotAvailable"))
        assert reason(snap.node("stray")) == OUTSIDE
        await api.leave("stray")
        snap = await ctl.settle(api)
    assert (snap.cidrs("n"), reason(snap.node("n"))) == (("2001:db8::/124",), ALLOCATED)
    assert counts(snap.pool("p"), 6) == (str(2**20), "1", str(2**20 - 1))


async def test_a_deleted_nodes_cidr_returns_after_the_reuse_delay(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/27"], 28)))
    await api.join(target, "a")
    await api.join(target, "b")
    async with controller(kubeconfig, target, reuse_delay=1.0) as ctl:
        assert (await ctl.settle(api)).cidrs("a") == ("192.0.2.0/28",)
        await api.leave("a")
        await api.join(target, "c")

        async def c_waits() -> bool:
            return reason(await api.node("c")) == ("False", "CIDRNotAvailable")

        await eventually(c_waits, timeout=10)  # a's CIDR is held back: c must wait ...
        snap = await ctl.settle(api)  # ... until the delay ends (settle waits for that)
    assert snap.cidrs("c") == ("192.0.2.0/28",)
    assert await api.node_reasons("c") == [("Warning", "CIDRNotAvailable"), ("Normal", "CIDRAssigned")]
    released = [e for e in await api.node_events("a") if e["reason"] == "CIDRReleased"]
    assert [e["note"] for e in released] == ["192.0.2.0/28 (pool p)"]
    assert counts(snap.pool("p")) == ("2", "2", "0")


async def test_cidrs_are_written_only_where_none_are(kubeconfig: Path, api: PCApi, target: str) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28), (["2001:db8::/112"], 120)))
    async with controller(kubeconfig, target) as ctl:
        await ctl.settle(api)
        # Written by someone else while lbipam runs: imported as they are, never rewritten; for
        # the node target this is kube-controller-manager's rule (spec.podCIDRs only while empty).
        await api.join(target, "by-hand", cidrs=["192.0.2.16/28"])
        await api.join(target, "n")
        snap = await ctl.settle(api)
    assert snap.cidrs("by-hand") == ("192.0.2.16/28",)
    assert (reason(snap.node("by-hand")), message(snap.node("by-hand"))) == (
        ALLOCATED,
        "192.0.2.16/28 (pool p)",
    )
    assert snap.cidrs("n") == ("192.0.2.0/28", "2001:db8::/120")
    assert (counts(snap.pool("p"), 4), counts(snap.pool("p"), 6)) == (("4", "2", "2"), ("256", "1", "255"))
    assert await api.node_reasons("by-hand") == []


async def test_a_ciliumnode_that_appears_late_is_served_then(kubeconfig: Path, api: PCApi) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    created = await api.create(NODES, node("n"))  # the agent has not started yet
    async with controller(kubeconfig, "ciliumnode") as ctl:
        await ctl.settle(api)
        await api.create(CILIUMNODES, ciliumnode(created))
        snap = await ctl.settle(api)
    assert snap.cidrs("n") == ("192.0.2.0/28",)
    assert (reason(snap.node("n")), operator_error(snap.cn("n"))) == (ALLOCATED, "")
