"""The LB-IPAM planner as stories, on views (no API): the rules of DESIGN.md "Services"."""

from __future__ import annotations

from typing import Any

import pytest

from lbipam.core.addresses import parse_block
from lbipam.core.lbplanner import LBPlanner, ServicePlan
from lbipam.core.lbviews import (
    PREFER_DUAL_STACK,
    REQUIRE_DUAL_STACK,
    CurrentCondition,
    PoolView,
    ServiceView,
)
from lbipam.core.poolstatus import pool_status
from lbipam.core.selectors import compile_selector


def pool(name: str, *blocks: str, created: str = "2026-01-01T00:00:00Z", **kw: Any) -> PoolView:
    selector = kw.pop("service_selector", None)
    return PoolView(
        name=name,
        created=created,
        blocks=tuple(parse_block(b) for b in blocks),
        service_selector=compile_selector(selector),
        **kw,
    )


def svc(name: str, namespace: str = "default", **kw: Any) -> ServiceView:
    return ServiceView(namespace=namespace, name=name, uid=name, **kw)


def reasons(plan: ServicePlan) -> list[str]:
    return [e.reason for e in plan.events]


def cond(plan: ServicePlan) -> tuple[str, str]:
    assert plan.condition is not None
    return plan.condition.status, plan.condition.reason


@pytest.fixture
def planner() -> LBPlanner:
    p = LBPlanner(reuse_delay=30.0)
    p.set_pools([pool("default", "192.0.2.0/30")], now=0)
    return p


def test_services_get_the_lowest_free_ips_in_turn(planner: LBPlanner) -> None:
    a = planner.plan(svc("a"), now=0)
    b = planner.plan(svc("b"), now=0)
    assert (a.ingress, a.allocated_from, cond(a)) == (("192.0.2.1",), ("default",), ("True", "Satisfied"))
    assert b.ingress == ("192.0.2.2",)
    assert reasons(a) == ["IPAllocated"]
    assert "192.0.2.1 (pool default)" in a.events[0].note


def test_planning_again_changes_nothing_and_says_nothing(planner: LBPlanner) -> None:
    first = planner.plan(svc("a"), now=0)
    again = planner.plan(svc("a", ingress=first.ingress, condition=first.condition), now=1)
    assert again.ingress == first.ingress
    assert again.events == ()


def test_exhaustion_is_out_of_ips_and_the_reuse_delay_holds_a_released_ip(planner: LBPlanner) -> None:
    planner.plan(svc("a"), now=0)
    planner.plan(svc("b"), now=0)
    full = planner.plan(svc("c"), now=0)
    assert cond(full) == ("False", "OutOfIPs")
    assert "AllocationFailed" in reasons(full)
    assert "c" in {k.split("/")[1] for k in planner.waiting}
    released = planner.forget("default/a", now=10)
    assert reasons(released) == ["IPReleased"]
    assert cond(planner.plan(svc("c"), now=39)) == ("False", "OutOfIPs")
    assert planner.next_expiry == 40
    assert planner.plan(svc("c"), now=40).ingress == ("192.0.2.1",)


@pytest.mark.parametrize(
    ("ips", "reason", "words"),
    [
        pytest.param("198.51.100.7", "NoPool", "198.51.100.7 (lbipam.io/ips) lies in no pool", id="outside"),
        pytest.param("192.0.2.x", "InvalidRequest", "'192.0.2.x' is not an IP address", id="malformed"),
        pytest.param("192.0.2.1,192.0.2.2", "InvalidRequest", "two IPv4", id="two-of-a-family"),
        pytest.param("2001:db8::1", "InvalidRequest", "ipFamilies are IPv4", id="wrong-family"),
        pytest.param("192.0.2.0", "InvalidRequest", "reserved network", id="network-address"),
    ],
)
def test_requested_ips_that_cannot_be_had(planner: LBPlanner, ips: str, reason: str, words: str) -> None:
    plan = planner.plan(svc("a", requested=tuple(ips.split(","))), now=0)
    assert cond(plan) == ("False", reason)
    assert plan.condition is not None
    assert words in plan.condition.message
    assert plan.ingress == ()


def test_a_requested_ip_held_by_another_is_already_allocated(planner: LBPlanner) -> None:
    planner.plan(svc("a", requested=("192.0.2.2",)), now=0)
    plan = planner.plan(svc("b", requested=("192.0.2.2",)), now=0)
    assert cond(plan) == ("False", "AlreadyAllocated")
    assert plan.condition is not None
    assert "default/a" in plan.condition.message


