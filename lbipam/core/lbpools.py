"""LoadBalancerIPPools as the LB-IPAM core holds them: accepted spec, conflicts, allocators.

A pool *serves* (hands out and keeps addresses) when it has an accepted spec and does not lose a
Conflict. An invalid edit is reported (Ready=False) while the pool keeps serving the addresses
of the last spec it accepted (held in memory, else read back from `status.accepted`), so a typo
never strips Services of their IPs, across restarts too; the rest of an invalid spec takes
effect as written when it reads on its own, else the pool is frozen (keeps its holders, hands
out nothing). A pool never accepted serves nothing. Of two overlapping pools the newer
(creationTimestamp, then name) loses and serves nothing; the older names it. Called by the
planner (`lbplanner`); pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lbipam.core.addresses import Block
from lbipam.core.allocator import Allocator
from lbipam.core.blockindex import ServingBlocks
from lbipam.core.lbviews import PoolView

PREFIXLEN = {4: 32, 6: 128}


@dataclass
class PoolState:
    view: PoolView  # the latest view, valid or not
    accepted: PoolView | None  # the spec it serves from
    allocators: dict[int, Allocator] = field(default_factory=dict)
    loses_to: tuple[str, Block, Block] | None = None  # (older pool, its block, ours) on Conflict
    beats: list[tuple[str, Block, Block]] = field(default_factory=list)  # (newer pool, its, ours)
    starved: set[int] = field(default_factory=set)  # families a Service waits for here in vain

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def serving(self) -> bool:
        return self.accepted is not None and self.loses_to is None

    def contains(self, ip: str, family: int) -> bool:
        allocator = self.allocators.get(family)
        return allocator is not None and allocator.contains(ip)

    def can_allocate(self) -> bool:
        """Serving and not disabled: may hand out new addresses."""
        return self.serving and self.accepted is not None and not self.accepted.disabled


def _allocators(view: PoolView, reuse_delay: float) -> dict[int, Allocator]:
    out = {}
    for family in (4, 6):
        blocks = view.blocks_of(family)
        if blocks:
            out[family] = Allocator(
                blocks,
                PREFIXLEN[family],
                reserve_network_broadcast=not view.allow_first_last,
                avoid_buggy=view.avoid_buggy and family == 4,
                reuse_delay=reuse_delay,
            )
    return out


def _accepted(view: PoolView, before: PoolState | None) -> PoolView | None:
    """The spec a pool serves from: a valid view; else its rules with the addresses accepted
    last (this process's memory first: it may be newer than the status it wrote)."""
    if view.valid:
        return view
    last = before.accepted.addresses if before is not None and before.accepted is not None else None
    addresses = last or view.recorded
    return view.serving_from(addresses) if addresses is not None else None


def _same_addresses(old: PoolView | None, new: PoolView) -> bool:
    return old is not None and old.same_addresses(new)


def rebuild(
    views: Iterable[PoolView], previous: dict[str, PoolState], reuse_delay: float
) -> dict[str, PoolState]:
    """The pool states for `views`; allocators of pools whose addresses did not change are kept
    (with their allocations); the others are new and empty (the planner carries the reuse
    delays over, across pools)."""
    states: dict[str, PoolState] = {}
    serving = ServingBlocks()
    for view in sorted(views, key=lambda v: v.age_key):
        before = previous.get(view.name)
        accepted = _accepted(view, before)
        state = PoolState(view, accepted)
        if accepted is not None:
            state.loses_to = serving.overlap(accepted.blocks)
            if state.loses_to is not None:
                older, theirs, ours = state.loses_to
                states[older].beats.append((view.name, ours, theirs))
        if state.serving and accepted is not None:
            serving.add(view.name, accepted.blocks)
            if before is not None and before.serving and _same_addresses(before.accepted, accepted):
                state.allocators = before.allocators
            else:
                state.allocators = _allocators(accepted, reuse_delay)
        states[view.name] = state
    return states
