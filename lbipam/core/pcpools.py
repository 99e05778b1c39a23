"""PodCIDRPools as the PodCIDR core holds them: accepted spec, refused changes, allocators.

The growth rule (DESIGN.md "PodCIDRPool"): appending CIDRs (or a family) is always accepted and
grows the pool at once; changing `maskSize`, or removing or altering a CIDR, while nodes hold
CIDRs from it is refused: the pool keeps serving from the last accepted families and reports
`InvalidChange` with what to do instead. An invalid spec (the model's checks) likewise keeps the
last accepted one. Of two overlapping pools the newer loses (`Conflict`) and serves nothing.
Pure, no I/O; called by `pcplanner`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import netaddr

from lbipam.core.addresses import Block
from lbipam.core.allocator import Allocator, AllocatorError
from lbipam.core.blockindex import ServingBlocks
from lbipam.core.pcviews import FamilySpec, PCPoolView


@dataclass
class PCPoolState:
    view: PCPoolView
    accepted: PCPoolView | None
    allocators: dict[int, Allocator] = field(default_factory=dict)
    loses_to: tuple[str, Block, Block] | None = None
    beats: list[tuple[str, Block, Block]] = field(default_factory=list)  # (newer pool, its, ours)
    starved: set[int] = field(default_factory=set)  # unused: a PodCIDRPool is Exhausted when full
    refused: str | None = None  # why the latest spec was not accepted (InvalidChange)

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def serving(self) -> bool:
        return self.accepted is not None and self.loses_to is None

    def can_allocate(self) -> bool:
        return self.serving and self.accepted is not None and not self.accepted.disabled


def _held_in(allocator: Allocator | None, block: Block) -> list[str]:
    if allocator is None:
        return []
    return [owner for net, owner in allocator.allocations() if block.first <= int(net.first) <= block.last]


def refusal(old: PCPoolView, new: PCPoolView, allocators: dict[int, Allocator]) -> str | None:
    """Why `new` may not replace `old` while the allocations in `allocators` exist, or None."""
    for family, before in sorted(old.families.items()):
        allocator = allocators.get(family)
        held = sorted(allocator.allocations()) if allocator else []
        after = new.families.get(family)
        where = f"spec.ipv{family}"
        if after is None:
            if held:
                return f"{where} cannot be removed while {len(held)} node(s) hold CIDRs from it"
            continue
        if after.mask != before.mask and held:
            return (
                f"{where}.maskSize cannot change from {before.mask} to {after.mask} while "
                f"{len(held)} node(s) hold /{before.mask}s from this pool; keep maskSize {before.mask} "
                f"and append a new CIDR to {where}.cidrs to grow it, or create another PodCIDRPool"
            )
        for block in before.cidrs:
            nodes = _held_in(allocator, block)
            if block not in after.cidrs and nodes:
                shown = ", ".join(nodes[:3]) + (" ..." if len(nodes) > 3 else "")
                return (
                    f"{where}.cidrs: {block} cannot be removed or altered while nodes hold CIDRs from "
                    f"it ({shown}); keep it and append new CIDRs to {where}.cidrs instead"
                )
    return None


def _allocator(
    before: Allocator | None, old: FamilySpec | None, new: FamilySpec, reuse_delay: float
) -> Allocator:
    """Keep the allocator when the family only grew (same mask, old CIDRs first); else a new one."""
    grown = old is not None and old.mask == new.mask and new.cidrs[: len(old.cidrs)] == old.cidrs
    if before is not None and old is not None and grown:
        added = new.cidrs[len(old.cidrs) :]
        if added:
            before.add_blocks(added)
        return before
    fresh = Allocator(new.cidrs, new.mask, reuse_delay=reuse_delay)
    if before is not None:
        for net, until, owner in before.held_back():
            for unit in _units(net, new.mask):
                if fresh.contains(unit):
                    try:
                        fresh.hold_back(unit, until, owner)
                    except (ValueError, AllocatorError):
                        continue
    return fresh


def _units(net: netaddr.IPNetwork, mask: int) -> list[netaddr.IPNetwork]:
    """The prefixes of length `mask` that a held-back `net` covers or lies in: a reuse delay
    outlives a change of maskSize (made while nothing was held). Bounded: a wider hold is dropped."""
    if mask <= net.prefixlen:
        return [net.supernet(mask)[0] if mask < net.prefixlen else net]
    if mask - net.prefixlen > 12:
        return []
    return list(net.subnet(mask))


def rebuild(
    views: Iterable[PCPoolView], previous: dict[str, PCPoolState], reuse_delay: float
) -> dict[str, PCPoolState]:
    states: dict[str, PCPoolState] = {}
    serving = ServingBlocks()
    for view in sorted(views, key=lambda v: v.age_key):
        before = previous.get(view.name)
        old = before.accepted if before is not None else None
        accepted, refused = old, None
        if view.valid:
            refused = refusal(old, view, before.allocators) if old is not None and before else None
            # A refused change holds back the families only: selector, `disabled` and priority
            # take effect as written (and so read the same after a restart, from the spec).
            accepted = replace(view, families=old.families) if refused and old is not None else view
        state = PCPoolState(view, accepted, refused=refused)
        if accepted is not None:
            state.loses_to = serving.overlap(accepted.blocks)
            if state.loses_to is not None:
                older, theirs, ours = state.loses_to
                states[older].beats.append((view.name, ours, theirs))
        if state.serving and accepted is not None:
            serving.add(view.name, accepted.blocks)
            kept = before.allocators if before is not None and before.serving else {}
            for family, spec in accepted.families.items():
                old_spec = old.families.get(family) if old is not None else None
                state.allocators[family] = _allocator(kept.get(family), old_spec, spec, reuse_delay)
        states[view.name] = state
    return states
