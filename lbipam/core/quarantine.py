"""Released units the reuse delay still holds back: unit -> (free again at, last owner).

Owned by the allocator (its only user), which frees a unit into its free map when its hold ends.
A heap of end times, pruned lazily, makes the earliest end an O(log n) look-up; an entry whose
hold was ended early or replaced is skipped when it comes up. Pure: no clock (callers pass `now`),
no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator


class Quarantine:
    def __init__(self) -> None:
        self._held: dict[int, tuple[float, str]] = {}  # unit -> (free again at, last owner)
        self._expiries: list[tuple[float, int]] = []  # heap over _held, lazily pruned

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, unit: int) -> bool:
        return unit in self._held

    def get(self, unit: int) -> tuple[float, str] | None:
        """(free again at, last owner) of a held unit, or None."""
        return self._held.get(unit)

    def hold(self, unit: int, until: float, owner: str) -> None:
        self._held[unit] = (until, owner)
        heapq.heappush(self._expiries, (until, unit))

    def end(self, unit: int) -> None:
        """End a unit's hold early (its last owner takes it back)."""
        del self._held[unit]

    def expire(self, now: float) -> Iterator[int]:
        """Remove and yield every unit whose hold ended by `now`."""
        while self._expiries and self._expiries[0][0] <= now:
            until, unit = heapq.heappop(self._expiries)
            held = self._held.get(unit)
            if held is not None and held[0] == until:
                del self._held[unit]
                yield unit

    def next_expiry(self) -> float | None:
        """When the earliest hold ends, or None."""
        while self._expiries:
            until, unit = self._expiries[0]
            held = self._held.get(unit)
            if held is not None and held[0] == until:
                return until
            heapq.heappop(self._expiries)
        return None

    def items(self) -> Iterator[tuple[int, float, str]]:
        """(unit, free again at, last owner) of every hold, in unit order."""
        for unit, (until, owner) in sorted(self._held.items()):
            yield unit, until, owner
