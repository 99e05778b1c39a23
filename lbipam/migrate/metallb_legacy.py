"""MetalLB's legacy configuration (a ConfigMap, before v0.13) -> the MetalLB custom resources it
stands for, which `lbipam.migrate.metallb` then translates like any others.

The ConfigMap's `data.config` holds `peers`, `address-pools` (each with its `protocol` and
`bgp-advertisements`), `bgp-communities` and `bfd-profiles`. The conversion is the one MetalLB's
own `configmaptocrs` makes: a `bgp` pool without advertisements gets an empty one (every IP as a
/32, no attributes); a `layer2` pool gets an L2Advertisement (reported as not carried). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from lbipam.migrate.shapes import as_dict, as_list, dns_name, is_dns_name, load_yaml

Obj = dict[str, Any]
_PEER_FIELDS = {
    "my-asn": "myASN",
    "peer-asn": "peerASN",
    "peer-address": "peerAddress",
    "source-address": "sourceAddress",
    "peer-port": "peerPort",
    "hold-time": "holdTime",
    "keepalive-time": "keepaliveTime",
    "router-id": "routerID",
    "password": "password",
    "bfd-profile": "bfdProfile",
    "ebgp-multihop": "ebgpMultiHop",
}
_BFD_FIELDS = {
    "receive-interval": "receiveInterval",
    "transmit-interval": "transmitInterval",
    "detect-multiplier": "detectMultiplier",
    "echo-interval": "echoInterval",
    "echo-mode": "echoMode",
    "passive-mode": "passiveMode",
    "minimum-ttl": "minimumTtl",
}
_AD_FIELDS = {
    "aggregation-length": "aggregationLength",
    "aggregation-length-v6": "aggregationLengthV6",
    "localpref": "localPref",
    "communities": "communities",
}


def is_legacy(obj: Mapping[str, Any]) -> bool:
    """A v1 ConfigMap that holds MetalLB's `config` key."""
    return (
        obj.get("apiVersion") == "v1"
        and obj.get("kind") == "ConfigMap"
        and "config" in as_dict(obj.get("data"))
    )


def _cr(kind: str, version: str, name: str, namespace: str, spec: Obj) -> Obj:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": meta, "spec": spec}


def _renamed(item: Mapping[str, Any], fields: Mapping[str, str]) -> Obj:
    return {ours: item[theirs] for theirs, ours in fields.items() if theirs in item}


def _selector(item: Mapping[str, Any]) -> Obj:
    out: Obj = {}
    if item.get("match-labels"):
        out["matchLabels"] = dict(as_dict(item["match-labels"]))
    if item.get("match-expressions"):
        out["matchExpressions"] = [dict(as_dict(e)) for e in as_list(item["match-expressions"])]
    return out


def _pool_objects(pool: Mapping[str, Any], index: int, namespace: str, renames: list[str]) -> list[Obj]:
    name = _name(str(pool.get("name") or f"pool{index + 1}"), "address pool", renames)
    spec: Obj = {"addresses": list(as_list(pool.get("addresses")))}
    if pool.get("auto-assign") is not None:
        spec["autoAssign"] = pool["auto-assign"]
    if pool.get("avoid-buggy-ips") is not None:
        spec["avoidBuggyIPs"] = pool["avoid-buggy-ips"]
    out = [_cr("IPAddressPool", "v1beta1", name, namespace, spec)]
    protocol = pool.get("protocol")
    ads = [as_dict(a) for a in as_list(pool.get("bgp-advertisements"))]
    if protocol == "bgp" and not ads:
        ads = [{}]
    for number, ad in enumerate(ads, start=1):
        ad_spec = {**_renamed(ad, _AD_FIELDS), "ipAddressPools": [name]}
        out.append(_cr("BGPAdvertisement", "v1beta1", f"{name}-bgp{number}", namespace, ad_spec))
    if protocol != "bgp":  # layer2 (or l2): MetalLB announces it with ARP/NDP
        out.append(_cr("L2Advertisement", "v1beta1", f"{name}-l2", namespace, {"ipAddressPools": [name]}))
    return out


def _name(name: str, what: str, renames: list[str]) -> str:
    """`name` as an object name (lower case, '_' as '-'), the change recorded in `renames`."""
    if is_dns_name(name):
        return name
    new = dns_name(name)
    follow = (
        ": Services that name it in an address-pool annotation must follow" if what == "address pool" else ""
    )
    renames.append(f"{what} {name} is named {new}{follow}")
    return new


def resources(configmap: Mapping[str, Any]) -> tuple[list[Obj], list[str]]:
    """The MetalLB custom resources of a legacy ConfigMap, and the names that had to change
    (names that are no object names); ValueError when `config` is not YAML."""
    namespace = str(as_dict(configmap.get("metadata")).get("namespace") or "metallb-system")
    try:
        loaded = load_yaml(str(as_dict(configmap.get("data"))["config"]))
    except yaml.YAMLError as err:
        raise ValueError(f"data.config is not YAML: {err}") from None
    config = as_dict(loaded[0] if loaded else None)
    out: list[Obj] = []
    renames: list[str] = []
    for index, raw in enumerate(as_list(config.get("peers")), start=1):
        peer = as_dict(raw)
        spec = _renamed(peer, _PEER_FIELDS)
        if spec.get("bfdProfile") and not is_dns_name(str(spec["bfdProfile"])):
            spec["bfdProfile"] = dns_name(str(spec["bfdProfile"]))  # as its BFDProfile is named below
        selectors = [_selector(as_dict(s)) for s in as_list(peer.get("node-selectors"))]
        if selectors:
            spec["nodeSelectors"] = selectors
        out.append(_cr("BGPPeer", "v1beta2", f"peer{index}", namespace, spec))
    for index, pool in enumerate(as_list(config.get("address-pools"))):
        out.extend(_pool_objects(as_dict(pool), index, namespace, renames))
    aliases = [
        {"name": str(k), "value": str(v)} for k, v in sorted(as_dict(config.get("bgp-communities")).items())
    ]
    if aliases:
        out.append(_cr("Community", "v1beta1", "communities", namespace, {"communities": aliases}))
    for raw in as_list(config.get("bfd-profiles")):
        profile = as_dict(raw)
        name = _name(str(profile.get("name") or ""), "BFD profile", renames)
        out.append(_cr("BFDProfile", "v1beta1", name, namespace, _renamed(profile, _BFD_FIELDS)))
    return out, renames
