"""The PodCIDR planner: Node and PodCIDRPool views in, a plan per Node out.

A Node without CIDRs gets one per family that its eligible pools serve (the first pool by
priority and name that has the family and room), all or nothing. A Node's CIDRs never change
once given (Kubernetes makes `spec.podCIDRs` immutable; the other targets follow the same rule),
so there is no "keep" decision: an imported CIDR that lies in no serving pool is kept and
reported. A deleted Node's CIDRs go back after the reuse delay. Same allocator core as LB-IPAM.
Start-up order is the caller's duty: `set_pools`, `import_node` for every Node, then `plan`.
Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

from lbipam.core.addresses import AddressError, parse_cidr
from lbipam.core.allocator import AllocatorError, PoolExhausted
from lbipam.core.blockindex import BlockIndex
from lbipam.core.lbplanner import PlannedEvent
from lbipam.core.lbviews import CurrentCondition
from lbipam.core.pcpools import PCPoolState, ordered, pool_index, rebuild
from lbipam.core.pcviews import NodeView, PCPoolView

ALLOCATED = "Allocated"
NO_POOL = "NoPool"
NOT_AVAILABLE = "CIDRNotAvailable"
OUTSIDE_POOLS = "OutsidePools"


@dataclass(frozen=True, slots=True)
class NodePlan:
    """The CIDRs a Node should carry (v4 first), the condition, Events, and the error text the
    ciliumnode targets put in status.ipam.operator-status.error ("" when all is well)."""

    name: str
    cidrs: tuple[str, ...]
    pools: tuple[str, ...]
    condition: CurrentCondition
    events: tuple[PlannedEvent, ...] = ()
    error: str = ""


@dataclass
class NodeCIDR:
    cidr: str
    family: int
    pool: str | None  # None: outside every serving pool (kept, reported)


class PodCIDRPlanner:
    def __init__(self, reuse_delay: float = 30.0) -> None:
        self.reuse_delay = reuse_delay
        self.pools: dict[str, PCPoolState] = {}
        self.nodes: dict[str, dict[int, NodeCIDR]] = {}
        self.waiting: set[str] = set()  # Nodes without CIDRs, retried when a pool grows or frees
        self.freed = False
        self.touched: set[str] = set()
        self._index = BlockIndex(())

    # ---- pools --------------------------------------------------------------------------
    def set_pools(self, views: Iterable[PCPoolView], now: float) -> None:
        previous = self.pools
        self.pools = rebuild(views, previous, self.reuse_delay)
        self._index = pool_index(self.pools)
        self.touched.update(self.pools)
        for name, held in self.nodes.items():
            for entry in held.values():
                old = previous.get(entry.pool) if entry.pool else None
                new = self.pools.get(entry.pool) if entry.pool else None
                if (
                    old
                    and new
                    and new.serving
                    and new.allocators.get(entry.family) is old.allocators.get(entry.family)
                ):
                    continue
                self._home(name, entry, now)
        self.freed = True

    def _home(self, node: str, entry: NodeCIDR, now: float) -> None:
        """Put `entry` into the serving pool that holds it (same mask), or mark it outside."""
        net = netaddr.IPNetwork(entry.cidr)
        name = self._index.find(int(net.first), entry.family, int(net.last))
        state = self.pools.get(name) if name else None
        allocator = state.allocators.get(entry.family) if state else None
        entry.pool = None
        if state is not None and allocator is not None and allocator.prefixlen == net.prefixlen:
            try:
                allocator.allocate(node, net, now=now)
            except (AllocatorError, ValueError):
                return
            entry.pool = state.name
            self.touched.add(state.name)

    # ---- start-up -----------------------------------------------------------------------
    def import_node(self, view: NodeView, now: float) -> None:
        """Register the CIDRs the Node already carries, before anything new is handed out."""
        held = self.nodes.setdefault(view.name, {})
        for text in view.cidrs:
            try:
                net = parse_cidr(text)
            except AddressError:
                continue
            if net.version not in held:
                entry = NodeCIDR(str(net.cidr), net.version, None)
                held[net.version] = entry
                self._home(view.name, entry, now)
        if not held:
            del self.nodes[view.name]

    # ---- planning -----------------------------------------------------------------------
    def plan(self, view: NodeView, now: float) -> NodePlan:
        if view.name not in self.nodes and view.cidrs:
            self.import_node(view, now)  # CIDRs written by someone else meanwhile
        held = self.nodes.get(view.name)
        events: list[PlannedEvent] = []
        result = self._held_result(view, held) if held else self._allocate(view, now, events)
        if result.condition.status == "False" and result.condition != view.condition:
            reason = "CIDRNotAvailable" if result.condition.reason != OUTSIDE_POOLS else "CIDROutsidePools"
            events.append(PlannedEvent("Warning", reason, result.condition.message))
        if result.condition.status == "True" or result.condition.reason == OUTSIDE_POOLS:
            self.waiting.discard(view.name)
        else:
            self.waiting.add(view.name)
        return NodePlan(
            result.name, result.cidrs, result.pools, result.condition, tuple(events), result.error
        )

    def _held_result(self, view: NodeView, held: dict[int, NodeCIDR]) -> NodePlan:
        entries = [held[f] for f in sorted(held)]
        cidrs = tuple(e.cidr for e in entries)
        outside = [e.cidr for e in entries if e.pool is None]
        if outside:
            message = f"{', '.join(outside)} lies in no PodCIDRPool that serves it; kept, never handed out"
            return NodePlan(
                view.name, cidrs, (), CurrentCondition("False", OUTSIDE_POOLS, message), error=message
            )
        pools = tuple(dict.fromkeys(e.pool for e in entries if e.pool))
        done = ", ".join(f"{e.cidr} (pool {e.pool})" for e in entries)
        return NodePlan(view.name, cidrs, pools, CurrentCondition("True", ALLOCATED, done))

    def _allocate(self, view: NodeView, now: float, events: list[PlannedEvent]) -> NodePlan:
        eligible = [
            s
            for s in ordered(self.pools.values())
            if s.can_allocate() and s.accepted is not None and s.accepted.node_selector.matches(view.labels)
        ]
        families = sorted({f for s in eligible for f in s.allocators})
        if not families:
            message = "no enabled PodCIDRPool selects this node"
            return NodePlan(view.name, (), (), CurrentCondition("False", NO_POOL, message), error=message)
        got: dict[int, NodeCIDR] = {}
        for family in families:
            entry = self._take(view.name, family, eligible, now)
            if entry is None:
                for taken in got.values():  # all or nothing: give back what this plan took
                    self._give_back(view.name, taken, now, quarantine=False)
                names = ", ".join(s.name for s in eligible if family in s.allocators)
                message = f"no free IPv{family} node CIDR in PodCIDRPool(s) {names}"
                return NodePlan(
                    view.name, (), (), CurrentCondition("False", NOT_AVAILABLE, message), error=message
                )
            got[family] = entry
        self.nodes[view.name] = got
        for entry in got.values():
            events.append(PlannedEvent("Normal", "CIDRAssigned", f"{entry.cidr} (pool {entry.pool})"))
        return self._held_result(view, got)

    def _take(self, node: str, family: int, pools: list[PCPoolState], now: float) -> NodeCIDR | None:
        for state in pools:
            allocator = state.allocators.get(family)
            if allocator is None:
                continue
            try:
                net = allocator.allocate(node, now=now)
            except PoolExhausted:
                continue
            self.touched.add(state.name)
            return NodeCIDR(str(net.cidr), family, state.name)
        return None

    def _give_back(self, node: str, entry: NodeCIDR, now: float, quarantine: bool = True) -> None:
        state = self.pools.get(entry.pool) if entry.pool else None
        allocator = state.allocators.get(entry.family) if state else None
        if state is not None and allocator is not None and allocator.owner(entry.cidr) == node:
            allocator.release(entry.cidr, now=now, quarantine=quarantine)
            self.touched.add(state.name)
            self.freed = self.freed or not quarantine or self.reuse_delay == 0

    def forget(self, name: str, now: float) -> tuple[PlannedEvent, ...]:
        """A deleted Node: its CIDRs go back after the reuse delay."""
        self.waiting.discard(name)
        events = []
        for entry in (self.nodes.pop(name, None) or {}).values():
            self._give_back(name, entry, now)
            events.append(
                PlannedEvent("Normal", "CIDRReleased", f"{entry.cidr} (pool {entry.pool or 'none'})")
            )
        return tuple(events)

    def expire(self, now: float) -> None:
        for state in self.pools.values():
            for allocator in state.allocators.values():
                expiry = allocator.next_expiry
                if expiry is not None and expiry <= now:
                    allocator.expire(now)
                    self.freed = True
                    self.touched.add(state.name)

    @property
    def next_expiry(self) -> float | None:
        found = [
            e for s in self.pools.values() for a in s.allocators.values() if (e := a.next_expiry) is not None
        ]
        return min(found) if found else None