def test_a_pool_that_does_not_select_the_service_is_a_mismatch() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("web", "192.0.2.0/29", service_selector={"matchLabels": {"app": "web"}})], now=0)
    plan = planner.plan(svc("db", labels={"app": "db"}, requested=("192.0.2.3",)), now=0)
    assert cond(plan) == ("False", "PoolSelectorMismatch")
    assert cond(planner.plan(svc("db2", labels={"app": "db"}), now=0)) == ("False", "NoPool")
    assert planner.plan(svc("web", labels={"app": "web"}), now=0).ingress == ("192.0.2.1",)


def test_synthetic_labels_select_by_name_and_namespace() -> None:
    planner = LBPlanner()
    only = {"matchLabels": {"lbipam.io/service-namespace": "prod", "lbipam.io/service-name": "api"}}
    planner.set_pools([pool("prod-api", "192.0.2.0/29", service_selector=only)], now=0)
    assert planner.plan(svc("api", "prod"), now=0).ingress == ("192.0.2.1",)
    assert cond(planner.plan(svc("api", "dev"), now=0)) == ("False", "NoPool")


def test_priority_then_name_and_auto_assign() -> None:
    planner = LBPlanner()
    planner.set_pools(
        [
            pool("b-second", "198.51.100.0/30", priority=1),
            pool("a-first", "192.0.2.0/30", priority=1),
            pool("special", "203.0.113.0/30", priority=0, auto_assign=False),
        ],
        now=0,
    )
    assert planner.plan(svc("x"), now=0).allocated_from == ("a-first",)
    pinned = planner.plan(svc("y", pools=("special",)), now=0)
    assert (pinned.ingress, pinned.allocated_from) == (("203.0.113.1",), ("special",))
    assert cond(planner.plan(svc("z", pools=("nope",)), now=0)) == ("False", "NoPool")


def test_sharing_a_key_lands_on_the_same_ip_unless_ports_clash(planner: LBPlanner) -> None:
    tcp80 = frozenset({("TCP", 80)})
    a = planner.plan(svc("a", sharing_key="k", ports=tcp80), now=0)
    b = planner.plan(svc("b", sharing_key="k", ports=frozenset({("TCP", 443)})), now=0)
    c = planner.plan(svc("c", sharing_key="k", ports=tcp80), now=0)
    assert a.ingress == b.ingress == ("192.0.2.1",)
    assert c.ingress == ("192.0.2.2",)
    clash = planner.plan(svc("d", sharing_key="k", ports=tcp80, requested=("192.0.2.1",)), now=0)
    assert cond(clash) == ("False", "IncompatibleSharing")
    other_ns = planner.plan(svc("e", "other", sharing_key="k", requested=("192.0.2.1",)), now=0)
    assert cond(other_ns) == ("False", "IncompatibleSharing")
    planner.forget("default/a", now=5)
    assert planner.book.holdings["192.0.2.1"].holders.keys() == {"default/b"}


def test_cross_namespace_sharing_needs_both_sides() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("p", "192.0.2.0/30")], now=0)
    both = frozenset({"*"})
    planner.plan(
        svc("a", "one", sharing_key="k", sharing_namespaces=both, ports=frozenset({("TCP", 80)})), now=0
    )
    joined = planner.plan(svc("b", "two", sharing_key="k", sharing_namespaces=frozenset({"one"})), now=0)
    assert joined.ingress == ("192.0.2.1",)


def test_require_dual_stack_is_all_or_nothing_and_prefer_takes_what_it_can() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("v4", "192.0.2.0/30")], now=0)
    req = planner.plan(svc("r", families=(4, 6), policy=REQUIRE_DUAL_STACK), now=0)
    assert (req.ingress, cond(req)) == ((), ("False", "NoPool"))
    assert planner.pools["v4"].allocators[4].used == 0  # the IPv4 taken on the way was given back
    pref = planner.plan(svc("p", families=(4, 6), policy=PREFER_DUAL_STACK), now=0)
    assert (pref.ingress, cond(pref)) == (("192.0.2.1",), ("True", "Satisfied"))
    planner.set_pools([pool("v4", "192.0.2.0/30"), pool("v6", "2001:db8::/126")], now=1)
    later = planner.plan(svc("p", families=(4, 6), policy=PREFER_DUAL_STACK, ingress=pref.ingress), now=1)
    assert later.ingress == ("192.0.2.1", "2001:db8::1")
    assert later.allocated_from == ("v4", "v6")


