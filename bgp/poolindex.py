"""Which LoadBalancerIPPool blocks hold an address or prefix, for the route planner. Unlike
`lbipam.core.blockindex.BlockIndex` it stays correct while pools overlap (a Conflict the
controller reports but the speaker may still see). Pure; used by `bgp.planner`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable

from bgp.views import PoolInfo
from lbipam.core.addresses import Block


class PoolIndex:
    """Which pool blocks hold an address or prefix: a bisect over blocks sorted by start, with the
    running maximum of their ends so that overlapping pools (a Conflict the controller reports)
    are still searched correctly (a lookup scans the overlap only). Built once per call."""

    def __init__(self, pools: Iterable[PoolInfo]) -> None:
        every = ((b.version, b.first, b.last, p.name, b) for p in pools for b in p.blocks)
        spans = sorted(every, key=lambda s: s[:4])  # Blocks themselves do not compare
        self._spans = {v: [(s[1], s[2], s[3], s[4]) for s in spans if s[0] == v] for v in (4, 6)}
        self._starts = {v: [s[0] for s in self._spans[v]] for v in (4, 6)}
        self._reach = {v: list(itertools.accumulate((s[1] for s in self._spans[v]), max)) for v in (4, 6)}

    def holders(self, version: int, first: int, last: int) -> list[tuple[str, Block]]:
        """(pool name, block) of every block that holds all of [first, last]."""
        spans, reach = self._spans.get(version, []), self._reach.get(version, [])
        found = []
        index = bisect.bisect_right(self._starts.get(version, []), first) - 1
        while index >= 0 and reach[index] >= last:
            _, block_last, name, block = spans[index]
            if block_last >= last:
                found.append((name, block))
            index -= 1
        return found
