"""The record of the reuse delay: every released LoadBalancer IP still held back, kept so that
the delay outlives a pool rebuild, a range moving to another pool, and (through the pools'
`status.heldBack`, which the controller writes from `listing` and reads back into `restore`) a
controller restart or a leader failover.

The allocators enforce the delay; this record remembers it across them. An entry lists in the
status of the pool it was released from (while that pool exists) and of the pool whose blocks
hold it now, so a crash between the two status writes of a move still leaves one of them. A pool
lists at most `MAX_LISTED` entries (those held longest); beyond that it records how many more
there were and when the last of them ends: a controller that starts before then *pauses* the
pool (hands out no new address from it) until then, so a restart never shortens a delay, at
worst lengthens it for that pool. Used by `lbplanner`; pure, no I/O (times are the planner's
`now`, converted to wall-clock time by the controller).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import netaddr

from lbipam.core.allocator import AllocatorError
from lbipam.core.lbpools import PoolState

MAX_LISTED = 1000  # held addresses listed per pool status (the API model's bound too)


@dataclass(frozen=True, slots=True)
class Held:
    ip: str
    family: int
    until: float  # free again at (the planner's clock)
    owner: str = ""  # the Service that released it, which may take it back ("": unknown)
    origin: str | None = None  # the pool it was released from


@dataclass(frozen=True, slots=True)
class Listing:
    """What one pool's status records of the reuse delay."""

    held: tuple[Held, ...] = ()  # in address order
    omitted: int = 0
    omitted_until: float | None = None


class ReuseRecord:
    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.homes: dict[str, str | None] = {}  # ip -> the serving pool whose blocks hold it
        self.paused: dict[str, tuple[float, int]] = {}  # pool -> (until, addresses not listed)
        self._expiries: list[tuple[float, str]] = []  # heap over `held`, lazily pruned

    # ---- changes --------------------------------------------------------------------------
    def released(self, held: Held, home: str | None) -> set[str]:
        """Record a release; returns the pools whose listing changed."""
        self.held[held.ip] = held
        self.homes[held.ip] = home
        heapq.heappush(self._expiries, (held.until, held.ip))
        return self._pools_of(held.ip)

    def taken(self, ip: str) -> set[str]:
        """The address is allocated again (its last owner took it back): no longer held."""
        if ip not in self.held:
            return set()
        pools = self._pools_of(ip)
        del self.held[ip]
        self.homes.pop(ip, None)
        return pools

    def expire(self, now: float) -> tuple[set[str], bool]:
        """Forget what ended by `now`: (pools whose listing changed, whether a pause ended)."""
        touched: set[str] = set()
        while self._expiries and self._expiries[0][0] <= now:
            until, ip = heapq.heappop(self._expiries)
            held = self.held.get(ip)
            if held is not None and held.until == until:
                touched |= self.taken(ip)
        ended = [name for name, (until, _) in self.paused.items() if until <= now]
        for name in ended:
            del self.paused[name]
        return touched | set(ended), bool(ended)

    @property
    def next_pause_end(self) -> float | None:
        return min((until for until, _ in self.paused.values()), default=None)

    def paused_at(self, pool: str, now: float) -> bool:
        pause = self.paused.get(pool)
        return pause is not None and pause[0] > now

    # ---- start-up -------------------------------------------------------------------------
    def restore(self, held: Iterable[Held], pauses: Mapping[str, tuple[float, int]], now: float) -> None:
        """Take in what the pools' status recorded (later entries of one address win if longer)."""
        for entry in held:
            known = self.held.get(entry.ip)
            if entry.until > now and (known is None or known.until < entry.until):
                self.held[entry.ip] = entry
                heapq.heappush(self._expiries, (entry.until, entry.ip))
        for pool, (until, count) in pauses.items():
            if until > now:
                self.paused[pool] = (until, count)

    # ---- pools ----------------------------------------------------------------------------
    def apply(self, pools: Mapping[str, PoolState], home_of: Callable[[str, int], str | None]) -> set[str]:
        """Hold every recorded address back in the allocator of the pool that holds it now (after
        a rebuild, a move, a restart); returns the pools whose counts or listing changed."""
        touched: set[str] = set()
        for ip, held in self.held.items():
            home = home_of(ip, held.family)
            if self.homes.get(ip) != home:
                touched |= {n for n in (self.homes.get(ip), home) if n}
            self.homes[ip] = home
            allocator = pools[home].allocators.get(held.family) if home is not None else None
            if allocator is None or allocator.owner(ip) is not None:
                continue  # in no pool, or taken (by a Service that carried it at start-up)
            try:
                allocator.hold_back(ip, held.until, held.owner)
            except (AllocatorError, ValueError):  # already held, reserved or avoided: nothing to do
                continue
            touched.add(str(home))
        return touched

    def listing(self, pool: str) -> Listing:
        """The entries pool `pool` lists: released from it, or in its blocks now; bounded."""
        mine = [h for ip, h in self.held.items() if h.origin == pool or self.homes.get(ip) == pool]
        kept = heapq.nlargest(MAX_LISTED, mine, key=lambda h: (h.until, h.ip))
        left_out = len(mine) - len(kept)
        listed = {h.ip for h in kept}
        untils = [h.until for h in mine if h.ip not in listed] if left_out else []
        pause = self.paused.get(pool)
        if pause is not None:
            untils.append(pause[0])
            left_out += pause[1]
        held = tuple(sorted(kept, key=lambda h: (h.family, int(netaddr.IPAddress(h.ip)))))
        return Listing(held, left_out, max(untils) if untils else None)

    def _pools_of(self, ip: str) -> set[str]:
        held = self.held.get(ip)
        return {n for n in (held.origin if held else None, self.homes.get(ip)) if n}
