"""`lbipam migrate --from metallb`: MetalLB's objects in, lbipam's objects and findings out.

Reads metallb.io IPAddressPools, BGPPeers (v1beta2 or v1beta1), BGPAdvertisements, BFDProfiles,
Communities and L2Advertisements, the legacy ConfigMap (`lbipam.migrate.metallb_legacy`), and
Services (checked by `lbipam.migrate.services`). MetalLB's objects are namespaced and lbipam's are
not: names carry as they are, and a second object of one kind and name (in another namespace) is
not carried. L2Advertisements are not carried: lbipam announces over BGP only. Pure: the caller
reads the files or the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.migrate import metallb_legacy
from lbipam.migrate.checks import check_overlaps, check_services
from lbipam.migrate.metallb_ads import translate_advertisement
from lbipam.migrate.metallb_bgp import community_aliases, profiles_by_name, translate_peer
from lbipam.migrate.metallb_pools import translate_pools
from lbipam.migrate.peers import merge_peers
from lbipam.migrate.report import Obj, Options, Report, Source

GROUP = "metallb.io"
KINDS = ("IPAddressPool", "BGPPeer", "BGPAdvertisement", "BFDProfile", "Community", "L2Advertisement")
#: What MetalLB writes about itself: nothing to carry.
STATUS_KINDS = ("ServiceL2Status", "ServiceBGPStatus", "ConfigurationState")


def _expand_legacy(documents: Sequence[Mapping[str, Any]], report: Report) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for obj in documents:
        if not metallb_legacy.is_legacy(obj):
            out.append(obj)
            continue
        source = Source.of(obj)
        try:
            converted, renames = metallb_legacy.resources(obj)
        except ValueError as err:
            report.drop(source, "data.config", str(err))
            continue
        names = ", ".join(str(Source.of(c)) for c in converted)
        report.note(source, "data.config", f"MetalLB's legacy configuration, read as {names}")
        for rename in renames:
            report.note(source, "data.config", rename)
        out.extend(converted)
    return out


def _by_kind(documents: Sequence[Mapping[str, Any]], report: Report) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in (*KINDS, "Service")}
    seen: dict[tuple[str, str], Source] = {}
    for obj in documents:
        source = Source.of(obj)
        group = str(obj.get("apiVersion") or "").partition("/")[0]
        if obj.get("apiVersion") == "v1" and source.kind == "Service":
            groups["Service"].append(obj)
        elif group != GROUP or source.kind in STATUS_KINDS:
            reason = "MetalLB's own status" if source.kind in STATUS_KINDS else "not a MetalLB object"
            report.note(source, "", f"{reason}: nothing to carry")
        elif source.kind not in groups:
            report.drop(source, "", f"lbipam has no equivalent of a MetalLB {source.kind}")
        elif (source.kind, source.name) in seen:
            first = seen[(source.kind, source.name)]
            report.drop(
                source, "metadata.name", f"{first} has the same name, and lbipam's objects have no namespace"
            )
        else:
            seen[(source.kind, source.name)] = source
            groups[source.kind].append(obj)
    return groups


def translate(documents: Sequence[Mapping[str, Any]], options: Options) -> Report:
    report = Report()
    groups = _by_kind(_expand_legacy(documents, report), report)
    translate_pools(groups["IPAddressPool"], report)
    profiles = profiles_by_name(list(groups["BFDProfile"]))
    for peer in groups["BGPPeer"]:
        translate_peer(peer, profiles, options, report)
    renames = merge_peers(report)
    aliases = community_aliases(list(groups["Community"]), report)
    for ad in groups["BGPAdvertisement"]:
        translate_advertisement(ad, aliases, report.names("BGPPeer"), renames, report)
    for l2 in groups["L2Advertisement"]:
        report.drop(
            Source.of(l2),
            "",
            "lbipam announces Service IPs over BGP only (no ARP/NDP): the pools it advertised need a "
            "BGPAdvertisement and a router",
        )
    check_overlaps(report)
    check_services(groups["Service"], "metallb", report)
    return report


def recognised(documents: Sequence[Obj]) -> bool:
    """Whether the input holds anything of MetalLB's."""
    return any(
        str(o.get("apiVersion") or "").startswith(GROUP + "/") or metallb_legacy.is_legacy(o)
        for o in documents
    )