def test_pool_edits_keep_move_or_drop_ips() -> None:
    planner = LBPlanner(reuse_delay=0)
    planner.set_pools(
        [pool("a", "192.0.2.0/29"), pool("b", "198.51.100.0/29", created="2026-02-01T00:00:00Z")], now=0
    )
    first = planner.plan(svc("s"), now=0)
    assert first.ingress == ("192.0.2.1",)
    planner.set_pools([pool("a", "192.0.2.0/29", disabled=True), pool("b", "198.51.100.0/29")], now=1)
    assert planner.plan(svc("s"), now=1).ingress == ("192.0.2.1",)  # disabling keeps existing IPs
    assert planner.plan(svc("t"), now=1).allocated_from == ("b",)  # ... but hands out nothing new
    planner.set_pools([pool("b", "198.51.100.0/29")], now=2)  # pool a deleted: s moves to b
    moved = planner.plan(svc("s"), now=2)
    assert (moved.ingress, reasons(moved)) == (("198.51.100.2",), ["IPReleased", "IPAllocated"])
    planner.set_pools([], now=3)
    lost = planner.plan(svc("s"), now=3)
    assert (lost.ingress, cond(lost)) == ((), ("False", "NoPool"))


def test_an_ip_stays_when_a_new_pool_takes_over_its_range() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("old", "192.0.2.0/29")], now=0)
    planner.plan(svc("s"), now=0)
    planner.set_pools([pool("new", "192.0.2.0/28")], now=1)
    plan = planner.plan(svc("s", ingress=("192.0.2.1",)), now=1)
    assert (plan.ingress, plan.allocated_from, plan.events) == (("192.0.2.1",), ("new",), ())


def test_the_newer_of_two_overlapping_pools_serves_nothing() -> None:
    planner = LBPlanner()
    older = pool("older", "192.0.2.0/24", created="2026-01-01T00:00:00Z")
    newer = pool("newer", "192.0.2.128/25", created="2026-01-02T00:00:00Z", priority=-1)
    planner.set_pools([newer, older], now=0)
    assert planner.plan(svc("s"), now=0).allocated_from == ("older",)
    status = dict(pool_status(planner.pools["newer"]).conditions)
    assert status["Conflict"].status == "True"
    assert "older" in status["Conflict"].message
    assert dict(pool_status(planner.pools["older"]).conditions)["Conflict"].status == "False"


