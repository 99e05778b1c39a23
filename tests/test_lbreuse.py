"""The reuse delay's record (lbipam/core/lbreuse.py) through the LB-IPAM planner, as stories on
views: it follows a range into another pool, lists in the pools' status within a bound, and a
planner started from what the status listed holds back the same (and, past the bound, pauses the
pool until the last unlisted delay ends)."""

from __future__ import annotations

from typing import Any

from lbipam.core.addresses import parse_block
from lbipam.core.lbplanner import LBPlanner
from lbipam.core.lbreuse import MAX_LISTED, Held
from lbipam.core.lbviews import PoolView, ServiceView

DELAY = 30.0


def pool(name: str, *blocks: str, **kw: Any) -> PoolView:
    return PoolView(
        name=name, created="2026-01-01T00:00:00Z", blocks=tuple(parse_block(b) for b in blocks), **kw
    )


def svc(name: str, **kw: Any) -> ServiceView:
    return ServiceView(namespace="default", name=name, uid=name, **kw)


def cond(planner: LBPlanner, view: ServiceView, now: float) -> tuple[tuple[str, ...], str, str]:
    plan = planner.plan(view, now)
    assert plan.condition is not None
    return plan.ingress, plan.condition.reason, plan.condition.message


def test_a_hold_follows_its_range_into_another_pool_and_both_list_it() -> None:
    planner = LBPlanner(DELAY)
    planner.set_pools([pool("a", "192.0.2.0/30", "198.51.100.0/30")], now=0)
    assert planner.plan(svc("s", requested=("192.0.2.1",)), now=0).ingress == ("192.0.2.1",)
    planner.forget("default/s", now=1)
    planner.set_pools([pool("a", "198.51.100.0/30"), pool("b", "192.0.2.0/30")], now=2)
    got = cond(planner, svc("t", requested=("192.0.2.1",)), now=3)
    assert got[:2] == ((), "AlreadyAllocated")
    assert "released by default/s and is held back by the reuse delay" in got[2]
    for name in ("a", "b"):  # released from a, held in b now: a crash between writes loses nothing
        assert [h.ip for h in planner.record.listing(name).held] == ["192.0.2.1"]
    planner.expire(now=1 + DELAY)
    assert cond(planner, svc("t", requested=("192.0.2.1",)), now=1 + DELAY)[:2] == (
        ("192.0.2.1",),
        "Satisfied",
    )
    assert planner.record.listing("b").held == ()


def test_the_service_that_released_an_ip_may_take_it_back_and_the_record_forgets_it() -> None:
    planner = LBPlanner(DELAY)
    planner.set_pools([pool("p", "192.0.2.0/30")], now=0)
    planner.plan(svc("s"), now=0)
    planner.plan(svc("s", requested=("192.0.2.2",)), now=1)  # lets 192.0.2.1 go
    assert [h.ip for h in planner.record.listing("p").held] == ["192.0.2.1"]
    assert planner.plan(svc("s"), now=2).ingress == ("192.0.2.2",)
    assert planner.plan(svc("s", requested=("192.0.2.1",)), now=3).ingress == ("192.0.2.1",)
    assert [h.ip for h in planner.record.listing("p").held] == ["192.0.2.2"]


def test_a_pool_lists_at_most_the_bound_and_says_how_many_more_and_until_when() -> None:
    planner = LBPlanner(DELAY)
    planner.set_pools([pool("p", "10.0.0.0/20")], now=0)
    count = MAX_LISTED + 5
    for index in range(count):
        planner.plan(svc(f"s{index}"), now=0)
    for index in range(count):
        planner.forget(f"default/s{index}", now=float(index))  # s0's delay ends first
    listing = planner.record.listing("p")
    assert (len(listing.held), listing.omitted, listing.omitted_until) == (MAX_LISTED, 5, 4 + DELAY)
    assert min(h.until for h in listing.held) == 5 + DELAY  # those held longest are listed


def test_a_planner_started_from_the_status_holds_back_the_same_and_pauses_past_the_bound() -> None:
    before = LBPlanner(DELAY)
    before.set_pools([pool("p", "192.0.2.0/29")], now=0)
    before.plan(svc("gone"), now=0)
    before.plan(svc("keeps"), now=0)
    before.forget("default/gone", now=5)
    listed = before.record.listing("p").held
    assert [(h.ip, h.until, h.owner) for h in listed] == [("192.0.2.1", 5 + DELAY, "default/gone")]

    after = LBPlanner(DELAY)  # a new leader: its own clock, the status's times converted to it
    after.set_pools([pool("p", "192.0.2.0/29")], now=100)
    after.import_service(svc("keeps", ingress=("192.0.2.2",)), now=100)
    shifted = [Held(h.ip, h.family, h.until + 100, h.owner, "p") for h in listed]
    after.restore_held(shifted, {"p": (150.0, 7)}, now=100)  # 7 more were not listed, until 150
    assert after.pools["p"].allocators[4].quarantined == 1
    waits = cond(after, svc("new"), now=101)
    assert waits[:2] == ((), "OutOfIPs")
    assert "hold back the addresses released before the controller restarted" in waits[2]
    assert after.next_expiry == 5 + DELAY + 100  # the listed one ends first, then the pause
    after.expire(now=150)
    assert cond(after, svc("new"), now=150)[:2] == (("192.0.2.1",), "Satisfied")  # its delay ended too
    assert after.record.listing("p").omitted == 0


def test_a_recorded_hold_never_takes_an_ip_a_service_carries() -> None:
    """The record is imported after the Services: an address one of them carries is theirs."""
    planner = LBPlanner(DELAY)
    planner.set_pools([pool("p", "192.0.2.0/29")], now=0)
    planner.import_service(svc("s", ingress=("192.0.2.1",)), now=0)
    planner.restore_held([Held("192.0.2.1", 4, 20.0, "default/old", "p")], {}, now=0)
    assert planner.plan(svc("s", ingress=("192.0.2.1",)), now=1).ingress == ("192.0.2.1",)
    assert planner.pools["p"].allocators[4].quarantined == 0
