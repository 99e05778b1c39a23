"""The one allocator core: aligned prefixes of a fixed length out of blocks of one family.

Serves both jobs of lbipam: single LoadBalancer IPs (/32, /128) and per-node PodCIDRs
(/24, /120, ...). The controllers hold one Allocator per pool and family.

Everything is kept as integer intervals in *unit space*: unit `u` is the prefix whose first
address is `u << unit_bits`. Free space is a `FreeMap` of disjoint intervals, so every operation
is a few O(log n) look-ups no matter how full the pool is, and memory grows with the number of
allocations and holes, never with the size of the range (a /64 of /128s costs nothing up front).

Addresses the allocator must never hand out are handled two ways:
- reserved network/broadcast units (at most two per CIDR block) are holes in the free map;
- "buggy" IPv4 units (holding an address that ends in .0 or .255) recur every 256 addresses, so
  they are the free map's "dead" units: a predicate, not holes.

Released prefixes held back by the reuse delay are a `Quarantine`; what callers pass (text,
netaddr objects) becomes integers through `addresses.to_block` and `addresses.span`.

Pure: no clock (callers pass `now`), no I/O.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator

import netaddr

from lbipam.core.addresses import BITS, AddressError, Block, BlockSpec, PrefixSpec, ip_version, span, to_block
from lbipam.core.freemap import FreeMap
from lbipam.core.quarantine import Quarantine


class AllocatorError(Exception):
    """Base of the allocator's errors; `reason` is stable and maps onto a condition reason."""

    reason = "AllocatorError"


class PoolExhausted(AllocatorError):
    reason = "PoolExhausted"


class AddressInUse(AllocatorError):
    reason = "AddressInUse"

    def __init__(self, message: str, owner: str | None = None) -> None:
        super().__init__(message)
        self.owner = owner


class OutOfRange(AllocatorError):
    reason = "OutOfRange"


MESSAGE_BLOCKS = 8  # blocks named in a message before "and N more blocks"


