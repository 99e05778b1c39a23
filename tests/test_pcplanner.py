"""The PodCIDR planner as stories, on views: pool choice, growth, immutability, restarts."""

from __future__ import annotations

from typing import Any

from lbipam.core.addresses import cidr_block
from lbipam.core.pcplanner import PodCIDRPlanner
from lbipam.core.pcviews import FamilySpec, NodeView, PCPoolView
from lbipam.core.poolstatus import pool_status
from lbipam.core.selectors import compile_selector


def pcpool(name: str, v4: tuple[list[str], int] | None = None, v6: tuple[list[str], int] | None = None,
           created: str = "2026-01-01T00:00:00Z", **kw: Any) -> PCPoolView:  # fmt: skip
    families = {}
    for family, spec in ((4, v4), (6, v6)):
        if spec:
            families[family] = FamilySpec(tuple(cidr_block(c) for c in spec[0]), spec[1])
    selector = kw.pop("node_selector", None)
    return PCPoolView(name, created, families=families, node_selector=compile_selector(selector), **kw)


def node(name: str, **kw: Any) -> NodeView:
    return NodeView(name, uid=name, **kw)


def status(planner: PodCIDRPlanner, name: str) -> dict[str, tuple[str, str]]:
    state = planner.pools[name]
    plan = pool_status(state, state.refused, changes=True)
    return {t: (c.status, c.reason) for t, c in plan.conditions}


def refused(planner: PodCIDRPlanner, name: str) -> str | None:
    return planner.pools[name].refused  # a call: mypy keeps no narrowing across set_pools


def test_nodes_get_one_cidr_per_family_in_order() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools([pcpool("p", (["10.244.0.0/16"], 24), (["fd00:10:244::/56"], 64))], now=0)
    a = planner.plan(node("a"), now=0)
    b = planner.plan(node("b"), now=0)
    assert a.cidrs == ("10.244.0.0/24", "fd00:10:244::/64")
    assert b.cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert (a.condition.status, a.condition.reason, a.pools) == ("True", "Allocated", ("p",))
    assert [e.reason for e in a.events] == ["CIDRAssigned", "CIDRAssigned"]


def test_node_selector_priority_and_disabled() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools(
        [
            pcpool("edge", (["10.1.0.0/16"], 24), node_selector={"matchLabels": {"zone": "edge"}}),
            pcpool("b", (["10.2.0.0/16"], 24), priority=5),
            pcpool("a", (["10.3.0.0/16"], 24), priority=5),
            pcpool("off", (["10.4.0.0/16"], 24), disabled=True),
        ],
        now=0,
    )
    assert planner.plan(node("e", labels={"zone": "edge"}), now=0).pools == ("edge",)
    assert planner.plan(node("x"), now=0).pools == ("a",)


def test_dual_stack_is_all_or_nothing() -> None:
    planner = PodCIDRPlanner(reuse_delay=0)
    planner.set_pools([pcpool("p", (["10.0.0.0/23"], 24), (["fd00::/120"], 120))], now=0)
    planner.plan(node("a"), now=0)
    full = planner.plan(node("b"), now=0)
    assert (full.cidrs, full.condition.reason) == ((), "CIDRNotAvailable")
    assert "IPv6" in full.condition.message
    assert full.error == full.condition.message
    assert [e.reason for e in full.events] == ["CIDRNotAvailable"]
    assert planner.pools["p"].allocators[4].used == 1  # the IPv4 /24 taken on the way went back
    assert "b" in planner.waiting


def test_exhaustion_then_growth_by_appending() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools([pcpool("p", (["10.0.0.0/24"], 24), generation=1)], now=0)
    planner.plan(node("a"), now=0)
    assert planner.plan(node("b"), now=0).condition.reason == "CIDRNotAvailable"
    assert status(planner, "p")["Exhausted"] == ("True", "NoAddressesFree")
    planner.set_pools([pcpool("p", (["10.0.0.0/24", "10.9.0.0/24"], 24), generation=2)], now=1)
    assert planner.plan(node("b"), now=1).cidrs == ("10.9.0.0/24",)
    assert status(planner, "p")["InvalidChange"] == ("False", "Accepted")


