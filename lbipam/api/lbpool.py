"""The LoadBalancerIPPool custom resource (short name `lbpool`): a pool of Service IPs.

Owns the model of the spec and status and the checks a single pool can make on its own (block
syntax, families, overlap inside the pool). Overlap between pools is the controller's business
(condition Conflict). Used by the controller, `lbipam status`, and `crdgen`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from lbipam.api.common import (
    API_VERSION,
    CIDR,
    IPAddress,
    JsonDict,
    LabelSelector,
    ObjectMeta,
    ResourceStatus,
    SchemaExtra,
    SpecModel,
    WireModel,
    anchored,
    checker,
    field_error,
    quote,
)
from lbipam.core.addresses import AddressError, Block, cidr_block, find_overlap, range_block

#: value validation of a block: exactly one of cidr and start.
_ONE_OF_CIDR_OR_START: JsonDict = {"oneOf": [{"required": ["cidr"]}, {"required": ["start"]}]}


class IPBlock(SpecModel):
    """One block of addresses: a `cidr`, or a range from `start` to `stop` (default: start)."""

    model_config = ConfigDict(json_schema_extra=_ONE_OF_CIDR_OR_START)

    cidr: CIDR | None = Field(None, description="A CIDR such as 192.0.2.0/24 (host bits clear).")
    start: IPAddress | None = Field(None, description="First address of a range.")
    stop: IPAddress | None = Field(None, description="Last address of the range (default: start).")
    _block: Block | None = PrivateAttr(None)  # parsed once: a pool may hold 100,000 blocks

    @model_validator(mode="after")
    def _one_kind(self) -> IPBlock:
        if self.cidr is not None and self.start is not None:
            raise field_error(
                f"give either cidr or start, not both (cidr {quote(self.cidr)}, start {quote(self.start)})",
                self.to_wire(),
            )
        if self.cidr is None and self.start is None:
            raise field_error("a block needs a cidr, or a start (and optional stop)", self.to_wire())
        if self.cidr is not None and self.stop is not None:
            raise field_error(f"stop {quote(self.stop)} goes with start, not with cidr", self.stop, "stop")
        try:
            self.block()
        except AddressError as exc:
            raise field_error(str(exc), self.stop, "stop") from None
        return self

    def block(self) -> Block:
        """The core Block of these addresses."""
        if self._block is None:
            if self.cidr is not None:
                self._block = cidr_block(self.cidr)
            else:
                assert self.start is not None  # checked by the validator; narrows the type
                self._block = range_block(self.start, self.stop)
        return self._block

    def __str__(self) -> str:
        return str(self.block())


_DECIMAL = "0|[1-9][0-9]*"


def _decimal(value: str) -> None:
    if not re.fullmatch(_DECIMAL, value):
        raise ValueError(f"{quote(value)} is not a non-negative decimal integer")


Decimal = Annotated[str, checker(_decimal), SchemaExtra({"pattern": anchored(_DECIMAL)})]


class FamilyCounts(WireModel):
    """Address (or node CIDR) counts of one family, as exact decimal strings: IPv6 exceeds int64."""

    total: Decimal = "0"
    used: Decimal = "0"
    available: Decimal = "0"

    @classmethod
    def of(cls, total: int, used: int) -> FamilyCounts:
        return cls(total=str(total), used=str(used), available=str(total - used))


class PoolStatus(ResourceStatus):
    """Status of a LoadBalancerIPPool or PodCIDRPool, written by the controller."""

    ipv4: FamilyCounts = Field(default_factory=FamilyCounts)
    ipv6: FamilyCounts = Field(default_factory=FamilyCounts)


def check_no_overlap(blocks: list[Block], noun: str) -> None:
    """Raise a ValidationError at the later of two overlapping blocks, naming both."""
    pair = find_overlap(blocks)
    if pair is None:
        return
    first = blocks.index(pair[0])
    second = next(i for i, b in enumerate(blocks) if b == pair[1] and i != first)
    first, second = sorted((first, second))
    raise field_error(
        f"{quote(str(blocks[second]))} overlaps {noun}[{first}] {quote(str(blocks[first]))}",
        str(blocks[second]),
        second,
    )


class LoadBalancerIPPoolSpec(SpecModel):
    """Addresses handed out to Services of type LoadBalancer, and who may have them."""

    blocks: list[IPBlock] = Field(
        min_length=1, description="Address blocks: each a cidr, or a start and optional stop."
    )
    service_selector: LabelSelector | None = Field(
        None, description="Services this pool serves (absent: every Service)."
    )
    namespace_selector: LabelSelector | None = Field(
        None, description="Namespaces whose Services this pool serves (absent: every namespace)."
    )
    disabled: bool = Field(False, description="No new allocations; existing ones keep their IPs.")
    auto_assign: bool = Field(
        True, description="false: only Services that ask for this pool or one of its IPs."
    )
    allow_first_last_ips: bool = Field(
        False,
        alias="allowFirstLastIPs",
        description="Hand out a cidr block's network and broadcast addresses too.",
    )
    avoid_buggy_ips: bool = Field(
        False, alias="avoidBuggyIPs", description="Skip IPv4 addresses ending in .0 or .255."
    )
    priority: int = Field(0, description="Lower is tried first; ties are broken by pool name.")

    @field_validator("blocks")
    @classmethod
    def _no_overlap(cls, blocks: list[IPBlock]) -> list[IPBlock]:
        check_no_overlap([b.block() for b in blocks], "blocks")
        return blocks

    def blocks_by_family(self) -> dict[int, list[Block]]:
        """The core Blocks per IP version, {4: [...], 6: [...]}, in the order written."""
        out: dict[int, list[Block]] = {4: [], 6: []}
        for block in (b.block() for b in self.blocks):
            out[block.version].append(block)
        return out


# ---- what the status records for the next controller (status.accepted, status.heldBack) ------
#: At most this many held-back addresses are listed per pool (see `HeldBack`).
MAX_HELD_LISTED = 1000


class AcceptedAddresses(WireModel):
    """The address part of the spec the controller last accepted, which the pool serves from
    while its spec is invalid. Kept in status so that a restarted controller, a new leader and
    a speaker started meanwhile still serve those addresses."""

    blocks: list[IPBlock] = Field(min_length=1, description="The accepted blocks.")
    allow_first_last_ips: bool = Field(False, alias="allowFirstLastIPs")
    avoid_buggy_ips: bool = Field(False, alias="avoidBuggyIPs")
    generation: int | None = Field(None, description="The pool's metadata.generation when it was accepted.")

    @field_validator("blocks")
    @classmethod
    def _no_overlap(cls, blocks: list[IPBlock]) -> list[IPBlock]:
        check_no_overlap([b.block() for b in blocks], "blocks")
        return blocks


class HeldAddress(WireModel):
    """A released address that the reuse delay holds back."""

    ip: IPAddress
    until: str = Field(
        json_schema_extra={"format": "date-time"}, description="When it may be handed out again (RFC 3339)."
    )
    service: str | None = Field(None, description="The Service (namespace/name) that released it.")


class HeldBack(WireModel):
    """Released addresses the reuse delay still holds back, so that a restarted controller or a
    new leader holds them back too. Listed: those held longest, at most 1000 per pool; beyond
    that, `omitted` counts the others and `omittedUntil` says when the last of them is free:
    a controller that starts before then hands out no new address from this pool until then."""

    addresses: list[HeldAddress] = Field(default_factory=list, max_length=MAX_HELD_LISTED)
    omitted: int = Field(0, ge=0, description="Addresses held back but not listed.")
    omitted_until: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When the last omitted one is free."
    )


class LoadBalancerIPPoolStatus(PoolStatus):
    """Status of a LoadBalancerIPPool, written by the controller."""

    blocks: str | None = Field(
        None,
        description="The blocks the pool serves from, comma-separated (CIDRs and start-stop ranges; "
        "past 1000 blocks, the first 1000 and a count), for `kubectl get lbpool`: a printer column "
        "shows only the first item of a list.",
    )
    accepted: AcceptedAddresses | None = Field(
        None,
        description="The address spec last accepted, which the pool serves from while its spec is invalid.",
    )
    held_back: HeldBack | None = Field(
        None, description="Released addresses the reuse delay holds back (kept across restarts)."
    )


class LoadBalancerIPPool(WireModel):
    """A pool of IP addresses for Services of type LoadBalancer."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["lbipam.io/v1alpha1"] = API_VERSION
    kind: Literal["LoadBalancerIPPool"] = "LoadBalancerIPPool"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LoadBalancerIPPoolSpec
    status: LoadBalancerIPPoolStatus | None = None
