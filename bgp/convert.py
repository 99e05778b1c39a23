"""API objects (plain dicts) -> the speaker's frozen views (`bgp.views`): the only place where
the speaker reads Kubernetes object fields.

BGPPeer -> PeerView (the TCP-MD5 password resolved from its Secret, the router ID defaulted from
the node), BGPAdvertisement -> AdvertisementView, Service + its EndpointSlices -> AnnouncedService,
LoadBalancerIPPool and PodCIDRPool -> PoolInfo, Node -> NodeInfo. What cannot be used becomes a
`Problem` (an Event reason and a message naming the field); the view then carries the messages in
`problems`, and the planner leaves it out. The Secret checks are `lbipam.core.bgpcheck`'s, which
the controller judges the same peers with (their Ready condition). Called by `bgp.speaker`; pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from bgp.views import AdvertisementView, AnnouncedService, BfdView, NodeInfo, PeerView, PoolInfo
from lbipam.api import (
    AcceptedAddresses,
    BGPAdvertisement,
    BGPPeer,
    LoadBalancerIPPool,
    compiled,
    describe_errors,
)
from lbipam.api.podcidrpool import AcceptedFamilies, PodCIDRPoolSpec
from lbipam.core.addresses import AddressError, Block, parse_address, parse_cidr
from lbipam.core.bgpcheck import SecretRead, check_password, secret_ref
from lbipam.core.lbviews import LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE, LB_CLASS

Obj = Mapping[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # EndpointSlice -> its Service


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one object, as the speaker reports it (Event, BGPNodeState)."""

    kind: str  # "BGPPeer", "BGPAdvertisement"
    name: str
    reason: str  # the Event reason, e.g. "SecretNotFound"
    message: str  # names the field at fault


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _labels(obj: Obj) -> dict[str, str]:
    return {str(k): str(v) for k, v in (_meta(obj).get("labels") or {}).items()}


def _canonical_address(text: object) -> str | None:
    try:
        return str(parse_address(str(text)))
    except AddressError:
        return None


# ---- Node ---------------------------------------------------------------------------------------
def node_info(obj: Obj) -> NodeInfo:
    """Labels, spec.podCIDRs (else spec.podCIDR), the first InternalIP of each family, whether
    it is cordoned (spec.unschedulable) or being deleted."""
    spec = obj.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    pod_cidrs = []
    for text in cidrs:
        try:
            pod_cidrs.append(str(parse_cidr(str(text)).cidr))
        except AddressError:
            continue  # the API server validates podCIDRs; a bad one is never announced
    found: dict[int, str] = {}
    for address in (obj.get("status") or {}).get("addresses") or []:
        if address.get("type") != "InternalIP":
            continue
        text = _canonical_address(address.get("address"))
        if text is not None:
            found.setdefault(parse_address(text).version, text)
    return NodeInfo(
        name=_name(obj),
        labels=_labels(obj),
        pod_cidrs=tuple(pod_cidrs),
        ipv4=found.get(4),
        ipv6=found.get(6),
        unschedulable=spec.get("unschedulable") is True,
        deleting=bool(_meta(obj).get("deletionTimestamp")),
    )


# ---- BGPPeer ------------------------------------------------------------------------------------
def _router_id(spec: Any, node: NodeInfo) -> str | None:
    if spec.router_id:
        return str(parse_address(spec.router_id))
    if node.ipv4:
        return node.ipv4
    if spec.source_address and parse_address(spec.source_address).version == 4:
        return str(parse_address(spec.source_address))
    return None


