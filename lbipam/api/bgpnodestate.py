"""The BGPNodeState custom resource: the BGP sessions of one node, as its speaker sees them.

Named after the node and written only by that node's speaker (status only, no spec); read by
`lbipam status` and by people with `kubectl get bgpnodestates`. Owns only the model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from lbipam.api.common import API_VERSION, ObjectMeta, SafeStr, WireModel

#: Session states the speaker reports: the BGP finite state machine (RFC 4271 section 8).
SESSION_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")
#: BFD session states (RFC 5880 section 4.1).
BFD_STATES = ("AdminDown", "Down", "Init", "Up")


class PeerSessionState(WireModel):
    """One BGP session of the node."""

    name: SafeStr = Field(description="Name of the BGPPeer.")
    peer_address: str = Field("", description="Address of the router.")
    state: str = Field("Idle", description="Session state: " + ", ".join(SESSION_STATES) + ".")
    since: str | None = Field(None, description="When the session entered this state (RFC 3339).")
    advertised: int = Field(0, ge=0, description="Routes announced to the peer.")
    last_error: str = Field("", description="The last error of the session, if any.")
    bfd: Literal["AdminDown", "Down", "Init", "Up"] | None = Field(
        None, description="BFD session state: " + ", ".join(BFD_STATES) + "; absent when BFD is off."
    )


class BGPNodeStateStatus(WireModel):
    """BGP sessions of the node."""

    peers: list[PeerSessionState] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class BGPNodeState(WireModel):
    """The BGP sessions of one node (named after the node), written by its speaker."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["lbipam.io/v1alpha1"] = API_VERSION
    kind: Literal["BGPNodeState"] = "BGPNodeState"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    status: BGPNodeStateStatus | None = None
