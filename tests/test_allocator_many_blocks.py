"""The allocator built from many blocks against a simple model, and the pool Conflict rule over
many blocks against the pairwise comparison it replaced.

A pool may hold 100,000 blocks, so building one sorts and bisects instead of comparing every
pair. Hypothesis draws hundreds of small blocks (single addresses, CIDRs, ranges) in random
order, added at once or in several `add_blocks` calls, and checks that the allocator agrees with
a set of unit numbers: what it serves, in which order, what it contains, which blocks an
interval touches, and that an overlapping addition is refused whole and changes nothing.
"""

from __future__ import annotations

import itertools

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbipam.core.addresses import Block
from lbipam.core.allocator import Allocator, OutOfRange, PoolExhausted
from lbipam.core.blockindex import ServingBlocks

BASE = {4: int(netaddr.IPAddress("10.0.0.0")), 6: int(netaddr.IPAddress("2001:db8::"))}
BITS = {4: 32, 6: 128}
SPACE = 4096  # addresses per universe


@st.composite
def blocks(draw: st.DrawFn, version: int, max_blocks: int = 300) -> list[Block]:
    """Disjoint blocks (a mix of single addresses, CIDRs and ranges), in random order."""
    base = BASE[version]
    cuts = sorted(draw(st.sets(st.integers(0, SPACE - 1), min_size=2, max_size=2 * max_blocks)))
    out = []
    for start, stop in itertools.pairwise(cuts):
        kind = draw(st.sampled_from(["address", "cidr", "range", "gap"]))
        last = stop - 1
        if kind == "address":
            out.append(Block(base + start, base + start, version, BITS[version]))
        elif kind == "range":
            out.append(Block(base + start, base + last, version))
        elif kind == "cidr":
            size = 1 << ((last - start + 1).bit_length() - 1)  # the largest aligned CIDR inside
            while start % size or start + size - 1 > last:
                size //= 2
            out.append(
                Block(base + start, base + start + size - 1, version, BITS[version] - size.bit_length() + 1)
            )
    return draw(st.permutations(out))


def model_units(blks: list[Block], version: int, size_bits: int, reserve: bool) -> set[int]:
    """The units an allocator of /(BITS - size_bits) serves, computed address by address."""
    size = 1 << size_bits
    units: set[int] = set()
    for b in blks:
        inside = {  # the whole units inside the block
            u
            for u in range(b.first // size, b.last // size + 1)
            if u * size >= b.first and (u + 1) * size - 1 <= b.last
        }
        if reserve and b.prefixlen is not None and b.prefixlen < BITS[version] - 1:
            inside -= {b.first // size, b.last // size}
        units |= inside
    return units


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    version=st.sampled_from([4, 6]),
    size_bits=st.sampled_from([0, 0, 1, 2]),
    reserve=st.booleans(),
)
def test_many_blocks_agree_with_a_model(
    data: st.DataObject, version: int, size_bits: int, reserve: bool
) -> None:
    size = 1 << size_bits
    drawn = data.draw(blocks(version))
    usable = [  # the blocks holding a whole unit (the allocator refuses the others)
        b
        for b in drawn
        if any(
            u * size >= b.first and (u + 1) * size - 1 <= b.last
            for u in range(b.first // size, b.last // size + 1)
        )
    ]
    if not usable:
        return
    chunks = data.draw(st.integers(1, 4))
    parts = [usable[i::chunks] for i in range(chunks)]
    alloc = Allocator(parts[0], BITS[version] - size_bits, reserve_network_broadcast=reserve)
    for part in parts[1:]:
        if part:
            alloc.add_blocks(part)
    units = model_units(usable, version, size_bits, reserve)
    assert alloc.total == len(units)
    assert alloc.blocks == sorted(usable, key=lambda b: b.first)

    # contains and blocks_within, at addresses inside, between and around the blocks
    probes = data.draw(st.lists(st.integers(-2, SPACE + 2), min_size=20, max_size=60))
    for offset in probes:
        address = BASE[version] + offset
        holder = [b for b in usable if b.first <= address <= b.last]
        assert alloc.contains(netaddr.IPAddress(address, version)) == bool(holder)
        assert alloc.blocks_within(address, address + 7) == sorted(
            (b for b in usable if b.first <= address + 7 and b.last >= address), key=lambda b: b.first
        )

    # an addition that overlaps any block is refused whole and changes nothing
    victim = data.draw(st.sampled_from(usable))
    start = data.draw(st.integers(BASE[version] - 8, victim.last))
    stop = data.draw(st.integers(max(start, victim.first), victim.last + 8))
    fresh = Block(BASE[version] + SPACE + 64, BASE[version] + SPACE + 64, version, BITS[version])
    with pytest.raises(ValueError, match="overlaps"):
        alloc.add_blocks([fresh, Block(start, stop, version)])
    assert alloc.total == len(units)
    assert not alloc.contains(netaddr.IPAddress(fresh.first, version))

    # every unit is handed out once, lowest first, then the pool is exhausted
    got = [int(alloc.allocate(f"o{i}").first) >> size_bits for i in range(len(units))]
    assert got == sorted(units)
    with pytest.raises(PoolExhausted):
        alloc.allocate("one-too-many")


def test_messages_name_a_few_blocks_of_a_large_pool() -> None:
    """An error names the first blocks and how many more, not 100,000 of them."""
    blks = [Block(BASE[4] + 2 * i, BASE[4] + 2 * i, 4, 32) for i in range(100_000)]
    alloc = Allocator(blks, 32)
    assert alloc.total == 100_000
    with pytest.raises(OutOfRange) as err:
        alloc.allocate("x", "10.0.0.1")
    assert str(err.value) == (
        "10.0.0.1 is outside 10.0.0.0/32, 10.0.0.2/32, 10.0.0.4/32, 10.0.0.6/32, 10.0.0.8/32, "
        "10.0.0.10/32, 10.0.0.12/32, 10.0.0.14/32 and 99992 more blocks"
    )


def pairwise_overlap(
    pools: list[tuple[str, list[Block]]], ours: list[Block]
) -> tuple[str, Block, Block] | None:
    """The rule as first written: the oldest pool, its first block in order, then ours."""
    for name, theirs_blocks in pools:
        for theirs in theirs_blocks:
            for block in ours:
                if block.overlaps(theirs):
                    return (name, theirs, block)
    return None


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_serving_blocks_find_the_overlap_pairwise_comparison_finds(data: st.DataObject) -> None:
    """Pools added oldest first; each new pool either loses (naming the same older pool and
    blocks as the pairwise rule) or serves and is added."""
    serving = ServingBlocks()
    held: list[tuple[str, list[Block]]] = []
    for index in range(data.draw(st.integers(1, 6))):
        version = data.draw(st.sampled_from([4, 4, 6]))
        pool = data.draw(blocks(version, max_blocks=30))
        if not pool:
            continue
        name = f"p{index}"
        expected = pairwise_overlap(held, pool)
        assert serving.overlap(pool) == expected
        if expected is None:
            serving.add(name, pool)
            held.append((name, pool))