class Allocator:
    """Hands out aligned prefixes of length `prefixlen` from `blocks` (one address family).

    Blocks are CIDRs ("192.0.2.0/24") or inclusive ranges ("198.51.100.10-198.51.100.20"); a range
    contributes only the aligned prefixes that lie wholly inside it.
    """

    def __init__(
        self,
        blocks: Iterable[BlockSpec],
        prefixlen: int,
        *,
        reserve_network_broadcast: bool = False,
        avoid_buggy: bool = False,
        reuse_delay: float = 0.0,
    ) -> None:
        parsed = [to_block(b) for b in blocks]
        if not parsed:
            raise ValueError("an allocator needs at least one block")
        self.version = parsed[0].version
        bits = BITS[self.version]
        if not 0 <= prefixlen <= bits:
            raise ValueError(f"prefixlen {prefixlen} is out of range for IPv{self.version}")
        if reuse_delay < 0:
            raise ValueError(f"reuse_delay must not be negative, got {reuse_delay}")
        self.prefixlen = prefixlen
        self.reserve_network_broadcast = reserve_network_broadcast
        self.reuse_delay = float(reuse_delay)
        self._unit_bits = bits - prefixlen
        # Units per 256 addresses; 0 means "no buggy units" (IPv6, or avoid_buggy off).
        buggy_period = 0
        if avoid_buggy and self.version == 4:
            if self._unit_bits > 6:
                raise ValueError(
                    f"avoid_buggy leaves no /{prefixlen} free: every prefix shorter than /26 "
                    "holds an address ending in .0 or .255"
                )
            buggy_period = 256 >> self._unit_bits
        self._blocks: list[tuple[int, int, Block]] = []  # (first unit, last unit, block), sorted
        self._block_starts: list[int] = []  # first unit of each block, in order
        self._block_firsts: list[int] = []  # first address of each block, in order
        self._block_texts: str | None = None  # the blocks as error messages name them
        self._reserved: set[int] = set()
        self._free = FreeMap(buggy_period)
        self._owners: dict[int, str] = {}
        self._quarantine = Quarantine()  # released units the reuse delay holds back
        self._total = 0
        self.add_blocks(parsed)

    # ---- counts -------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Prefixes this allocator can ever hand out (reserved and buggy ones excluded)."""
        return self._total

    @property
    def used(self) -> int:
        return len(self._owners)

    @property
    def quarantined(self) -> int:
        """Released prefixes still held back by the reuse delay (as of the last `now` seen)."""
        return len(self._quarantine)

    @property
    def available(self) -> int:
        """Prefixes free to hand out now: total - used - quarantined."""
        return self._total - len(self._owners) - len(self._quarantine)

    @property
    def next_expiry(self) -> float | None:
        """When the earliest quarantined prefix becomes free again, or None."""
        return self._quarantine.next_expiry()

    @property
    def blocks(self) -> list[Block]:
        return [b for _, _, b in self._blocks]

    def blocks_within(self, first: int, last: int) -> list[Block]:
        """The blocks holding any address of [first, last], in address order: O(log n + found)."""
        index = max(bisect.bisect_right(self._block_firsts, first) - 1, 0)
        found = []
        for _, _, block in itertools.islice(self._blocks, index, None):
            if block.first > last:
                break
            if block.last >= first:
                found.append(block)
        return found

    def describe_blocks(self) -> str:
        """The blocks for a message: every one when there are few, else the first few and a count."""
        if self._block_texts is None:
            shown = ", ".join(str(b) for _, _, b in self._blocks[:MESSAGE_BLOCKS])
            more = len(self._blocks) - MESSAGE_BLOCKS
            self._block_texts = f"{shown} and {more} more blocks" if more > 0 else shown
        return self._block_texts

    # ---- growth -------------------------------------------------------------------------
    def add_blocks(self, blocks: Iterable[BlockSpec]) -> None:
        """Add blocks (how a pool grows). They must be of this family and overlap nothing.

        All or nothing, and O((n + k) log(n + k)) for k blocks added to n: a pool of 100,000
        single-address blocks builds in well under a second.
        """
        new = sorted((to_block(b) for b in blocks), key=lambda b: (b.first, b.last))
        for block in new:
            if block.version != self.version:
                raise ValueError(f"block {block} is IPv{block.version}; this allocator is IPv{self.version}")
        for left, right in itertools.pairwise(new):
            if left.overlaps(right):
                raise ValueError(f"block {right} overlaps block {left}")
        for block in new:
            other = self._overlapping(block)
            if other is not None:
                raise ValueError(f"block {block} overlaps block {other}")
        spans = [self._span_of(block) for block in new]
        merged = sorted(self._blocks + spans, key=lambda span: span[0])
        self._blocks = merged
        self._block_starts = [lo for lo, _, _ in merged]
        self._block_firsts = [b.first for _, _, b in merged]
        self._block_texts = None
        free: list[tuple[int, int]] = []
        for lo, hi, block in spans:
            free += self._free_intervals(lo, hi, block)
        self._total += sum(self._free.count_live(first, last) for first, last in free)
        self._free.add_many(free)

    def _span_of(self, block: Block) -> tuple[int, int, Block]:
        """(first unit, last unit, block); refuses a block that holds no whole unit."""
        size = 1 << self._unit_bits
        lo = (block.first + size - 1) >> self._unit_bits
        hi = ((block.last + 1) >> self._unit_bits) - 1
        if lo > hi:
            raise ValueError(f"block {block} holds no aligned /{self.prefixlen}")
        return lo, hi, block

    def _overlapping(self, block: Block) -> Block | None:
        """The block of this allocator that overlaps `block`, if any (they are disjoint)."""
        index = bisect.bisect_right(self._block_firsts, block.last) - 1
        if index >= 0 and self._blocks[index][2].last >= block.first:
            return self._blocks[index][2]
        return None

    def _free_intervals(self, lo: int, hi: int, block: Block) -> list[tuple[int, int]]:
        """The units of a new block less its network and broadcast units (reserved from now on)."""
        reserved: tuple[int, ...] = ()
        # /31, /32, /127 and /128 blocks are used in full, as point-to-point links use them.
        if (
            self.reserve_network_broadcast
            and block.prefixlen is not None
            and block.prefixlen < BITS[self.version] - 1
        ):
            reserved = tuple(sorted({block.first >> self._unit_bits, block.last >> self._unit_bits}))
            self._reserved.update(reserved)
        intervals = []
        start = lo
        for unit in (*reserved, hi + 1):
            if unit > start:
                intervals.append((start, unit - 1))
            start = unit + 1
        return intervals

    # ---- allocation ---------------------------------------------------------------------
    def allocate(
        self, owner: str, prefix: PrefixSpec | None = None, *, now: float = 0.0
    ) -> netaddr.IPNetwork:
        """Allocate the lowest free prefix, or the given one, to `owner`.

        Taking a given prefix that `owner` already holds, or that it released and the reuse
        delay still holds, succeeds: that is the same owner keeping its address.
        """
        self._expire(now)
        if prefix is None:
            return self._allocate_next(owner)
        unit = self._unit_of(prefix, exact=True)
        holder = self._owners.get(unit)
        if holder is not None:
            if holder == owner:
                return self._network(unit)
            raise AddressInUse(f"{self._network(unit)} is in use by {holder}", owner=holder)
        held = self._quarantine.get(unit)
        if held is not None:
            until, last_owner = held
            if last_owner != owner:
                raise AddressInUse(
                    f"{self._network(unit)} was released by {last_owner} and is held back "
                    f"until t={until:g} (reuse delay)",
                    owner=last_owner,
                )
            self._quarantine.end(unit)
        else:
            self._check_allocatable(unit)
            self._take(unit)
        self._owners[unit] = owner
        return self._network(unit)

    def _allocate_next(self, owner: str) -> netaddr.IPNetwork:
        first = self._free.pop_lowest()
        if first is None:
            raise PoolExhausted(
                f"no free /{self.prefixlen} in {self.describe_blocks()} "
                f"({self.used} used, {self.quarantined} held by the reuse delay)"
            )
        self._owners[first] = owner
        return self._network(first)

    def release(self, prefix: PrefixSpec, *, now: float = 0.0, quarantine: bool = True) -> str | None:
        """Release a prefix; returns its owner, or None if it was not allocated (a no-op).

        With a reuse delay the prefix is free again at `now + reuse_delay`; `quarantine=False`
        frees it at once (an allocation rolled back before anyone saw it).
        """
        self._expire(now)
        unit = self._unit_of(prefix, exact=True)
        owner = self._owners.pop(unit, None)
        if owner is None:
            return None
        if self.reuse_delay > 0 and quarantine:
            self._quarantine.hold(unit, now + self.reuse_delay, owner)
        else:
            self._free.add(unit, unit)
        return owner

    def owner(self, prefix: PrefixSpec) -> str | None:
        """Who holds the prefix (or the prefix containing a bare address), or None."""
        try:
            unit = self._unit_of(prefix, exact=False)
        except OutOfRange:
            return None
        return self._owners.get(unit)

    def contains(self, prefix: PrefixSpec) -> bool:
        """Whether the address or prefix lies wholly inside one of this allocator's blocks."""
        try:
            first, last = span(prefix)
        except AddressError:
            return False
        if first[1] != self.version:
            return False
        index = bisect.bisect_right(self._block_firsts, first[0]) - 1
        return index >= 0 and last <= self._blocks[index][2].last

    def allocations(self) -> Iterator[tuple[netaddr.IPNetwork, str]]:
        """Every allocated prefix and its owner, in address order."""
        for unit in sorted(self._owners):
            yield self._network(unit), self._owners[unit]

    def held_back(self) -> Iterator[tuple[netaddr.IPNetwork, float, str]]:
        """Every prefix the reuse delay holds: (prefix, free again at, last owner)."""
        for unit, until, owner in self._quarantine.items():
            yield self._network(unit), until, owner

    def hold_back(self, prefix: PrefixSpec, until: float, owner: str) -> None:
        """Put a free prefix under the reuse delay until `until` (carries a hold across a rebuild)."""
        unit = self._unit_of(prefix, exact=True)
        if unit in self._owners or unit in self._quarantine:
            raise AddressInUse(f"{self._network(unit)} is not free", owner=self._owners.get(unit))
        self._check_allocatable(unit)
        self._take(unit)
        self._quarantine.hold(unit, until, owner)

    def expire(self, now: float) -> None:
        """Return every prefix whose reuse delay ended by `now` to the free space."""
        self._expire(now)

    # ---- internals ----------------------------------------------------------------------
    def _network(self, unit: int) -> netaddr.IPNetwork:
        return netaddr.IPNetwork((unit << self._unit_bits, self.prefixlen), version=ip_version(self.version))

    def _unit_of(self, prefix: PrefixSpec, *, exact: bool) -> int:
        (first, version), last = span(prefix)
        if version != self.version:
            raise OutOfRange(f"{prefix} is IPv{version}; this pool hands out IPv{self.version}")
        size = 1 << self._unit_bits
        unit = first >> self._unit_bits
        is_address = isinstance(prefix, netaddr.IPAddress) or (isinstance(prefix, str) and "/" not in prefix)
        if exact and not is_address and last - first + 1 != size:
            raise ValueError(f"{prefix} is not a /{self.prefixlen}")
        if exact and is_address and size != 1:
            raise ValueError(f"{prefix} is a single address; this allocator hands out /{self.prefixlen}s")
        if not exact and last - first + 1 > size:
            raise ValueError(f"{prefix} is larger than a /{self.prefixlen}")
        if not self._in_blocks(unit):
            raise OutOfRange(f"{prefix} is outside {self.describe_blocks()}")
        return unit

    def _in_blocks(self, unit: int) -> bool:
        index = bisect.bisect_right(self._block_starts, unit) - 1
        return index >= 0 and unit <= self._blocks[index][1]

    def _check_allocatable(self, unit: int) -> None:
        if unit in self._reserved:
            raise OutOfRange(f"{self._network(unit)} is a reserved network or broadcast address")
        if self._free.is_dead(unit):
            raise OutOfRange(f"{self._network(unit)} ends in .0 or .255 and the pool avoids those")

    def _take(self, unit: int) -> None:
        """Remove one free unit from the free map (callers checked every other state)."""
        if not self._free.take(unit):
            raise AddressInUse(f"{self._network(unit)} is not free")

    def _expire(self, now: float) -> None:
        for unit in self._quarantine.expire(now):
            self._free.add(unit, unit)

    def __repr__(self) -> str:
        counts = f"used={self.used}, available={self.available}"
        return f"Allocator([{self.describe_blocks()}], /{self.prefixlen}, {counts})"
