"""Cilium's older BGP API, CiliumBGPPeeringPolicy (cilium.io/v2alpha1) -> lbipam BGPPeers and
BGPAdvertisements.

Each neighbor of each virtual router becomes a BGPPeer named `<policy>-<localASN>-<address>`:
`peerAddress` (a /32 or /128), `peerASN`, the router's `localASN`, the policy's `nodeSelector`,
and the session settings (`lbipam.migrate.cilium_session`). Per virtual router:
- `serviceSelector` with `LoadBalancerIP` among `serviceAdvertisements` (the default) -> a
  BGPAdvertisement `<policy>-<localASN>-services` to its neighbors (no selector: no Service, as in
  Cilium);
- `exportPodCIDR: true` -> `<policy>-<localASN>-podcidrs`, `podCIDRs: true`;
- a neighbor's `advertisedPathAttributes` -> one more advertisement to that neighbor with the
  communities and local preference, for the pools (`CiliumLoadBalancerIPPool`, by their labels,
  which carry over) or the nodes' PodCIDRs (`PodCIDR`, by CiliumNode labels read as Node labels)
  it selects: lbipam unites the communities of every advertisement that matches a route.
Not carried: `ClusterIP`/`ExternalIP` service advertisements, `podIPPoolSelector`, and
`CiliumPodIPPool` path attributes. Called by `lbipam.migrate.cilium`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbipam.migrate import cilium_session as session
from lbipam.migrate.cilium_pools import service_selector
from lbipam.migrate.labels import NO_SERVICE
from lbipam.migrate.metallb_pools import API_VERSION
from lbipam.migrate.report import Obj, Options, Report, Source
from lbipam.migrate.shapes import as_dict, as_list, dns_name, host_prefix, spec_of


def _neighbor(
    policy: Mapping[str, Any],
    router: Mapping[str, Any],
    neighbor: Mapping[str, Any],
    where: str,
    options: Options,
    report: Report,
) -> str | None:
    source = Source.of(policy)
    try:
        peer_address = host_prefix(neighbor.get("peerAddress"))
    except ValueError as err:
        report.drop(source, f"{where}.peerAddress", f"{err}; the neighbor is not carried")
        return None
    if not neighbor.get("peerASN"):
        report.drop(source, f"{where}.peerASN", "no peer AS; the neighbor is not carried")
        return None
    out: Obj = {
        "peerAddress": peer_address,
        "peerASN": neighbor["peerASN"],
        "localASN": router.get("localASN"),
    }
    out.update(session.peer_port(neighbor.get("peerPort")))
    placed = session.Where(source, where, f"{where}.", "eBGPMultihopTTL")
    out.update(session.session_spec(neighbor, neighbor, placed, options, report))
    selector = spec_of(policy).get("nodeSelector")
    if selector:
        out["nodeSelector"] = dict(as_dict(selector))
    name = dns_name(source.name, str(router.get("localASN")), peer_address)
    ok = report.emit(
        {"apiVersion": API_VERSION, "kind": "BGPPeer", "metadata": {"name": name}, "spec": out}, source
    )
    return name if ok else None


def _advertise(name: str, spec: Obj, source: Source, report: Report) -> None:
    report.emit(
        {"apiVersion": API_VERSION, "kind": "BGPAdvertisement", "metadata": {"name": name}, "spec": spec},
        source,
    )


def _path_attributes(
    router: Mapping[str, Any],
    neighbor: Mapping[str, Any],
    peer: str,
    where: str,
    source: Source,
    report: Report,
) -> None:
    services = _services(router)
    for index, raw in enumerate(as_list(neighbor.get("advertisedPathAttributes"))):
        item = as_dict(raw)
        here = f"{where}.advertisedPathAttributes[{index}]"
        spec = session.attributes(item, source, here, report)
        kind = item.get("selectorType")
        selector = dict(as_dict(item["selector"])) if item.get("selector") is not None else None
        if kind == "CiliumLoadBalancerIPPool" and services is not None:
            spec.update(services)
            if selector:
                spec["poolSelector"] = selector
        elif kind == "PodCIDR" and router.get("exportPodCIDR") is True:
            spec.update({"podCIDRs": True, "serviceSelector": NO_SERVICE})
            if selector:
                spec["nodeSelector"] = selector
                report.note(source, f"{here}.selector", "CiliumNode labels are read as the Nodes' labels")
        elif kind in ("CiliumLoadBalancerIPPool", "PodCIDR"):
            continue  # the routes it would decorate are not announced
        else:
            report.drop(source, here, f"selectorType {kind} is not supported")
            continue
        spec["peers"] = [peer]
        _advertise(dns_name(peer, "attributes", str(index)), spec, source, report)


def _services(router: Mapping[str, Any]) -> Obj | None:
    """The Service part of the router's announcements, None when it announces no Service IP."""
    kinds = as_list(router.get("serviceAdvertisements")) or ["LoadBalancerIP"]
    if router.get("serviceSelector") is None or "LoadBalancerIP" not in kinds:
        return None
    selector = service_selector(as_dict(router["serviceSelector"]))
    return {"serviceSelector": selector} if selector else {}


def translate_policy(policy: Mapping[str, Any], options: Options, report: Report) -> None:
    source = Source.of(policy)
    for i, raw in enumerate(as_list(spec_of(policy).get("virtualRouters"))):
        router = as_dict(raw)
        where = f"spec.virtualRouters[{i}]"
        peers = []
        for j, neighbor in enumerate(as_list(router.get("neighbors"))):
            peer = _neighbor(policy, router, as_dict(neighbor), f"{where}.neighbors[{j}]", options, report)
            if peer is not None:
                peers.append(peer)
                _path_attributes(router, as_dict(neighbor), peer, f"{where}.neighbors[{j}]", source, report)
        for other in sorted(
            {str(k) for k in as_list(router.get("serviceAdvertisements"))} - {"LoadBalancerIP"}
        ):
            report.drop(
                source, f"{where}.serviceAdvertisements", f"{other}: lbipam announces LoadBalancer IPs only"
            )
        if router.get("podIPPoolSelector") is not None:
            report.drop(source, f"{where}.podIPPoolSelector", "CiliumPodIPPool CIDRs are not announced")
        if not peers:
            continue
        prefix = dns_name(source.name, str(router.get("localASN")))
        services = _services(router)
        if services is not None:
            _advertise(f"{prefix}-services", {**services, "peers": sorted(peers)}, source, report)
        elif router.get("serviceSelector") is None:
            report.note(
                source, f"{where}.serviceSelector", "absent: Cilium announces no Service, nor does lbipam"
            )
        if router.get("exportPodCIDR") is True:
            spec = {"podCIDRs": True, "serviceSelector": NO_SERVICE, "peers": sorted(peers)}
            _advertise(f"{prefix}-podcidrs", spec, source, report)
