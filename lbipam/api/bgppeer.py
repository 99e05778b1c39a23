"""The BGPPeer custom resource: one BGP session a node's speaker opens.

Owns the model of the session parameters and their checks (addresses, ASNs, timers, families,
the TCP-MD5 secret reference, BFD). Every string here may end up in ExaBGP's configuration, so each
is a `SafeStr` or narrower. Used by the speaker and `crdgen`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from lbipam.api.common import (
    API_VERSION,
    DNSLabel,
    DNSSubdomain,
    IPAddress,
    IPv4Address,
    LabelSelector,
    ObjectMeta,
    ResourceStatus,
    SafeStr,
    SchemaExtra,
    SpecModel,
    WireModel,
    anchored,
    field_error,
    quote,
)
from lbipam.core.addresses import parse_address

ASN = Annotated[int, Field(ge=1, le=4294967295)]
Family = Literal["ipv4-unicast", "ipv6-unicast"]
FAMILIES: list[Family] = ["ipv4-unicast", "ipv6-unicast"]
_SECRET_KEY = r"[-._a-zA-Z0-9]+"


def _check_secret_key(value: str) -> str:
    if len(value) > 253 or not re.fullmatch(_SECRET_KEY, value):
        raise ValueError(f"{quote(value)} is not a Secret key (alphanumerics, '-', '_' or '.')")
    return value


SecretKey = Annotated[
    SafeStr,
    AfterValidator(_check_secret_key),
    SchemaExtra({"pattern": anchored(_SECRET_KEY), "maxLength": 253}),
]


class SecretKeyRef(SpecModel):
    """Where the TCP MD5 password of the session is: a key of a Secret."""

    namespace: DNSLabel
    name: DNSSubdomain
    key: SecretKey = Field("password", description="Key in the Secret's data.")


class GracefulRestart(SpecModel):
    """BGP graceful restart (RFC 4724)."""

    enabled: bool = False
    restart_time: int = Field(120, ge=1, le=4095, description="Seconds (RFC 4724: 12 bits).")


class BFD(SpecModel):
    """Bidirectional Forwarding Detection on the session (RFC 5880, asynchronous mode)."""

    enabled: bool = Field(False, description="Run BFD with the router; BFD Down tears the BGP session down.")
    min_rx_ms: int = Field(
        300,
        ge=10,
        le=60000,
        description="Required Min RX Interval: the fastest we want the router to send, ms.",
    )
    min_tx_ms: int = Field(
        300, ge=10, le=60000, description="Desired Min TX Interval: how often we would like to send, ms."
    )
    multiplier: int = Field(
        3, ge=1, le=255, description="Detect multiplier: packets missed before the router declares us down."
    )


class BGPPeerSpec(SpecModel):
    """A BGP session: whom to peer with, as whom, and which speakers open it."""

    peer_address: IPAddress = Field(description="Address of the router (IPv4 or IPv6).")
    peer_asn: ASN = Field(alias="peerASN", description="The router's AS number.")
    local_asn: ASN = Field(alias="localASN", description="lbipam's AS number on this session.")
    peer_port: int = Field(179, ge=1, le=65535, description="TCP port of the router.")
    source_address: IPAddress | None = Field(
        None, description="Local address of the session (same family as peerAddress)."
    )
    router_id: IPv4Address | None = Field(
        None, alias="routerID", description="BGP identifier (default: the node's InternalIP)."
    )
    hold_time: int = Field(
        90,
        ge=0,
        le=65535,
        json_schema_extra={"not": {"enum": [1, 2]}},
        description="Hold time in seconds: 0 (no keepalives) or 3..65535.",
    )
    ebgp_multihop: int | None = Field(None, ge=1, le=255, description="TTL for eBGP multihop.")
    password_secret_ref: SecretKeyRef | None = Field(None, description="TCP MD5 password of the session.")
    graceful_restart: GracefulRestart = Field(
        default_factory=GracefulRestart, json_schema_extra={"default": {}}
    )
    bfd: BFD = Field(
        default_factory=BFD,
        json_schema_extra={"default": {}},
        description="BFD: single hop (RFC 5881, UDP 3784, TTL 255), or multihop (RFC 5883, UDP 4784) "
        "when ebgpMultihop is set.",
    )
    families: list[Family] = Field(
        default_factory=lambda: list(FAMILIES),
        min_length=1,
        json_schema_extra={"default": list(FAMILIES), "x-kubernetes-list-type": "set"},
        description="Address families negotiated on the session.",
    )
    node_selector: LabelSelector | None = Field(
        None, description="Nodes whose speakers open this session (absent: all)."
    )

    @field_validator("hold_time")
    @classmethod
    def _hold_time(cls, value: int) -> int:
        if value in (1, 2):
            raise ValueError(f"holdTime {value} is not allowed: use 0 (no keepalives) or 3..65535")
        return value

    @field_validator("families")
    @classmethod
    def _no_duplicates(cls, families: list[Family]) -> list[Family]:
        for index, family in enumerate(families):
            if family in families[:index]:
                raise field_error(f"{quote(family)} is listed twice", family, index)
        return families

    @model_validator(mode="after")
    def _source_family(self) -> BGPPeerSpec:
        if self.source_address is None:
            return self
        local, remote = parse_address(self.source_address), parse_address(self.peer_address)
        if local.version != remote.version:
            raise field_error(
                f"{quote(self.source_address)} is IPv{local.version} but peerAddress "
                f"{quote(self.peer_address)} is IPv{remote.version}",
                self.source_address,
                "sourceAddress",
            )
        return self


class BGPPeer(WireModel):
    """A BGP router the speakers peer with."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["lbipam.io/v1alpha1"] = API_VERSION
    kind: Literal["BGPPeer"] = "BGPPeer"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: BGPPeerSpec
    status: ResourceStatus | None = None
