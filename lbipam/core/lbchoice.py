"""Which LoadBalancerIPPools may serve a Service, and why not: the LB-IPAM planner's choice of
pools (DESIGN.md "Services", README "Which pools").

A pool is eligible for a family when it serves (accepted, no lost Conflict), is not disabled or
paused (after a restart it holds back addresses it could not list, see `lbreuse`), has addresses
of the family, is named by the Service's `lbipam.io/pool` (or, without a pin, auto-assigns), and
its selectors select the Service. Eligible pools come in pool order (priority, then name). The
failures name the pools, annotation or selector at fault. `Waits` remembers which pools (and
families) Services wait on in vain, for the pools' Exhausted condition. Pure; called by
`lbplanner`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from netaddr import IPAddress

from lbipam.core.lbpools import PoolState
from lbipam.core.lbrequests import FAMILY_NAME, NO_POOL, OUT_OF_IPS, POOL_SELECTOR_MISMATCH, Failure
from lbipam.core.lbviews import ServiceView
from lbipam.core.poolorder import ordered


def eligible(
    pools: Mapping[str, PoolState], view: ServiceView, family: int, paused: Callable[[str], bool]
) -> list[PoolState] | Failure:
    """The pools that may hand `view` a new address of `family`, in pool order; or why none."""
    if view.pools is not None:
        unknown = [p for p in view.pools if p not in pools]
        if len(unknown) == len(view.pools):
            return Failure(NO_POOL, f"lbipam.io/pool names no existing pool ({', '.join(unknown)})")
    candidates = [
        s
        for s in ordered(pools.values())
        if s.can_allocate()
        and family in s.allocators
        and (view.pools is None or s.name in view.pools)
        and (view.pools is not None or (s.accepted is not None and s.accepted.auto_assign))
    ]
    selecting = [s for s in candidates if s.accepted is not None and s.accepted.selects(view)]
    ready = [s for s in selecting if not paused(s.name)]
    if ready:
        return ready
    what = FAMILY_NAME[family]
    if selecting:
        names = ", ".join(s.name for s in selecting)
        return Failure(
            OUT_OF_IPS,
            f"no free {what} address in pool(s) {names}: they hold back the addresses released before "
            "the controller restarted until their reuse delay ends",
        )
    if candidates and view.pools is not None:
        names = ", ".join(s.name for s in candidates)
        return Failure(
            POOL_SELECTOR_MISMATCH, f"pool(s) {names} named in lbipam.io/pool do not select this Service"
        )
    if candidates:
        return Failure(NO_POOL, f"no {what} pool selects this Service")
    return Failure(NO_POOL, f"no enabled pool with {what} addresses is available to this Service")


def mismatch(view: ServiceView, state: PoolState, ip: str, source: str) -> Failure | None:
    """Why `view` may not take requested `ip` of pool `state` (pin, selectors), or None."""
    assert state.accepted is not None
    if view.pools is not None and state.name not in view.pools:
        pins = ", ".join(view.pools)
        return Failure(
            POOL_SELECTOR_MISMATCH,
            f"{ip} ({source}) is in pool {state.name}, not in lbipam.io/pool ({pins})",
        )
    if state.accepted.frozen:
        return Failure(
            POOL_SELECTOR_MISMATCH,
            f"{ip} ({source}) is in pool {state.name}, whose spec is invalid: it keeps the Services that "
            "hold its addresses and takes no new one until the spec is fixed",
        )
    if not state.accepted.selects(view):
        return Failure(
            POOL_SELECTOR_MISMATCH,
            f"{ip} ({source}) is in pool {state.name}, whose selectors do not select this Service",
        )
    return None


def why_not_serving(pools: Mapping[str, PoolState], ip: str, family: int) -> str:
    """A clause saying which pool holds `ip` but serves nothing (lost a Conflict), or ""."""
    address = int(IPAddress(ip))
    for state in pools.values():
        if state.loses_to is None or state.accepted is None:
            continue  # (a pool of 100,000 blocks is looked through only when it loses)
        if any(b.first <= address <= b.last for b in state.accepted.blocks_of(family)):
            older = state.loses_to[0]
            return f" that serves: pool {state.name} overlaps older pool {older} and serves nothing"
    return ""


class Waits:
    """Which (pool, family) each Service waits for in vain (every eligible pool used up)."""

    def __init__(self) -> None:
        self._of: dict[str, set[tuple[str, int]]] = {}  # Service -> (pool, family)
        self._by: dict[tuple[str, int], set[str]] = {}  # (pool, family) -> Services

    def change(self, service: str, pairs: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """Set what `service` waits for now; returns the pairs whose waiters changed."""
        old = self._of.pop(service, set())
        if pairs:
            self._of[service] = set(pairs)
        for pair in old - pairs:
            waiters = self._by.get(pair, set())
            waiters.discard(service)
            if not waiters:
                self._by.pop(pair, None)
        for pair in pairs - old:
            self._by.setdefault(pair, set()).add(service)
        return old ^ pairs

    def families(self, pool: str) -> set[int]:
        return {family for name, family in self._by if name == pool}
