"""The status a pool should carry (LoadBalancerIPPool or PodCIDRPool), from a planner's pool state.

Conditions: Ready (Valid / Invalid), Conflict (NoOverlap / Overlap, naming the older pool),
Exhausted (AddressesFree / NoAddressesFree), and for PodCIDRPools InvalidChange (Accepted /
Refused, saying what to do instead); exact counts per family as decimal strings (IPv6 counts
exceed int64; a PodCIDRPool counts node CIDRs); observedGeneration. The controllers' writers
merge the conditions into the pool's current ones (keeping lastTransitionTime) and write only
when something changed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lbipam.core.addresses import Block
from lbipam.core.allocator import Allocator
from lbipam.core.lbviews import CurrentCondition


class _View(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def problems(self) -> tuple[str, ...]: ...
    @property
    def valid(self) -> bool: ...


class PoolLike(Protocol):
    """What both planners' pool states have."""

    @property
    def view(self) -> _View: ...
    @property
    def accepted(self) -> _View | None: ...
    @property
    def loses_to(self) -> tuple[str, Block, Block] | None: ...
    @property
    def allocators(self) -> dict[int, Allocator]: ...


@dataclass(frozen=True, slots=True)
class PoolStatusPlan:
    name: str
    observed_generation: int
    conditions: tuple[tuple[str, CurrentCondition], ...]  # (type, condition)
    counts: dict[str, dict[str, str]]  # "ipv4"/"ipv6" -> {total, used, available}
    extra: Mapping[str, Any] = field(default_factory=dict)  # more status fields of one pool kind

    @property
    def exhausted(self) -> bool:
        return any(t == "Exhausted" and c.status == "True" for t, c in self.conditions)


def pool_status(state: PoolLike, refused: str | None = None, *, changes: bool = False) -> PoolStatusPlan:
    """`changes`: also report InvalidChange (PodCIDRPools), refused when `refused` says why."""
    view = state.view
    if view.valid:
        ready = CurrentCondition("True", "Valid", "the spec is valid")
    elif state.accepted is not None:
        ready = CurrentCondition(
            "False",
            "Invalid",
            f"{'; '.join(view.problems)}; still serving from the last valid spec "
            f"(generation {state.accepted.generation})",
        )
    else:
        ready = CurrentCondition("False", "Invalid", f"{'; '.join(view.problems)}; serving nothing")
    if state.loses_to is not None:
        older, theirs, ours = state.loses_to
        conflict = CurrentCondition(
            "True",
            "Overlap",
            f"block {ours} overlaps block {theirs} of pool {older}, which is older: this pool serves nothing",
        )
    else:
        conflict = CurrentCondition("False", "NoOverlap", "no other pool overlaps this one")
    counts = {}
    free = []
    for family in (4, 6):
        allocator = state.allocators.get(family)
        total, used, available = (
            (allocator.total, allocator.used, allocator.available) if allocator else (0, 0, 0)
        )
        counts[f"ipv{family}"] = {"total": str(total), "used": str(used), "available": str(available)}
        if allocator is not None:
            free.append(f"IPv{family} {available} of {total} available")
    if state.allocators and all(a.available == 0 for a in state.allocators.values()):
        exhausted = CurrentCondition("True", "NoAddressesFree", "no free address: " + ", ".join(free))
    else:
        exhausted = CurrentCondition("False", "AddressesFree", ", ".join(free) or "serving no addresses")
    conditions: tuple[tuple[str, CurrentCondition], ...] = (
        ("Ready", ready),
        ("Conflict", conflict),
        ("Exhausted", exhausted),
    )
    if changes:
        change = (
            CurrentCondition("True", "Refused", f"{refused}; still serving from the last accepted spec")
            if refused
            else CurrentCondition("False", "Accepted", "the spec in force is the latest one")
        )
        conditions += (("InvalidChange", change),)
    return PoolStatusPlan(view.name, view.generation, conditions, counts)
