"""Which named range holds an address: a bisect over disjoint blocks. Pure.

Used by both planners to find the serving pool of an address or prefix in O(log blocks); the
blocks of serving pools never overlap (of two overlapping pools the newer does not serve).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import netaddr

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
