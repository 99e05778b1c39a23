"""pydantic v2 models of lbipam's custom resources (group lbipam.io, version v1alpha1).

The single source of truth of the CRDs (`crdgen` renders `crds/*.yaml` from them). Import the
kinds from here; `parse_resource` picks the model by `kind`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbipam.api.bgpadvertisement import BGPAdvertisement, BGPAdvertisementSpec
from lbipam.api.bgpnodestate import BGPNodeState, BGPNodeStateStatus, PeerSessionState
from lbipam.api.bgppeer import BGPPeer, BGPPeerSpec, GracefulRestart, SecretKeyRef
from lbipam.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Condition,
    LabelSelector,
    ObjectMeta,
    ResourceStatus,
    WireModel,
    compiled,
    describe_errors,
)
from lbipam.api.lbpool import (
    AcceptedAddresses,
    FamilyCounts,
    IPBlock,
    LoadBalancerIPPool,
    LoadBalancerIPPoolSpec,
    PoolStatus,
)
from lbipam.api.podcidrpool import PodCIDRFamily, PodCIDRPool, PodCIDRPoolSpec

Resource = LoadBalancerIPPool | PodCIDRPool | BGPPeer | BGPAdvertisement | BGPNodeState

#: The model of each kind.
MODELS: dict[str, type[Resource]] = {
    model.__name__: model
    for model in (LoadBalancerIPPool, PodCIDRPool, BGPPeer, BGPAdvertisement, BGPNodeState)
}


def parse_resource(obj: Mapping[str, Any]) -> Resource:
    """Validate an lbipam object (a dict from the API or a manifest) with the model of its kind.

    Raises KeyError for a kind that is not lbipam's, pydantic.ValidationError for an invalid one.
    """
    kind = obj.get("kind")
    if obj.get("apiVersion") != API_VERSION or kind not in MODELS:
        raise KeyError(f"not an {API_VERSION} object: apiVersion {obj.get('apiVersion')!r} kind {kind!r}")
    return MODELS[kind].model_validate(obj)


__all__ = [
    "API_VERSION",
    "GROUP",
    "MODELS",
    "VERSION",
    "AcceptedAddresses",
    "BGPAdvertisement",
    "BGPAdvertisementSpec",
    "BGPNodeState",
    "BGPNodeStateStatus",
    "BGPPeer",
    "BGPPeerSpec",
    "Condition",
    "FamilyCounts",
    "GracefulRestart",
    "IPBlock",
    "LabelSelector",
    "LoadBalancerIPPool",
    "LoadBalancerIPPoolSpec",
    "ObjectMeta",
    "PeerSessionState",
    "PodCIDRFamily",
    "PodCIDRPool",
    "PodCIDRPoolSpec",
    "PoolStatus",
    "Resource",
    "ResourceStatus",
    "SecretKeyRef",
    "WireModel",
    "compiled",
    "describe_errors",
    "parse_resource",
]
