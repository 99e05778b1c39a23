"""The status a pool should carry (LoadBalancerIPPool or PodCIDRPool), from a planner's pool state.

Conditions: Ready (Valid / Invalid), Conflict (NoOverlap / Overlap, naming the older pool; the
older one says NewerPoolOverlaps, naming the newer), Exhausted (AddressesFree / NoAddressesFree,
naming the families: every family used up, or one used up while something waits for it there),
and for PodCIDRPools InvalidChange (Accepted / Refused, saying what to do instead); exact counts
per family as decimal strings (IPv6 counts exceed int64; a PodCIDRPool counts node CIDRs);
observedGeneration. The controllers' writers
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
    @property
    def beats(self) -> list[tuple[str, Block, Block]]: ...  # (newer pool, its block, ours)
    @property
    def starved(self) -> set[int]: ...  # families something waits for here in vain


@dataclass(frozen=True, slots=True)
class PoolStatusPlan:
    name: str
    observed_generation: int
    conditions: tuple[tuple[str, CurrentCondition], ...]  # (type, condition)
    counts: dict[str, dict[str, str]]  # "ipv4"/"ipv6" -> {total, used, available}
    extra: Mapping[str, Any] = field(default_factory=dict)  # more status fields of one pool kind
    exhausted_families: tuple[int, ...] = ()  # what Exhausted=True names

    @property
    def exhausted(self) -> bool:
        return any(t == "Exhausted" and c.status == "True" for t, c in self.conditions)


def pool_status(state: PoolLike, refused: str | None = None, *, changes: bool = False) -> PoolStatusPlan:
    """`changes`: also report InvalidChange (PodCIDRPools), refused when `refused` says why."""
    view = state.view
    exhausted, families = _exhausted(state)
    conditions: tuple[tuple[str, CurrentCondition], ...] = (
        ("Ready", _ready(state)),
        ("Conflict", _conflict(state)),
        ("Exhausted", exhausted),
    )
    if changes:
        change = (
            CurrentCondition("True", "Refused", f"{refused}; still serving from the last accepted spec")
            if refused
            else CurrentCondition("False", "Accepted", "the spec in force is the latest one")
        )
        conditions += (("InvalidChange", change),)
    counts = {}
    for family in (4, 6):
        allocator = state.allocators.get(family)
        total, used, available = (
            (allocator.total, allocator.used, allocator.available) if allocator else (0, 0, 0)
        )
        counts[f"ipv{family}"] = {"total": str(total), "used": str(used), "available": str(available)}
    return PoolStatusPlan(view.name, view.generation, conditions, counts, exhausted_families=families)


def _ready(state: PoolLike) -> CurrentCondition:
    view, accepted = state.view, state.accepted
    if view.valid:
        return CurrentCondition("True", "Valid", "the spec is valid")
    problems = "; ".join(view.problems)
    if accepted is None:
        return CurrentCondition("False", "Invalid", f"{problems}; serving nothing")
    which = f"generation {accepted.generation}" if accepted.generation else "status.accepted"
    message = f"{problems}; still serving from the last valid spec ({which})"
    # Only a LoadBalancerIPPool's view can be frozen (PodCIDRPool views have no such field).
    if getattr(accepted, "frozen", False):
        message += ", keeping the Services that hold its addresses and handing out none until it is fixed"
    return CurrentCondition("False", "Invalid", message)


def _conflict(state: PoolLike) -> CurrentCondition:
    if state.loses_to is not None:
        older, theirs, ours = state.loses_to
        return CurrentCondition(
            "True",
            "Overlap",
            f"block {ours} overlaps block {theirs} of pool {older}, which is older: this pool serves nothing",
        )
    if state.beats:
        named = "; ".join(
            f"block {theirs} of pool {newer} overlaps block {ours}" for newer, theirs, ours in state.beats[:5]
        )
        more = f" (and {len(state.beats) - 5} more)" if len(state.beats) > 5 else ""
        losers = ", ".join(dict.fromkeys(newer for newer, _, _ in state.beats))
        return CurrentCondition(
            "False",
            "NewerPoolOverlaps",
            f"{named}{more}; this pool is older and keeps serving, pool(s) {losers} serve nothing",
        )
    return CurrentCondition("False", "NoOverlap", "no other pool overlaps this one")


def _exhausted(state: PoolLike) -> tuple[CurrentCondition, tuple[int, ...]]:
    """Exhausted=True when every family is used up, or one is used up while something waits for
    an address of it here (a dual-stack pool out of IPv4 while a Service waits for IPv4)."""
    free = [f"IPv{f} {a.available} of {a.total} available" for f, a in sorted(state.allocators.items())]
    used_up = [f for f, a in sorted(state.allocators.items()) if a.available == 0]
    if state.allocators and len(used_up) == len(state.allocators):
        families = tuple(used_up)
        why = "no free address"
    else:
        families = tuple(f for f in used_up if f in state.starved)
        names = " or ".join(f"IPv{f}" for f in families)
        why = f"no free {names} address, and a Service waits for one"
    if families:
        return CurrentCondition("True", "NoAddressesFree", f"{why}: " + ", ".join(free)), families
    return CurrentCondition("False", "AddressesFree", ", ".join(free) or "serving no addresses"), ()
