"""The PodCIDRPool custom resource (short name `pcpool`): where nodes' pod CIDRs come from.

Owns the model and the checks one pool can make alone: CIDR syntax and family, no overlap inside a
family, a mask size that fits every CIDR. Rules about changes over time (InvalidChange) belong to
the controller, which compares specs. Used by the PodCIDR controller and `crdgen`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from lbipam.api.common import (
    API_VERSION,
    CIDR,
    JsonDict,
    LabelSelector,
    ObjectMeta,
    SpecModel,
    WireModel,
    field_error,
    quote,
)
from lbipam.api.lbpool import PoolStatus, check_no_overlap
from lbipam.core.addresses import Block, cidr_block

_ONE_FAMILY_AT_LEAST: JsonDict = {"anyOf": [{"required": ["ipv4"]}, {"required": ["ipv6"]}]}


class PodCIDRFamily(SpecModel):
    """The CIDRs of one IP family and the size of the CIDR each node gets from them."""

    version: ClassVar[int] = 4
    cidrs: list[CIDR] = Field(
        min_length=1, description="CIDRs to carve node CIDRs from; append to grow the pool."
    )
    mask_size: int

    @field_validator("cidrs")
    @classmethod
    def _family_and_overlap(cls, cidrs: list[str]) -> list[str]:
        blocks = [cidr_block(c) for c in cidrs]
        for index, block in enumerate(blocks):
            if block.version != cls.version:
                raise field_error(
                    f"{quote(cidrs[index])} is an IPv{block.version} CIDR, expected IPv{cls.version}",
                    cidrs[index],
                    index,
                )
        check_no_overlap(blocks, "cidrs")
        return cidrs

    @model_validator(mode="after")
    def _mask_fits(self) -> PodCIDRFamily:
        for index, block in enumerate(self.blocks()):
            if block.prefixlen is not None and self.mask_size < block.prefixlen:
                raise field_error(
                    f"maskSize {self.mask_size} is shorter than the prefix length of "
                    f"cidrs[{index}] {quote(self.cidrs[index])}; use {block.prefixlen} or longer",
                    self.mask_size,
                    "maskSize",
                )
        return self

    def blocks(self) -> list[Block]:
        """The core Blocks of `cidrs`, in the order written."""
        return [cidr_block(c) for c in self.cidrs]


class PodCIDRFamilyV4(PodCIDRFamily):
    version: ClassVar[int] = 4
    mask_size: int = Field(ge=0, le=32, description="Prefix length of each node's IPv4 CIDR.")


class PodCIDRFamilyV6(PodCIDRFamily):
    version: ClassVar[int] = 6
    mask_size: int = Field(ge=0, le=128, description="Prefix length of each node's IPv6 CIDR.")


class PodCIDRPoolSpec(SpecModel):
    """Pod CIDRs for nodes: one per family the pool has."""

    model_config = ConfigDict(json_schema_extra=_ONE_FAMILY_AT_LEAST)

    ipv4: PodCIDRFamilyV4 | None = Field(None, description="IPv4 CIDRs and mask size.")
    ipv6: PodCIDRFamilyV6 | None = Field(None, description="IPv6 CIDRs and mask size.")
    node_selector: LabelSelector | None = Field(
        None, description="Nodes this pool serves (absent: every node)."
    )
    disabled: bool = Field(False, description="No new node CIDRs; existing ones are kept.")
    priority: int = Field(0, description="Lower is tried first; ties are broken by pool name.")

    @model_validator(mode="after")
    def _some_family(self) -> PodCIDRPoolSpec:
        if self.ipv4 is None and self.ipv6 is None:
            raise field_error("give ipv4, ipv6 or both", self.to_wire())
        return self

    def family(self, version: int) -> PodCIDRFamily | None:
        """The settings of IPv4 (4) or IPv6 (6), None when the pool has none of that family."""
        return self.ipv4 if version == 4 else self.ipv6

    def blocks_by_family(self) -> dict[int, list[Block]]:
        """The core Blocks per IP version, {4: [...], 6: [...]}."""
        return {v: (f.blocks() if (f := self.family(v)) else []) for v in (4, 6)}


class AcceptedFamilies(WireModel):
    """The families of the spec the controller last accepted and serves from. Kept in status so
    that a restarted controller still refuses a change it refused before (a new mask while nodes
    hold CIDRs of the old one) instead of taking it as the starting point."""

    ipv4: PodCIDRFamilyV4 | None = None
    ipv6: PodCIDRFamilyV6 | None = None


class PodCIDRPoolStatus(PoolStatus):
    """Status of a PodCIDRPool, written by the controller."""

    accepted: AcceptedFamilies | None = Field(
        None, description="The families of the last accepted spec, which the pool serves from."
    )


class PodCIDRPool(WireModel):
    """A pool of pod CIDRs handed out to nodes."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["lbipam.io/v1alpha1"] = API_VERSION
    kind: Literal["PodCIDRPool"] = "PodCIDRPool"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodCIDRPoolSpec
    status: PodCIDRPoolStatus | None = None
