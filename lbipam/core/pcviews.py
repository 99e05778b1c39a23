"""The frozen views of Nodes and PodCIDRPools that the PodCIDR core works on.

Built from API objects in exactly one place (`lbipam.controllers.podcidr.convert`). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lbipam.core.addresses import Block
from lbipam.core.lbviews import CurrentCondition
from lbipam.core.selectors import EVERYTHING, Selector

CONDITION_PODCIDRS = "lbipam.io/PodCIDRsAllocated"


@dataclass(frozen=True, slots=True)
class FamilySpec:
    """One family of a PodCIDRPool: the CIDRs to carve from and the prefix length of each node's."""

    cidrs: tuple[Block, ...]
    mask: int


@dataclass(frozen=True, slots=True)
class PCPoolView:
    name: str
    created: str = ""
    generation: int = 0
    families: Mapping[int, FamilySpec] = field(default_factory=dict)
    node_selector: Selector = EVERYTHING
    disabled: bool = False
    priority: int = 0
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def age_key(self) -> tuple[str, str]:
        return (self.created, self.name)

    @property
    def order_key(self) -> tuple[int, str]:
        return (self.priority, self.name)

    @property
    def blocks(self) -> tuple[Block, ...]:
        return tuple(b for f in sorted(self.families) for b in self.families[f].cidrs)


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    uid: str = ""
    created: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    cidrs: tuple[str, ...] = ()  # what the target (Node, CiliumNode, annotations) shows now
    condition: CurrentCondition | None = None  # our condition on the Node now
