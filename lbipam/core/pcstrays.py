"""Node CIDRs found outside every serving pool ("strays"), and the pool space they cover.

A stray is kept and reported, never handed out (kube #82773). But a stray can still overlap a
pool: a CIDR written by hand with another mask (a /27 or a /29 in a pool of /28s), or one wider
than a whole pool. The node CIDRs of the pool that it covers must then not go to another Node,
or two Nodes would route the same pod addresses. So they are held in the pool's allocator for
the stray's Node ("blocked"): counted as used, refused for removal like any CIDR in use, given
back when the stray goes. Covers of up to EAGER_LIMIT node CIDRs are blocked at once; a wider
cover (an IPv6 /64 over a pool of /120s) is blocked piece by piece as allocation meets it, at
most WIDE_TRIES pieces per allocation: the allocator offers only its lowest free CIDR, so a pool
whose lowest free space lies under a wide stray serves no one until the stray goes (safe, never
an overlap; the Node says CIDRNotAvailable).

Owned by `PodCIDRPlanner`, which calls `mark` when strays or pools change, `block` before it
allocates, `covering` for each CIDR it is about to hand out, and `release` when a stray goes.
Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import netaddr

from lbipam.core.addresses import BITS, ip_version
from lbipam.core.allocator import Allocator, AllocatorError
from lbipam.core.pcpools import PCPoolState

EAGER_LIMIT = 4096  # node CIDRs one stray may block at once in one pool block
WIDE_TRIES = 64  # node CIDRs one allocation may block for wide strays before it tries the next pool


@dataclass
class NodeCIDR:
    """One CIDR a Node's target shows (or that this planner gave it)."""

    cidr: str  # canonical text; the text as found when it is not a CIDR
    family: int  # 4 or 6; 0 when the text is not a CIDR
    pool: str | None  # None: outside every serving pool (a stray: kept, reported)
    blocked: list[tuple[str, Allocator, netaddr.IPNetwork]] = field(default_factory=list)


@dataclass
class _Wide:
    node: str
    entry: NodeCIDR
    first: int
    last: int


class Strays:
    def __init__(self) -> None:
        self.nodes: set[str] = set()  # Nodes holding at least one stray
        self.dirty = False  # strays, pools or held-back space changed since the last `block`
        self._wide: list[_Wide] = []

    def mark(self, node: str | None = None) -> None:
        if node is not None:
            self.nodes.add(node)
        self.dirty = True

    def block(
        self, held: Mapping[str, Iterable[NodeCIDR]], pools: Mapping[str, PCPoolState], now: float
    ) -> set[str]:
        """Block what every stray covers in the serving pools; returns the pools touched."""
        self.dirty = False
        self._wide = []
        touched: set[str] = set()
        for node in sorted(self.nodes):
            strays = [e for e in held.get(node, ()) if e.pool is None and e.family]
            if not strays:
                self.nodes.discard(node)
            for entry in strays:
                touched |= self._block(node, entry, pools, now)
        return touched

    def _block(self, node: str, entry: NodeCIDR, pools: Mapping[str, PCPoolState], now: float) -> set[str]:
        net = netaddr.IPNetwork(entry.cidr)
        first, last = int(net.first), int(net.last)
        touched = set()
        for name, state in pools.items():
            allocator = state.allocators.get(entry.family) if state.serving else None
            if allocator is None:
                continue
            bits = BITS[entry.family] - allocator.prefixlen
            for block in allocator.blocks_within(first, last):
                low, high = max(block.first, first), min(block.last, last)
                if low > high:
                    continue
                if (high >> bits) - (low >> bits) >= EAGER_LIMIT:
                    self._wide.append(_Wide(node, entry, first, last))
                    continue
                for unit in range(low >> bits, (high >> bits) + 1):
                    prefix = netaddr.IPNetwork(
                        (unit << bits, allocator.prefixlen), version=ip_version(entry.family)
                    )
                    if hold(allocator, node, prefix, now):
                        entry.blocked.append((name, allocator, prefix))
                        touched.add(name)
        return touched

    def covering(self, family: int, net: netaddr.IPNetwork) -> tuple[str, NodeCIDR] | None:
        """The wide stray that covers `net`, if any (its Node then takes `net` as blocked)."""
        for wide in self._wide:
            if wide.entry.family == family and wide.first <= int(net.last) and int(net.first) <= wide.last:
                return wide.node, wide.entry
        return None

    def release(self, node: str, entry: NodeCIDR, now: float, quarantine: bool) -> set[str]:
        """Give back what `entry` blocked; returns the pools touched."""
        if entry.pool is None:
            self.dirty = True  # the wide strays are listed anew
        touched = set()
        for name, allocator, prefix in entry.blocked:
            if allocator.owner(prefix) == node:
                allocator.release(prefix, now=now, quarantine=quarantine)
                touched.add(name)
        entry.blocked.clear()
        return touched


def hold(allocator: Allocator, node: str, prefix: netaddr.IPNetwork, now: float) -> bool:
    """Take a free `prefix` for `node`; False when it is not free (in use, held back, reserved)."""
    if allocator.owner(prefix) is not None:
        return False
    try:
        allocator.allocate(node, prefix, now=now)
    except (AllocatorError, ValueError):
        return False
    return True
