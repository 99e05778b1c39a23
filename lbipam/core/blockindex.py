"""Which named range holds an address (`BlockIndex`), and which older pool a new pool's blocks
overlap (`ServingBlocks`): bisects over disjoint blocks. Pure.

Used by both planners to find the serving pool of an address or prefix in O(log blocks), and by
both pool rebuilds (`lbpools`, `pcpools`) for the Conflict rule; the blocks of serving pools
never overlap (of two overlapping pools the newer does not serve).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import netaddr
from sortedcontainers import SortedList

from lbipam.core.addresses import Block


class BlockIndex:
    def __init__(self, blocks: Iterable[tuple[Block, str]]) -> None:
        spans = sorted((b.first, b.last, b.version, name) for b, name in blocks)
        self._starts = {v: [s[0] for s in spans if s[2] == v] for v in (4, 6)}
        self._spans = {v: [(s[1], s[3]) for s in spans if s[2] == v] for v in (4, 6)}

    def find(self, address: str | int, family: int, last: int | None = None) -> str | None:
        """The name of the block holding `address` (through `last`, for a prefix), or None."""
        first = int(netaddr.IPAddress(address)) if isinstance(address, str) else address
        end = first if last is None else last
        index = bisect.bisect_right(self._starts.get(family, []), first) - 1
        if index < 0:
            return None
        block_last, name = self._spans[family][index]
        return name if end <= block_last else None


class ServingBlocks:
    """The blocks of the pools that serve so far, for the Conflict rule: pools are added oldest
    first, and a pool whose blocks overlap a block held here loses. Every look-up is O(log n) in
    the blocks held (plus the overlaps found), so pools of 100,000 blocks cost O(n log n) to check,
    not the O(n * m) of comparing every pair. The blocks held never overlap one another (a pool
    that would overlap them is not added, and a pool's own blocks are disjoint)."""

    def __init__(self) -> None:
        # (version, first, last, pool rank, index of the block in its pool, pool name, block)
        self._held: SortedList[tuple[int, int, int, int, int, str, Block]] = SortedList()
        self._ranks = 0

    def overlap(self, blocks: Sequence[Block]) -> tuple[str, Block, Block] | None:
        """(older pool, its block, ours) of the oldest pool that `blocks` overlap, naming that
        pool's first such block (in its order), then our first; None when nothing overlaps."""
        best: tuple[int, int, int, str, Block, Block] | None = None
        for ours_index, ours in enumerate(blocks):
            after = (ours.version, ours.last + 1, -1, -1, -1, "", ours)  # before any block from last + 1
            index = self._held.bisect_left(after) - 1
            while index >= 0:
                version, _, last, rank, theirs_index, name, theirs = self._held[index]
                if version != ours.version or last < ours.first:
                    break
                found = (rank, theirs_index, ours_index, name, theirs, ours)
                if best is None or found[:3] < best[:3]:
                    best = found
                index -= 1
        return None if best is None else (best[3], best[4], best[5])

    def add(self, name: str, blocks: Sequence[Block]) -> None:
        """Hold the blocks of a pool that serves (younger than every pool added before)."""
        rank, self._ranks = self._ranks, self._ranks + 1
        self._held.update(
            (b.version, b.first, b.last, rank, index, name, b) for index, b in enumerate(blocks)
        )