def test_an_invalid_edit_keeps_serving_from_the_last_valid_spec() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("p", "192.0.2.0/29", generation=1)], now=0)
    planner.plan(svc("s"), now=0)
    broken = pool("p", "192.0.2.0/29", generation=2, problems=("spec.blocks[1]: start is after stop",))
    planner.set_pools([broken], now=1)
    assert planner.plan(svc("s", ingress=("192.0.2.1",)), now=1).ingress == ("192.0.2.1",)
    ready = dict(pool_status(planner.pools["p"]).conditions)["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert "last valid spec (generation 1)" in ready.message


def test_a_restart_imports_every_ip_and_changes_nothing() -> None:
    pools = [pool("p", "192.0.2.0/29"), pool("q", "198.51.100.0/29", priority=1)]
    before = LBPlanner()
    before.set_pools(pools, now=0)
    views = [
        svc(n, sharing_key="k" if n in "ab" else None, ports=frozenset({("TCP", ord(n))})) for n in "abcd"
    ]
    plans = {v.key: before.plan(v, now=0) for v in views}
    after = LBPlanner()
    after.set_pools(pools, now=100)
    current = [
        svc(
            v.name,
            sharing_key=v.sharing_key,
            ports=v.ports,
            ingress=plans[v.key].ingress,
            condition=plans[v.key].condition,
            marked=True,
        )
        for v in reversed(views)
    ]
    for view in current:
        after.import_service(view, now=100)
    for view in current:
        plan = after.plan(view, now=100)
        assert (plan.ingress, plan.events) == (plans[view.key].ingress, ())
    assert pool_status(after.pools["p"]).counts["ipv4"] == pool_status(before.pools["p"]).counts["ipv4"]


def test_an_ip_outside_every_pool_at_start_is_kept_and_reported() -> None:
    planner = LBPlanner()
    planner.set_pools([pool("p", "192.0.2.0/29")], now=0)
    view = svc("s", ingress=("203.0.113.9",), condition=CurrentCondition("True", "Satisfied", "x"))
    planner.import_service(view, now=0)
    plan = planner.plan(view, now=0)
    assert (plan.ingress, cond(plan)) == (("203.0.113.9",), ("False", "NoPool"))
    assert reasons(plan) == ["AllocationFailed"]
    planner.set_pools([pool("p", "192.0.2.0/29"), pool("late", "203.0.113.0/28")], now=1)
    healed = planner.plan(view, now=1)
    assert (healed.ingress, healed.allocated_from, cond(healed)) == (
        ("203.0.113.9",),
        ("late",),
        ("True", "Satisfied"),
    )


def test_an_unhandled_service_lets_go() -> None:
    planner = LBPlanner(reuse_delay=0)
    planner.set_pools([pool("p", "192.0.2.0/30")], now=0)
    plan = planner.plan(svc("s"), now=0)
    gone = planner.plan(svc("s", handled=False, condition=plan.condition), now=1)
    assert (gone.manage, gone.clear_ingress, reasons(gone)) == (False, True, ["IPReleased"])
    assert planner.pools["p"].allocators[4].used == 0
    assert planner.plan(svc("other-class", handled=False), now=1).clear_ingress is False


def test_a_rolled_back_require_dual_stack_allocation_frees_nothing() -> None:
    """What a plan takes and gives back at once was free before: no waiting Service gains from it,
    so `freed` (which makes the controller replan every waiting Service) must stay unset."""
    planner = LBPlanner(reuse_delay=0)
    planner.set_pools([pool("v4", "192.0.2.0/30")], now=0)
    planner.freed = False
    plan = planner.plan(svc("r", families=(4, 6), policy=REQUIRE_DUAL_STACK), now=0)
    assert (plan.ingress, planner.freed, "default/r" in planner.waiting) == ((), False, True)


def test_a_requested_ip_under_the_reuse_delay_says_so_in_words_a_user_can_read(planner: LBPlanner) -> None:
    """The allocator's own message carries a monotonic clock reading ("until t=12.5"), which means
    nothing to a user; the condition names the holder and the delay instead, and stays the same
    while the delay runs (so replanning does not rewrite it)."""
    planner.plan(svc("a"), now=0)
    planner.forget("default/a", now=10)
    first = planner.plan(svc("b", requested=("192.0.2.1",)), now=11)
    again = planner.plan(svc("b", requested=("192.0.2.1",)), now=12)
    assert cond(first) == ("False", "AlreadyAllocated")
    assert first.condition == again.condition
    assert first.condition is not None
    assert first.condition.message == (
        "192.0.2.1 (lbipam.io/ips) was released by default/a and is held back by the reuse delay (30s)"
    )


def test_an_unreadable_request_on_a_service_with_an_ip_is_reported_false(planner: LBPlanner) -> None:
    """A request lbipam cannot read keeps what the Service has, but says InvalidRequest: a True
    condition would tell the user all is well while their annotation is being ignored."""
    first = planner.plan(svc("s"), now=0)
    broken = svc("s", ingress=first.ingress, problems=("unknown annotation lbipam.io/bogus",))
    plan = planner.plan(broken, now=1)
    assert (plan.ingress, cond(plan)) == (("192.0.2.1",), ("False", "InvalidRequest"))
    assert plan.condition is not None
    assert plan.condition.message == "unknown annotation lbipam.io/bogus"
    assert reasons(plan) == ["AllocationFailed"]


def test_an_unreadable_request_is_what_the_condition_names_even_with_an_orphan_ip() -> None:
    """An orphan kept from start-up and a broken annotation: the user must fix the annotation,
    so InvalidRequest is the reason (the orphan alone would be NoPool)."""
    planner = LBPlanner()
    planner.set_pools([pool("p", "192.0.2.0/30")], now=0)
    view = svc("s", ingress=("203.0.113.9",), problems=("unknown annotation lbipam.io/bogus",))
    planner.import_service(view, now=0)
    plan = planner.plan(view, now=0)
    assert (plan.ingress, cond(plan)) == (("203.0.113.9",), ("False", "InvalidRequest"))


def test_an_unreadable_request_keeps_no_ip_it_may_no_longer_share(planner: LBPlanner) -> None:
    """Ports, traffic policy and selector are read even when an annotation is not: a Service that
    now clashes with its sharer lets the shared IP go, or two Services would answer one port."""
    a = planner.plan(svc("a", sharing_key="k", ports=frozenset({("TCP", 80)})), now=0)
    b = planner.plan(svc("b", sharing_key="k", ports=frozenset({("TCP", 443)})), now=0)
    assert a.ingress == b.ingress == ("192.0.2.1",)
    clash = svc("b", sharing_key="k", ports=frozenset({("TCP", 80)}), problems=("unknown annotation x",))
    plan = planner.plan(clash, now=1)
    assert (plan.ingress, cond(plan), reasons(plan)) == (
        (),
        ("False", "InvalidRequest"),
        ["IPReleased", "AllocationFailed"],
    )
    assert planner.book.holdings["192.0.2.1"].holders.keys() == {"default/a"}
