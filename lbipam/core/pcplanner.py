"""The PodCIDR planner: Node and PodCIDRPool views in, a plan per Node out.

A Node without CIDRs gets one per family that its eligible pools serve (the first pool by
priority and name that has the family and room), all or nothing. A Node's CIDRs never change
once given (Kubernetes makes `spec.podCIDRs` immutable; the other targets follow the same rule),
so there is no "keep" decision: an imported CIDR that lies in no serving pool is kept and
reported, and the pool space it covers is not handed out (`pcstrays`). The target is the record:
when it shows other CIDRs than this planner holds (a hand edit, a CiliumNode created late with
CIDRs of its own), what it shows wins; when it shows none, the CIDRs this planner gave are
written again, and strays, kept only because the target showed them, are dropped. A deleted
Node's CIDRs go back after the reuse delay. Same allocator core as LB-IPAM.
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
from lbipam.core.pcpools import PCPoolState, rebuild, refusal
from lbipam.core.pcstrays import WIDE_TRIES, NodeCIDR, Strays
from lbipam.core.pcviews import NodeView, PCPoolView
from lbipam.core.poolorder import ordered, pool_index

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


class PodCIDRPlanner:
    def __init__(self, reuse_delay: float = 30.0) -> None:
        self.reuse_delay = reuse_delay
        self.pools: dict[str, PCPoolState] = {}
        self.nodes: dict[str, list[NodeCIDR]] = {}
        self.waiting: set[str] = set()  # Nodes without CIDRs, retried when a pool grows or frees
        self.freed = False
        self.touched: set[str] = set()
        self.strays = Strays()
        self._index = BlockIndex(())

    # ---- pools --------------------------------------------------------------------------
    def set_pools(self, views: Iterable[PCPoolView], now: float) -> None:
        previous = self.pools
        self.pools = rebuild(views, previous, self.reuse_delay)
        self._index = pool_index(self.pools)
        self.touched.update(self.pools)
        for name, held in self.nodes.items():
            for entry in held:
                if entry.pool is None:
                    self.touched |= self.strays.release(name, entry, now, quarantine=False)
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
        self.strays.mark()
        self._block_strays(now)
        self.freed = True

    def recheck_refusals(self) -> bool:
        """Bring the refusals of touched pools up to date with the CIDRs nodes hold now (their
        messages count and name holders). True when one no longer holds: the caller then sets
        the pools again, and the change, refused until now, is accepted."""
        for name in sorted(self.touched & self.pools.keys()):
            state = self.pools[name]
            if state.refused is None or state.accepted is None:
                continue
            why = refusal(state.accepted, state.view, state.allocators)
            if why is None:
                return True
            state.refused = why
        return False

    def _home(self, node: str, entry: NodeCIDR, now: float) -> None:
        """Put `entry` into the serving pool that holds it (same mask), or mark it a stray."""
        entry.pool = None
        if entry.family:
            net = netaddr.IPNetwork(entry.cidr)
            name = self._index.find(int(net.first), entry.family, int(net.last))
            state = self.pools.get(name) if name else None
            allocator = state.allocators.get(entry.family) if state else None
            if state is not None and allocator is not None and allocator.prefixlen == net.prefixlen:
                try:
                    allocator.allocate(node, net, now=now)
                except (AllocatorError, ValueError):
                    pass  # held by another Node: this one's copy is a stray
                else:
                    entry.pool = state.name
                    self.touched.add(state.name)
                    return
        self.strays.mark(node)

    # ---- start-up -----------------------------------------------------------------------
    def import_node(self, view: NodeView, now: float) -> None:
        """Register the CIDRs the Node already carries, before anything new is handed out."""
        held = self.nodes.setdefault(view.name, [])
        seen = {e.cidr for e in held}
        for entry in _shown(view):
            if entry.cidr not in seen:
                seen.add(entry.cidr)
                held.append(entry)
                self._home(view.name, entry, now)
        if not held:
            del self.nodes[view.name]

    def _follow_target(self, view: NodeView, now: float) -> None:
        """Make what this planner holds for the Node agree with what its target shows."""
        held = self.nodes.get(view.name)
        shown = _shown(view)
        if held is not None and not shown:
            # Ours are written again (a CiliumNode re-created empty gets them back); strays
            # were kept only because the target showed them.
            for entry in [e for e in held if e.pool is None]:
                self.touched |= self.strays.release(view.name, entry, now, quarantine=True)
                held.remove(entry)
                self.freed = True
            if not held:
                del self.nodes[view.name]
            return
        if held is not None and sorted(e.cidr for e in held) == sorted(e.cidr for e in shown):
            return
        if held is not None:
            self._drop(view.name, now)
        if shown:
            self.import_node(view, now)

    def _block_strays(self, now: float) -> None:
        if self.strays.dirty:
            self.touched |= self.strays.block(self.nodes, self.pools, now)

    # ---- planning -----------------------------------------------------------------------
    def plan(self, view: NodeView, now: float) -> NodePlan:
        self._follow_target(view, now)  # CIDRs written by someone else meanwhile
        self._block_strays(now)
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

    def _held_result(self, view: NodeView, held: list[NodeCIDR]) -> NodePlan:
        entries = sorted(held, key=lambda e: e.family or 99)  # IPv4 first; what is no CIDR last
        cidrs = tuple(e.cidr for e in entries if e.family)
        outside = [e.cidr for e in entries if e.pool is None and e.family]
        junk = [repr(e.cidr) for e in entries if not e.family]
        if outside or junk:
            parts = [f"{', '.join(outside)} lies in no PodCIDRPool that serves it"] if outside else []
            parts += [f"{', '.join(junk)} is not a CIDR"] if junk else []
            message = f"{'; '.join(parts)}; kept, never handed out"
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
                    self._undo(view.name, taken, now)
                names = ", ".join(s.name for s in eligible if family in s.allocators)
                message = f"no free IPv{family} node CIDR in PodCIDRPool(s) {names}"
                return NodePlan(
                    view.name, (), (), CurrentCondition("False", NOT_AVAILABLE, message), error=message
                )
            got[family] = entry
        self.nodes[view.name] = list(got.values())
        for entry in got.values():
            events.append(PlannedEvent("Normal", "CIDRAssigned", f"{entry.cidr} (pool {entry.pool})"))
        return self._held_result(view, list(got.values()))

    def _take(self, node: str, family: int, pools: list[PCPoolState], now: float) -> NodeCIDR | None:
        for state in pools:
            allocator = state.allocators.get(family)
            if allocator is None:
                continue
            for _ in range(WIDE_TRIES):
                try:
                    net = allocator.allocate(node, now=now)
                except PoolExhausted:
                    break
                self.touched.add(state.name)
                cover = self.strays.covering(family, net)
                if cover is None:
                    return NodeCIDR(str(net.cidr), family, state.name)
                # A wide stray covers it: it becomes that stray's, and the next one is tried
                # (a bounded number of times: the allocator offers the lowest free one only).
                allocator.release(net, now=now, quarantine=False)
                allocator.allocate(cover[0], net, now=now)
                cover[1].blocked.append((state.name, allocator, net))
        return None

    def _give_back(self, node: str, entry: NodeCIDR, now: float, quarantine: bool = True) -> None:
        state = self.pools.get(entry.pool) if entry.pool else None
        allocator = state.allocators.get(entry.family) if state else None
        if state is not None and allocator is not None and allocator.owner(entry.cidr) == node:
            allocator.release(entry.cidr, now=now, quarantine=quarantine)
            self.touched.add(state.name)
            self.freed = self.freed or not quarantine or self.reuse_delay == 0

    def _undo(self, node: str, entry: NodeCIDR, now: float) -> None:
        """Give back a CIDR taken by a plan that then failed. It was free before the plan, so
        no waiting Node gains from it: `freed` stays as it was (setting it would retry every
        waiting Node, this one included, for ever)."""
        state = self.pools.get(entry.pool) if entry.pool else None
        allocator = state.allocators.get(entry.family) if state else None
        if state is not None and allocator is not None and allocator.owner(entry.cidr) == node:
            allocator.release(entry.cidr, now=now, quarantine=False)

    def forget(self, name: str, now: float) -> tuple[PlannedEvent, ...]:
        """A deleted Node: its CIDRs go back after the reuse delay."""
        self.waiting.discard(name)
        return tuple(
            PlannedEvent("Normal", "CIDRReleased", f"{entry.cidr} (pool {entry.pool or 'none'})")
            for entry in self._drop(name, now)
            if entry.family
        )

    def _drop(self, name: str, now: float) -> list[NodeCIDR]:
        """Give back all the Node holds (after the reuse delay), strays' blocks included."""
        held = self.nodes.pop(name, None) or []
        for entry in held:
            self._give_back(name, entry, now)
            self.touched |= self.strays.release(name, entry, now, quarantine=True)
        self.freed = self.freed or any(e.pool is None for e in held)
        return held

    def expire(self, now: float) -> None:
        for state in self.pools.values():
            for allocator in state.allocators.values():
                expiry = allocator.next_expiry
                if expiry is not None and expiry <= now:
                    allocator.expire(now)
                    self.freed = True
                    self.touched.add(state.name)
                    if self.strays.nodes:
                        self.strays.mark()  # freed space a stray covers is blocked again

    @property
    def next_expiry(self) -> float | None:
        found = [
            e for s in self.pools.values() for a in s.allocators.values() if (e := a.next_expiry) is not None
        ]
        return min(found) if found else None


def _shown(view: NodeView) -> list[NodeCIDR]:
    """What the Node's target shows: one entry per distinct text, canonical where it is a CIDR."""
    entries: dict[str, NodeCIDR] = {}
    for text in view.cidrs:
        try:
            net = parse_cidr(text)
        except AddressError:
            entry = NodeCIDR(text, 0, None)
        else:
            entry = NodeCIDR(str(net.cidr), net.version, None)
        entries.setdefault(entry.cidr, entry)
    return list(entries.values())