def test_mask_change_and_cidr_removal_are_refused_while_in_use() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools([pcpool("p", (["10.0.0.0/16", "10.1.0.0/16"], 24), generation=1)], now=0)
    planner.plan(node("a"), now=0)
    planner.set_pools([pcpool("p", (["10.0.0.0/16", "10.1.0.0/16"], 26), generation=2)], now=1)
    assert status(planner, "p")["InvalidChange"] == ("True", "Refused")
    state = planner.pools["p"]
    assert state.refused is not None
    assert "append a new CIDR" in state.refused
    assert planner.plan(node("b"), now=1).cidrs == ("10.0.1.0/24",)  # served from the old spec
    planner.set_pools([pcpool("p", (["10.1.0.0/16"], 24), generation=3)], now=2)
    assert planner.pools["p"].refused is not None
    assert "10.0.0.0/16 cannot be removed" in planner.pools["p"].refused
    planner.set_pools([pcpool("p", (["10.0.0.0/16"], 24), generation=4)], now=3)  # unused: allowed
    assert refused(planner, "p") is None
    assert planner.plan(node("c"), now=3).cidrs == ("10.0.2.0/24",)


def test_overlapping_pools_newer_loses() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools(
        [
            pcpool("old", (["10.0.0.0/16"], 24), created="2026-01-01T00:00:00Z"),
            pcpool("new", (["10.0.128.0/17"], 24), created="2026-02-01T00:00:00Z", priority=-1),
        ],
        now=0,
    )
    assert planner.plan(node("a"), now=0).pools == ("old",)
    assert status(planner, "new")["Conflict"] == ("True", "Overlap")


def test_restart_imports_and_an_outside_cidr_is_kept_and_reported() -> None:
    pools = [pcpool("p", (["10.0.0.0/16"], 24))]
    planner = PodCIDRPlanner()
    planner.set_pools(pools, now=0)
    planner.import_node(node("a", cidrs=("10.0.5.0/24",)), now=0)
    planner.import_node(node("stray", cidrs=("192.168.7.0/24",)), now=0)
    assert planner.plan(node("a", cidrs=("10.0.5.0/24",)), now=0).events == ()
    assert planner.plan(node("b"), now=0).cidrs == ("10.0.0.0/24",)
    stray = planner.plan(node("stray", cidrs=("192.168.7.0/24",)), now=0)
    assert (stray.cidrs, stray.condition.reason) == (("192.168.7.0/24",), "OutsidePools")
    assert [e.reason for e in stray.events] == ["CIDROutsidePools"]


def test_a_deleted_nodes_cidr_waits_for_the_reuse_delay() -> None:
    planner = PodCIDRPlanner(reuse_delay=30)
    planner.set_pools([pcpool("p", (["10.0.0.0/23"], 24))], now=0)
    planner.plan(node("a"), now=0)
    planner.plan(node("b"), now=0)
    assert [e.reason for e in planner.forget("a", now=10)] == ["CIDRReleased"]
    assert planner.plan(node("c"), now=20).condition.reason == "CIDRNotAvailable"
    assert planner.next_expiry == 40
    planner.expire(40)
    assert planner.plan(node("c"), now=40).cidrs == ("10.0.0.0/24",)


def test_an_all_or_nothing_failure_frees_nothing_for_waiting_nodes() -> None:
    """Giving back the IPv4 CIDR a failed dual-stack plan took frees nothing anyone waited for:
    were `freed` set, the loop would retry every waiting Node (this one too) for ever."""
    planner = PodCIDRPlanner()
    planner.set_pools([pcpool("p", (["10.0.0.0/24"], 25), (["fd00::/120"], 120))], now=0)
    assert planner.plan(node("a"), now=0).cidrs == ("10.0.0.0/25", "fd00::/120")
    planner.freed = False
    b = planner.plan(node("b"), now=0)
    assert (b.cidrs, b.condition.reason) == ((), "CIDRNotAvailable")
    assert planner.waiting == {"b"}
    assert not planner.freed
    assert planner.pools["p"].allocators[4].available == 1  # the /25 b took went back


def test_refusals_follow_the_holders() -> None:
    planner = PodCIDRPlanner()
    planner.set_pools([pcpool("p", (["10.0.0.0/24"], 26))], now=0)
    planner.plan(node("a"), now=0)
    planner.set_pools([pcpool("p", (["10.0.0.0/24"], 27))], now=0)
    assert "while 1 node(s) hold /26s" in (planner.pools["p"].refused or "")
    planner.plan(node("b"), now=0)  # still served from the accepted /26s
    planner.touched = {"p"}
    assert not planner.recheck_refusals()
    assert "while 2 node(s) hold /26s" in (planner.pools["p"].refused or "")
    planner.forget("a", now=0)
    planner.forget("b", now=0)
    planner.touched = {"p"}
    assert planner.recheck_refusals()  # nobody holds a /26: the caller sets the pools again
    planner.set_pools([pcpool("p", (["10.0.0.0/24"], 27))], now=0)
    assert planner.pools["p"].refused is None
    # a's and b's /26s are still under the reuse delay, as /27s now: c gets the first free /27
    assert planner.plan(node("c"), now=0).cidrs == ("10.0.0.128/27",)