def peer_view(
    obj: Obj, node: NodeInfo, secrets: Mapping[tuple[str, str], SecretRead]
) -> tuple[PeerView, list[Problem]]:
    """The session as this node's speaker opens it, and what keeps it from opening."""
    name = _name(obj)
    try:
        spec = BGPPeer.model_validate({**obj, "status": None}).spec
    except pydantic.ValidationError as err:
        problems = [Problem("BGPPeer", name, "InvalidSpec", m) for m in describe_errors(err)]
        return _broken_peer(obj, problems), problems
    problems = []
    password = None
    if spec.password_secret_ref is not None:
        ref = secret_ref(obj)
        assert ref is not None  # the model validated it
        password, problem = check_password(ref, secrets.get(ref.where))
        if problem is not None:
            problems.append(Problem("BGPPeer", name, *problem))
    router_id = _router_id(spec, node)
    if router_id is None:
        problems.append(
            Problem(
                "BGPPeer",
                name,
                "NoRouterID",
                f"spec.routerID: not set, and node {node.name} has no IPv4 InternalIP "
                "(nor is spec.sourceAddress IPv4) to default it from",
            )
        )
    view = PeerView(
        name=name,
        address=str(parse_address(spec.peer_address)),
        asn=spec.peer_asn,
        local_asn=spec.local_asn,
        port=spec.peer_port,
        source=str(parse_address(spec.source_address)) if spec.source_address else None,
        router_id=router_id,
        hold_time=spec.hold_time,
        multihop=spec.ebgp_multihop,
        password=password,
        graceful_restart=spec.graceful_restart.enabled,
        restart_time=spec.graceful_restart.restart_time,
        families=tuple(spec.families),
        node_selector=compiled(spec.node_selector),
        problems=tuple(p.message for p in problems),
        bfd=BfdView(spec.bfd.min_rx_ms, spec.bfd.min_tx_ms, spec.bfd.multiplier)
        if spec.bfd.enabled
        else None,
    )
    return view, problems


def _broken_peer(obj: Obj, problems: list[Problem]) -> PeerView:
    """A peer whose spec does not validate: never opened, but still listed (BGPNodeState)."""
    spec = obj.get("spec") or {}
    return PeerView(
        name=_name(obj),
        address=str(spec.get("peerAddress") or ""),
        asn=0,
        local_asn=0,
        problems=tuple(p.message for p in problems),
    )


# ---- BGPAdvertisement ---------------------------------------------------------------------------
def advertisement_view(obj: Obj) -> tuple[AdvertisementView, list[Problem]]:
    name = _name(obj)
    try:
        spec = BGPAdvertisement.model_validate({**obj, "status": None}).spec
    except pydantic.ValidationError as err:
        problems = [Problem("BGPAdvertisement", name, "InvalidSpec", m) for m in describe_errors(err)]
        return AdvertisementView(name=name, problems=tuple(p.message for p in problems)), problems
    view = AdvertisementView(
        name=name,
        pool_selector=compiled(spec.pool_selector),
        service_selector=compiled(spec.service_selector),
        node_selector=compiled(spec.node_selector),
        peers=tuple(spec.peers),
        communities=tuple(spec.communities),
        large_communities=tuple(spec.large_communities),
        local_pref=spec.local_preference,
        med=spec.med,
        aggregation_v4=spec.aggregation_length,
        aggregation_v6=spec.aggregation_length_v6,
        pod_cidrs=spec.pod_cidrs,
    )
    return view, []


# ---- Services and EndpointSlices ----------------------------------------------------------------
def handled(obj: Obj, default_class: bool = True) -> bool:
    """The Services lbipam serves, by the controller's rule: type LoadBalancer, and no
    loadBalancerClass (unless `default_class` is off) or lbipam's own class."""
    spec = obj.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    return lb_class == LB_CLASS or (lb_class is None and default_class)


def slice_service(obj: Obj) -> tuple[str, str] | None:
    """(namespace, name) of the Service an EndpointSlice belongs to."""
    service = _labels(obj).get(SERVICE_NAME_LABEL)
    namespace = _meta(obj).get("namespace")
    return (str(namespace), service) if service and namespace else None


def _ready_nodes(slices: Iterable[Obj]) -> tuple[bool, frozenset[str]]:
    anywhere = False
    nodes: set[str] = set()
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is False:  # absent (null) counts as ready, as in Kubernetes
                continue
            anywhere = True
            if endpoint.get("nodeName"):
                nodes.add(str(endpoint["nodeName"]))
    return anywhere, frozenset(nodes)


