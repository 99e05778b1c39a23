"""`lbipam migrate --from cilium`: Cilium's LB-IPAM and BGP objects in, lbipam's objects and
findings out.

Reads cilium.io CiliumLoadBalancerIPPools (`lbipam.migrate.cilium_pools`), the BGP control plane
v2 (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement:
`lbipam.migrate.cilium_bgp`), the older CiliumBGPPeeringPolicy (`lbipam.migrate.cilium_policy`),
and Services (`lbipam.migrate.services`). Cilium reads either v2 or v2alpha1 of each; so does
this. CiliumBGPNodeConfigOverrides are not carried (per-node router IDs, ASNs and local
addresses); CiliumBGPNodeConfigs are Cilium's own output. Pure: the caller reads the objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.migrate.checks import check_overlaps, check_services
from lbipam.migrate.cilium_bgp import translate_advertisements, translate_peers
from lbipam.migrate.cilium_policy import translate_policy
from lbipam.migrate.cilium_pools import translate_pool
from lbipam.migrate.peers import apply_renames, merge_peers
from lbipam.migrate.report import Obj, Options, Report, Source

GROUP = "cilium.io"
KINDS = (
    "CiliumLoadBalancerIPPool",
    "CiliumBGPClusterConfig",
    "CiliumBGPPeerConfig",
    "CiliumBGPAdvertisement",
    "CiliumBGPPeeringPolicy",
)
#: Per-node settings that lbipam's BGPPeer cannot hold.
OVERRIDE = "CiliumBGPNodeConfigOverride"


def _by_kind(documents: Sequence[Mapping[str, Any]], report: Report) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in (*KINDS, "Service")}
    seen: set[tuple[str, str]] = set()
    for obj in documents:
        source = Source.of(obj)
        group = str(obj.get("apiVersion") or "").partition("/")[0]
        if obj.get("apiVersion") == "v1" and source.kind == "Service":
            groups["Service"].append(obj)
        elif group != GROUP:
            report.note(source, "", "not a Cilium object: nothing to carry")
        elif source.kind == OVERRIDE:
            report.drop(source, "", "per-node router IDs, ASNs and local addresses are not supported")
        elif source.kind not in groups:
            report.note(source, "", "not an LB-IPAM or BGP object of Cilium: nothing to carry")
        elif (source.kind, source.name) in seen:
            report.drop(source, "", "given twice (another version of the same object?): the first is used")
        else:
            seen.add((source.kind, source.name))
            groups[source.kind].append(obj)
    return groups


def translate(documents: Sequence[Mapping[str, Any]], options: Options) -> Report:
    report = Report()
    groups = _by_kind(documents, report)
    for pool in groups["CiliumLoadBalancerIPPool"]:
        translate_pool(pool, report)
    ads = groups["CiliumBGPAdvertisement"]
    selections = translate_peers(
        groups["CiliumBGPClusterConfig"], groups["CiliumBGPPeerConfig"], ads, options, report
    )
    families = {o.name: list(o.obj["spec"]["families"]) for o in report.outputs if o.kind == "BGPPeer"}
    translate_advertisements(ads, selections, families, report)
    for policy in groups["CiliumBGPPeeringPolicy"]:
        translate_policy(policy, options, report)
    apply_renames(report, merge_peers(report))
    check_overlaps(report)
    check_services(groups["Service"], "cilium", report)
    return report


def recognised(documents: Sequence[Obj]) -> bool:
    """Whether the input holds anything of Cilium's."""
    return any(str(o.get("apiVersion") or "").startswith(GROUP + "/") for o in documents)
