"""The BGPAdvertisement custom resource: what is announced, to whom, with which attributes.

Owns the model and the syntax of BGP communities. Communities and large communities are written
into ExaBGP commands verbatim, so they are checked strictly: exact decimal ranges, only the
well-known names ExaBGP 5 itself understands, and no control characters. Used by the speaker's
route planner and `crdgen`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from lbipam.api.common import (
    API_VERSION,
    DNSSubdomain,
    LabelSelector,
    ObjectMeta,
    ResourceStatus,
    SafeStr,
    SchemaExtra,
    SpecModel,
    UInt32,
    WireModel,
    anchored,
    quote,
)


def decimal_upto(limit: int) -> str:
    """A regex matching the decimals 0..limit without leading zeros (valid in RE2 and ECMA)."""
    digits = str(limit)
    width = len(digits)
    alternatives = ["[0-9]"] if width > 1 else []
    if width > 2:
        alternatives.append(f"[1-9][0-9]{{1,{width - 2}}}")
    for index, digit in enumerate(digits):
        low = 1 if index == 0 and width > 1 else 0
        if int(digit) > low:
            high = int(digit) - 1
            rest = width - index - 1
            span = str(low) if low == high else f"[{low}-{high}]"
            tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" * rest
            alternatives.append(digits[:index] + span + tail)
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


#: Well-known community names accepted, exactly those ExaBGP 5's parser knows
#: (exabgp/configuration/static/parser.py). Other well-known communities are written as numbers.
WELL_KNOWN_COMMUNITIES = ("no-export", "no-advertise", "no-export-subconfed", "nopeer", "blackhole")
#: Well-known communities without an accepted name, and how to write them instead.
NUMERIC_SPELLING = {
    "graceful-shutdown": "65535:0",
    "accept-own": "65535:1",
    "llgr-stale": "65535:6",
    "no-llgr": "65535:7",
    "no-peer": "nopeer",
}

_U16 = decimal_upto(65535)
_U32 = decimal_upto(4294967295)
COMMUNITY = f"{_U16}:{_U16}|" + "|".join(WELL_KNOWN_COMMUNITIES)
LARGE_COMMUNITY = f"{_U32}:{_U32}:{_U32}"


def check_community(value: str) -> str:
    """A standard community: "ASN16:VALUE16" (each 0..65535) or a well-known name."""
    if re.fullmatch(COMMUNITY, value):
        return value
    if value in NUMERIC_SPELLING:
        spelling = NUMERIC_SPELLING[value]
        raise ValueError(f"{quote(value)} is not a name ExaBGP 5 accepts; write {spelling!r} instead")
    raise ValueError(
        f"{quote(value)} is not a community: expected ASN:VALUE (each 0..65535, no leading zeros) "
        f"or one of {', '.join(WELL_KNOWN_COMMUNITIES)}"
    )


def check_large_community(value: str) -> str:
    """A large community (RFC 8092): "A:B:C", each 0..4294967295."""
    if not re.fullmatch(LARGE_COMMUNITY, value):
        raise ValueError(
            f"{quote(value)} is not a large community: expected A:B:C, each 0..4294967295 "
            "with no leading zeros"
        )
    return value


Community = Annotated[SafeStr, AfterValidator(check_community), SchemaExtra({"pattern": anchored(COMMUNITY)})]
LargeCommunity = Annotated[
    SafeStr, AfterValidator(check_large_community), SchemaExtra({"pattern": anchored(LARGE_COMMUNITY)})
]


class BGPAdvertisementSpec(SpecModel):
    """Which routes are announced to which peers from which nodes, and their attributes."""

    pool_selector: LabelSelector | None = Field(
        None, description="LoadBalancerIPPools whose IPs are announced (absent: every pool)."
    )
    service_selector: LabelSelector | None = Field(
        None, description="Services whose IPs are announced (absent: every Service)."
    )
    node_selector: LabelSelector | None = Field(None, description="Nodes that announce (absent: all).")
    peers: list[DNSSubdomain] = Field(
        default_factory=list, description="BGPPeer names to announce to (empty: every peer)."
    )
    communities: list[Community] = Field(
        default_factory=list,
        description="Standard communities: ASN:VALUE or " + ", ".join(WELL_KNOWN_COMMUNITIES) + ".",
    )
    large_communities: list[LargeCommunity] = Field(
        default_factory=list, description="Large communities A:B:C (RFC 8092)."
    )
    local_preference: UInt32 | None = Field(None, description="LOCAL_PREF (iBGP only).")
    med: UInt32 | None = Field(None, description="MULTI_EXIT_DISC.")
    aggregation_length: int = Field(
        32, ge=0, le=32, description="Prefix length announced for IPv4 Service IPs."
    )
    aggregation_length_v6: int = Field(
        128,
        ge=0,
        le=128,
        alias="aggregationLengthV6",
        description="Prefix length announced for IPv6 Service IPs.",
    )
    pod_cidrs: bool = Field(
        False, alias="podCIDRs", description="Also announce the announcing node's PodCIDRs."
    )


class BGPAdvertisement(WireModel):
    """Announcement of Service IPs (and optionally PodCIDRs) over BGP."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["lbipam.io/v1alpha1"] = API_VERSION
    kind: Literal["BGPAdvertisement"] = "BGPAdvertisement"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: BGPAdvertisementSpec = Field(default_factory=BGPAdvertisementSpec)
    status: ResourceStatus | None = None