def announced_service(obj: Obj, slices: Iterable[Obj], default_class: bool = True) -> AnnouncedService | None:
    """The Service as the planner sees it; None when lbipam does not serve it or it has no IP."""
    if not handled(obj, default_class):
        return None
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = sorted({ip for i in ingress if (ip := _canonical_address(i.get("ip"))) is not None})
    if not ips:
        return None
    meta = _meta(obj)
    namespace, name = str(meta.get("namespace") or ""), _name(obj)
    anywhere, nodes = _ready_nodes(slices)
    return AnnouncedService(
        key=f"{namespace}/{name}",
        labels={**_labels(obj), LABEL_SERVICE_NAME: name, LABEL_SERVICE_NAMESPACE: namespace},
        ips=tuple(ips),
        local=(obj.get("spec") or {}).get("externalTrafficPolicy") == "Local",
        ready_anywhere=anywhere,
        ready_nodes=nodes,
    )


# ---- LoadBalancerIPPools ------------------------------------------------------------------------
def _valid_pool(obj: Obj) -> PoolInfo | None:
    try:
        pool = LoadBalancerIPPool.model_validate({**obj, "status": None})
    except pydantic.ValidationError:
        return None  # the controller reports it (Ready=False)
    return PoolInfo(name=_name(obj), labels=_labels(obj), blocks=tuple(b.block() for b in pool.spec.blocks))


def _recorded_pool(obj: Obj) -> PoolInfo | None:
    """The blocks the controller serves an invalid spec from (`status.accepted`), if recorded."""
    try:
        accepted = AcceptedAddresses.model_validate((obj.get("status") or {}).get("accepted"))
    except pydantic.ValidationError:
        return None
    return PoolInfo(name=_name(obj), labels=_labels(obj), blocks=tuple(b.block() for b in accepted.blocks))


def pool_infos(
    objs: Iterable[Obj], previous: Mapping[str, PoolInfo]
) -> tuple[dict[str, PoolInfo], list[PoolInfo]]:
    """(accepted, serving) by the controller's rules. Accepted: every pool's spec to serve from;
    a spec that does not validate keeps the blocks the controller recorded in `status.accepted`
    (so a speaker started meanwhile withdraws nothing), else those accepted before (`previous`).
    Serving: of two overlapping pools the newer (creationTimestamp, then name) serves nothing,
    as its Conflict condition says."""
    ordered = sorted(objs, key=lambda o: (str(_meta(o).get("creationTimestamp") or ""), _name(o)))
    accepted: dict[str, PoolInfo] = {}
    serving: list[PoolInfo] = []
    taken: list[Block] = []
    for obj in ordered:
        info = _valid_pool(obj) or _recorded_pool(obj) or previous.get(_name(obj))
        if info is None:
            continue
        info = PoolInfo(name=info.name, labels=_labels(obj), blocks=info.blocks)  # labels: latest
        accepted[info.name] = info
        if any(ours.overlaps(theirs) for ours in info.blocks for theirs in taken):
            continue
        taken.extend(info.blocks)
        serving.append(info)
    return accepted, serving


# ---- PodCIDRPools ---------------------------------------------------------------------------------
def pod_pool_infos(objs: Iterable[Obj]) -> list[PoolInfo]:
    """The blocks of every PodCIDRPool: its spec's CIDRs when the spec is valid, and the families
    the controller last accepted (status.accepted), which it still serves from while a new spec
    is refused. A node's PodCIDR is announced only inside one of them."""
    infos = []
    for obj in objs:
        blocks: list[Block] = []
        try:
            spec = PodCIDRPoolSpec.model_validate(obj.get("spec") or {})
            blocks += [b for v in (4, 6) for b in spec.blocks_by_family()[v]]
        except pydantic.ValidationError:
            pass  # the controller reports it
        try:
            accepted = AcceptedFamilies.model_validate((obj.get("status") or {}).get("accepted") or {})
            blocks += [b for f in (accepted.ipv4, accepted.ipv6) if f is not None for b in f.blocks()]
        except pydantic.ValidationError:
            pass
        if blocks:
            infos.append(PoolInfo(name=_name(obj), blocks=tuple(blocks)))
    return infos
