"""The allocator against a trivial reference model: a Python set of unit numbers over a small range.

Hypothesis drives random mixes of CIDR and range blocks, prefix lengths, reservations, the
avoid-buggy rule and a reuse delay, and checks after every step that both agree on who holds what,
on the counts, and on what is handed out next.
"""

from __future__ import annotations

import itertools

import netaddr
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lbipam.core.allocator import AddressInUse, Allocator, OutOfRange, PoolExhausted

BASES = {4: int(netaddr.IPAddress("10.0.0.0")), 6: int(netaddr.IPAddress("2001:db8::"))}
SPACE = 1024  # addresses per test universe: small enough to enumerate, crossing .255/.0 boundaries
BITS = {4: 32, 6: 128}
# Offsets next to the .255/.0 boundaries, where the avoid-buggy arithmetic can go wrong.
EDGES = sorted({(k * 256 + d) % SPACE for k in range(SPACE // 256 + 1) for d in (-2, -1, 0, 1, 2)})
offsets = st.one_of(st.integers(0, SPACE - 1), st.sampled_from(EDGES))


@st.composite
def block_texts(draw: st.DrawFn, version: int) -> tuple[str, int, int, int | None]:
    """(text, first, last, cidr prefixlen or None) somewhere in the universe."""
    base = BASES[version]
    if draw(st.booleans()):
        size_bits = draw(st.integers(0, 8))
        offset = draw(st.integers(0, SPACE // (1 << size_bits) - 1)) << size_bits
        plen = BITS[version] - size_bits
        first = base + offset
        text = f"{netaddr.IPAddress(first, version)}/{plen}"
        return text, first, first + (1 << size_bits) - 1, plen
    start = draw(offsets)
    stop = draw(
        st.one_of(
            st.integers(start, min(SPACE - 1, start + 300)),
            st.sampled_from([start, min(SPACE - 1, start + 3)]),
        )
    )
    text = f"{netaddr.IPAddress(base + start, version)}-{netaddr.IPAddress(base + stop, version)}"
    return text, base + start, base + stop, None


class Reference:
    """What the allocator should do, computed the slow, obvious way."""

    def __init__(self, version: int, prefixlen: int, reserve: bool, buggy: bool, delay: float) -> None:
        self.unit_bits = BITS[version] - prefixlen
        self.version, self.reserve, self.buggy, self.delay = version, reserve, buggy, delay
        self.blocks: list[tuple[int, int]] = []
        self.good: set[int] = set()
        self.owners: dict[int, str] = {}
        self.quarantine: dict[int, tuple[float, str]] = {}

    def add(self, first: int, last: int, plen: int | None) -> bool:
        size = 1 << self.unit_bits
        units = {u for u in range(first // size, (last + 1) // size) if u * size >= first}
        if not units:
            return False
        if self.reserve and plen is not None and plen < BITS[self.version] - 1:
            units -= {first // size, last // size}
        if self.buggy:
            units = {u for u in units if not self.is_buggy(u * size, size)}
        self.blocks.append((first, last))
        self.good |= units
        return True

    def is_buggy(self, first: int, size: int) -> bool:
        return self.buggy and any(a % 256 in (0, 255) for a in range(first, first + size))

    def expire(self, now: float) -> None:
        for unit, (until, _) in list(self.quarantine.items()):
            if until <= now:
                del self.quarantine[unit]

    def free(self) -> set[int]:
        return self.good - set(self.owners) - set(self.quarantine)


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.counter = 0

    @initialize(
        version=st.sampled_from([4, 6]),
        size_bits=st.sampled_from([0, 0, 0, 1, 2, 3, 5]),
        reserve=st.booleans(),
        buggy=st.booleans(),
        delay=st.sampled_from([0.0, 0.0, 5.0]),
        data=st.data(),
    )
    def setup(
        self, version: int, size_bits: int, reserve: bool, buggy: bool, delay: float, data: st.DataObject
    ) -> None:
        buggy = buggy and version == 4 and size_bits <= 6
        self.prefixlen = BITS[version] - size_bits
        self.version = version
        self.ref = Reference(version, self.prefixlen, reserve, buggy, delay)
        blocks: list[str] = []
        for _ in range(data.draw(st.integers(1, 4))):
            text, first, last, plen = data.draw(block_texts(version))
            if any(first <= b_last and b_first <= last for b_first, b_last in self.ref.blocks):
                continue
            if self.ref.add(first, last, plen):
                blocks.append(text)
        if not blocks:  # guarantee one usable block
            first = BASES[version]
            text = f"{netaddr.IPAddress(first, version)}/{self.prefixlen - 2 if self.prefixlen >= 2 else 0}"
            self.ref.add(first, first + (4 << size_bits) - 1, self.prefixlen - 2)
            blocks.append(text)
        self.alloc = Allocator(
            blocks, self.prefixlen, reserve_network_broadcast=reserve, avoid_buggy=buggy, reuse_delay=delay
        )

    def owner_name(self) -> str:
        self.counter += 1
        return f"o{self.counter}"

    def net(self, unit: int) -> netaddr.IPNetwork:
        return netaddr.IPNetwork((unit << self.ref.unit_bits, self.prefixlen), version=self.version)

    @rule(step=st.sampled_from([0.0, 1.0, 3.0]))
    def tick(self, step: float) -> None:
        self.now += step

    @rule()
    def allocate_next(self) -> None:
        self.ref.expire(self.now)
        owner = self.owner_name()
        free = self.ref.free()
        if not free:
            try:
                self.alloc.allocate(owner, now=self.now)
            except PoolExhausted:
                return
            raise AssertionError("allocated from a pool the model says is exhausted")
        got = self.alloc.allocate(owner, now=self.now)
        expected = min(free)
        assert got == self.net(expected), (got, self.net(expected))
        assert int(got.first) % (1 << self.ref.unit_bits) == 0
        self.ref.owners[expected] = owner

    @rule(data=st.data())
    def allocate_given(self, data: st.DataObject) -> None:
        self.ref.expire(self.now)
        offset = data.draw(offsets) >> self.ref.unit_bits
        unit = (BASES[self.version] >> self.ref.unit_bits) + offset
        held = self.ref.quarantine.get(unit)
        owner = held[1] if held and data.draw(st.booleans()) else self.owner_name()
        if unit in self.ref.owners:
            owner = self.ref.owners[unit] if data.draw(st.booleans()) else owner
        try:
            got = self.alloc.allocate(owner, self.net(unit), now=self.now)
        except AddressInUse:
            assert (unit in self.ref.owners and self.ref.owners[unit] != owner) or (held and held[1] != owner)
            return
        except OutOfRange:
            assert unit not in self.ref.good
            return
        assert got == self.net(unit)
        assert unit in self.ref.good
        assert self.ref.owners.get(unit, owner) == owner
        assert held is None or held[1] == owner
        self.ref.quarantine.pop(unit, None)
        self.ref.owners[unit] = owner

    @precondition(lambda self: bool(self.ref.owners))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        unit = data.draw(st.sampled_from(sorted(self.ref.owners)))
        owner = self.alloc.release(self.net(unit), now=self.now)
        assert owner == self.ref.owners.pop(unit)
        self.ref.expire(self.now)
        if self.ref.delay:
            self.ref.quarantine[unit] = (self.now + self.ref.delay, owner)

    @rule(data=st.data())
    def add_block(self, data: st.DataObject) -> None:
        text, first, last, plen = data.draw(block_texts(self.version))
        overlaps = any(first <= b_last and b_first <= last for b_first, b_last in self.ref.blocks)
        size = 1 << self.ref.unit_bits
        empty = not any(u * size >= first for u in range(first // size, (last + 1) // size))
        try:
            self.alloc.add_blocks([text])
        except ValueError:
            assert overlaps or empty
            return
        assert not overlaps
        assert not empty
        self.ref.add(first, last, plen)

    @invariant()
    def counts_and_owners_agree(self) -> None:
        if not hasattr(self, "alloc"):
            return
        self.alloc.expire(self.now)
        self.ref.expire(self.now)
        assert self.alloc.total == len(self.ref.good)
        assert self.alloc.used == len(self.ref.owners)
        assert self.alloc.quarantined == len(self.ref.quarantine)
        assert self.alloc.available == len(self.ref.free())
        assert {int(n.first) >> self.ref.unit_bits: o for n, o in self.alloc.allocations()} == self.ref.owners

    @invariant()
    def free_intervals_are_maximal(self) -> None:
        """Memory grows only with holes: two free intervals are always split by a unit that is
        allocated, held, reserved or outside the blocks, never by .0/.255 units alone."""
        if not hasattr(self, "alloc"):
            return
        size = 1 << self.ref.unit_bits
        intervals = list(self.alloc._free.items())
        for (_, left_last), (right_first, _) in itertools.pairwise(intervals):
            gap = range(left_last + 1, right_first)
            assert any(not self.ref.is_buggy(u * size, size) for u in gap), (left_last, right_first)


AllocatorMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllocatorAgainstModel = AllocatorMachine.TestCase
