"""LoadBalancerIPPools as the LB-IPAM core holds them: accepted spec, conflicts, allocators.

A pool *serves* (hands out and keeps addresses) when it has an accepted spec and does not lose a
Conflict. An invalid edit is reported (Ready=False) while the pool keeps serving from the last
spec it accepted, so a typo never strips Services of their IPs; a pool never accepted serves
nothing. Of two overlapping pools the newer (creationTimestamp, then name) loses and serves
nothing. Called by the planner (`lbplanner`); pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lbipam.core.addresses import Block
from lbipam.core.allocator import Allocator, AllocatorError
from lbipam.core.blockindex import ServingBlocks
from lbipam.core.lbviews import PoolView

PREFIXLEN = {4: 32, 6: 128}


@dataclass
class PoolState:
    view: PoolView  # the latest view, valid or not
    accepted: PoolView | None  # the spec it serves from
    allocators: dict[int, Allocator] = field(default_factory=dict)
    loses_to: tuple[str, Block, Block] | None = None  # (older pool, its block, ours) on Conflict

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


def _carry_holds(old: dict[int, Allocator], new: dict[int, Allocator]) -> None:
    """Keep the reuse delay of released addresses that the rebuilt pool still contains."""
    for family, allocator in old.items():
        target = new.get(family)
        if target is None:
            continue
        for net, until, owner in allocator.held_back():
            if target.contains(net) and target.owner(net) is None:
                try:
                    target.hold_back(net, until, owner)
                except (ValueError, AllocatorError):  # reserved in the new spec: nothing to hold
                    continue


def _same_addresses(old: PoolView | None, new: PoolView) -> bool:
    return old is not None and old.same_addresses(new)


def rebuild(
    views: Iterable[PoolView], previous: dict[str, PoolState], reuse_delay: float
) -> dict[str, PoolState]:
    """The pool states for `views`; allocators of pools whose addresses did not change are kept
    (with their allocations); the others are new and empty, with the reuse delays carried over."""
    states: dict[str, PoolState] = {}
    serving = ServingBlocks()
    for view in sorted(views, key=lambda v: v.age_key):
        before = previous.get(view.name)
        accepted = view if view.valid else (before.accepted if before else None)
        state = PoolState(view, accepted)
        if accepted is not None:
            state.loses_to = serving.overlap(accepted.blocks)
        if state.serving and accepted is not None:
            serving.add(view.name, accepted.blocks)
            if before is not None and before.serving and _same_addresses(before.accepted, accepted):
                state.allocators = before.allocators
            else:
                state.allocators = _allocators(accepted, reuse_delay)
                if before is not None:
                    _carry_holds(before.allocators, state.allocators)
        states[view.name] = state
    return states
