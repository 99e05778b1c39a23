"""Free space as disjoint integer intervals, with a periodic set of "dead" units skipped.

Owned by the allocator (its only user). Every operation is a few O(log n) look-ups in a sorted map
of intervals, so cost does not grow with how full the space is, and memory grows with the number
of holes, never with the size of the range.

Dead units are the allocator's "buggy" IPv4 prefixes (holding an address ending in .0 or .255):
they recur every `period` units (at residues 0 and period-1), so they are a predicate, not holes.
Intervals may contain dead units but never start or end on one, and intervals separated only by
dead units are merged. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedDict


class FreeMap:
    def __init__(self, dead_period: int = 0) -> None:
        if dead_period and dead_period < 4:
            raise ValueError(f"a dead period must be at least 4 (two live units apart), got {dead_period}")
        self.period = dead_period  # 0: no dead units
        self._map: SortedDict[int, int] = SortedDict()  # first unit -> last unit

    def __bool__(self) -> bool:
        return bool(self._map)

    def __len__(self) -> int:
        """The number of intervals (not of free units)."""
        return len(self._map)

    def items(self) -> Iterator[tuple[int, int]]:
        return iter(self._map.items())

    # ---- dead units: with k units per period, u is dead when u % k is 0 or k - 1 --------------
    def is_dead(self, unit: int) -> bool:
        k = self.period
        return k != 0 and unit % k in (0, k - 1)

    def next_live(self, unit: int) -> int:
        k = self.period
        if k == 0:
            return unit
        r = unit % k
        return unit + 1 if r == 0 else unit + 2 if r == k - 1 else unit

    def prev_live(self, unit: int) -> int:
        k = self.period
        if k == 0:
            return unit
        r = unit % k
        return unit - 1 if r == k - 1 else unit - 2 if r == 0 else unit

    def count_live(self, first: int, last: int) -> int:
        """Live units in [first, last], by arithmetic."""
        if first > last:
            return 0
        count = last - first + 1
        k = self.period
        if k:
            for residue in (0, k - 1):
                count -= (last - residue) // k - (first - 1 - residue) // k
        return count

    # ---- taking and freeing ---------------------------------------------------------------
    def pop_lowest(self) -> int | None:
        """Take the lowest free unit, or None when nothing is free."""
        if not self._map:
            return None
        first, last = self._map.peekitem(0)
        del self._map[first]
        rest = self.next_live(first + 1)
        if rest <= last:
            self._map[rest] = last
        return first

    def take(self, unit: int) -> bool:
        """Take one free live unit; False when it is not free."""
        index = self._map.bisect_right(unit) - 1
        if index < 0:
            return False
        first, last = self._map.peekitem(index)
        if not first <= unit <= last or self.is_dead(unit):
            return False
        del self._map[first]
        left_last = self.prev_live(unit - 1)
        if first <= left_last:
            self._map[first] = left_last
        right_first = self.next_live(unit + 1)
        if right_first <= last:
            self._map[right_first] = last
        return True

    def add_many(self, intervals: Iterable[tuple[int, int]]) -> None:
        """Free many intervals, given in order and disjoint: one bulk build into an empty map
        (O(n) after the merging), else one `add` each."""
        if self._map:
            for first, last in intervals:
                self.add(first, last)
            return
        merged: list[tuple[int, int]] = []
        for raw_first, raw_last in intervals:
            first, last = self.next_live(raw_first), self.prev_live(raw_last)
            if first > last:
                continue
            if merged and self.count_live(merged[-1][1] + 1, first - 1) == 0:
                first = merged.pop()[0]
            merged.append((first, last))
        self._map = SortedDict(merged)

    def add(self, first: int, last: int) -> None:
        """Free [first, last], merging with neighbours separated from it by dead units only."""
        first, last = self.next_live(first), self.prev_live(last)
        if first > last:
            return
        index = self._map.bisect_right(first) - 1
        if index >= 0:
            left_first, left_last = self._map.peekitem(index)
            if self.count_live(left_last + 1, first - 1) == 0:
                del self._map[left_first]
                first = left_first
        index = self._map.bisect_left(first)
        if index < len(self._map):
            right_first, right_last = self._map.peekitem(index)
            if self.count_live(last + 1, right_first - 1) == 0:
                del self._map[right_first]
                last = right_last
        self._map[first] = last
