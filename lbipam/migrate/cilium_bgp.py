"""Cilium's BGP control plane v2 (CiliumBGPClusterConfig, CiliumBGPPeerConfig,
CiliumBGPAdvertisement; cilium.io/v2 or v2alpha1) -> lbipam BGPPeers and BGPAdvertisements.

Each peer of each BGP instance becomes a BGPPeer (named after the peer, or
`<config>-<instance>-<peer>` when two peers share a name): `peerAddress`, `peerASN`, the instance's
`localASN`, the cluster config's `nodeSelector`, and the session settings of its
CiliumBGPPeerConfig (`lbipam.migrate.cilium_session`; `transport.peerPort` -> `peerPort`).
A peer config's `families[].advertisements` selects CiliumBGPAdvertisements by label; each of
their entries becomes a BGPAdvertisement for the peers that select it:
- `Service` with `LoadBalancerIP` among `service.addresses`: `selector` -> `serviceSelector`
  (special name/namespace keys as in pools; no selector selects no Service, as in Cilium);
  `aggregationLengthIPv4/IPv6` -> `aggregationLength(V6)`.
- `PodCIDR`: `podCIDRs: true` with a Service selector that selects no Service.
- `attributes`: communities and local preference.
Not carried: peers found by `autoDiscovery` or over `peerInterface`, `peerASN` 0, a BGP
instance's `localPort`, `transport.sourceInterface`, `ClusterIP`/`ExternalIP` addresses,
`CiliumPodIPPool` and `Interface` advertisements, an advertisement selected for one family of a
session that carries both, and CiliumBGPNodeConfigOverrides (per-node settings).
Called by `lbipam.migrate.cilium`. Pure.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbipam.core.selectors import SelectorError, compile_selector
from lbipam.migrate import cilium_session as session
from lbipam.migrate.cilium_pools import service_selector
from lbipam.migrate.labels import NO_SERVICE
from lbipam.migrate.metallb_pools import API_VERSION
from lbipam.migrate.report import Obj, Options, Report, Source
from lbipam.migrate.shapes import address, as_dict, as_list, dns_name, labels_of, name_of, spec_of


@dataclass
class Selection:
    """Which lbipam peers take a CiliumBGPAdvertisement, and by which families."""

    peers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # peer -> families


def _peer_names(configs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(config, instance, peer) -> the lbipam name; the plain peer name unless it repeats."""
    keys = [
        (name_of(c), str(as_dict(i).get("name") or ""), str(as_dict(p).get("name") or ""))
        for c in configs
        for i in as_list(spec_of(c).get("bgpInstances"))
        for p in as_list(as_dict(i).get("peers"))
    ]
    counts = Counter(dns_name(k[2]) for k in keys)
    return {k: dns_name(k[2]) if counts[dns_name(k[2])] == 1 else dns_name(*k) for k in keys}


def _selects(selector: Any, obj: Mapping[str, Any]) -> bool:
    if selector is None:
        return False  # Cilium: a family without an advertisements selector announces nothing
    try:
        return compile_selector(dict(as_dict(selector))).matches(labels_of(obj))
    except SelectorError:
        return False


def _unusable(peer: Mapping[str, Any]) -> str | None:
    if peer.get("autoDiscovery"):
        return "a peer found by autoDiscovery is not supported: give peerAddress"
    if peer.get("peerInterface"):
        return "peering over peerInterface (link-local) is not supported"
    if not peer.get("peerASN"):
        return "peerASN 0 (any AS) is not supported: give the peer's AS"
    return None


@dataclass
class _Context:
    peer_configs: dict[str, Mapping[str, Any]]
    names: dict[tuple[str, str, str], str]
    options: Options


def _transport(transport: Mapping[str, Any], source: Source, report: Report) -> Obj:
    for unsupported in ("sourceInterface", "localPort"):
        if transport.get(unsupported):
            report.drop(source, f"spec.transport.{unsupported}", "the speaker dials from the node's address")
    return session.peer_port(transport.get("peerPort"))


def _peer(
    config: Mapping[str, Any], index: tuple[int, int], ctx: _Context, report: Report
) -> tuple[str, Mapping[str, Any]] | None:
    """The BGPPeer of one peer of one instance, and its CiliumBGPPeerConfig; None if not carried."""
    source = Source.of(config)
    instance = as_dict(as_list(spec_of(config).get("bgpInstances"))[index[0]])
    peer = as_dict(as_list(instance.get("peers"))[index[1]])
    where = f"spec.bgpInstances[{index[0]}].peers[{index[1]}]"
    why = _unusable(peer)
    try:
        peer_address = address(peer.get("peerAddress")) if why is None else ""
    except ValueError as err:
        why = str(err)
    if why is None and not instance.get("localASN"):
        why = "its BGP instance has no localASN"
    if why is not None:
        report.drop(source, where, f"{why}; the peer is not carried")
        return None
    ref = as_dict(peer.get("peerConfigRef")).get("name")
    peer_config = ctx.peer_configs.get(str(ref)) if ref else None
    if ref and peer_config is None:
        report.drop(
            source, f"{where}.peerConfigRef", f"CiliumBGPPeerConfig {ref} is not in the input: defaults used"
        )
    params = spec_of(peer_config or {})
    config_source = Source.of(peer_config) if peer_config else source
    out: Obj = {"peerAddress": peer_address, "peerASN": peer["peerASN"], "localASN": instance["localASN"]}
    out.update(_transport(as_dict(params.get("transport")), config_source, report))
    placed = session.Where(config_source, "spec", "spec.timers.", "ebgpMultihop")
    out.update(session.session_spec(params, as_dict(params.get("timers")), placed, ctx.options, report))
    selector = spec_of(config).get("nodeSelector")
    if selector:
        out["nodeSelector"] = dict(as_dict(selector))
    name = ctx.names[(source.name, str(instance.get("name") or ""), str(peer.get("name") or ""))]
    obj = {"apiVersion": API_VERSION, "kind": "BGPPeer", "metadata": {"name": name}, "spec": out}
    if not report.emit(obj, source, *([config_source] if peer_config else [])):
        return None
    return name, params


def translate_peers(
    configs: Sequence[Mapping[str, Any]],
    peer_configs: Sequence[Mapping[str, Any]],
    ads: Sequence[Mapping[str, Any]],
    options: Options,
    report: Report,
) -> dict[str, Selection]:
    """The BGPPeers; returns, per CiliumBGPAdvertisement name, the peers (and families) taking it."""
    ctx = _Context({name_of(p): p for p in peer_configs}, _peer_names(configs), options)
    selections: dict[str, Selection] = defaultdict(Selection)
    for config in configs:
        source = Source.of(config)
        for i, instance in enumerate(as_list(spec_of(config).get("bgpInstances"))):
            if as_dict(instance).get("localPort"):
                report.drop(
                    source, f"spec.bgpInstances[{i}].localPort", "the speaker never listens: it dials"
                )
            for j, _ in enumerate(as_list(as_dict(instance).get("peers"))):
                got = _peer(config, (i, j), ctx, report)
                if got is None:
                    continue
                name, params = got
                for raw in as_list(params.get("families")):
                    family = as_dict(raw)
                    if family.get("afi") not in ("ipv4", "ipv6") or family.get("safi") != "unicast":
                        continue
                    for ad in ads:
                        if _selects(family.get("advertisements"), ad):
                            selections[name_of(ad)].peers[name].add(f"{family['afi']}-unicast")
    return selections


def _entry(entry: Mapping[str, Any], source: Source, where: str, report: Report) -> Obj | None:
    """The spec of one advertisements[] entry (without peers), or None when it is not carried."""
    kind = entry.get("advertisementType")
    out = session.attributes(entry.get("attributes"), source, f"{where}.attributes", report)
    if kind == "PodCIDR":
        return {**out, "podCIDRs": True, "serviceSelector": NO_SERVICE}
    if kind != "Service":
        report.drop(source, where, f"advertisementType {kind} is not supported (Service and PodCIDR are)")
        return None
    service = as_dict(entry.get("service"))
    addresses = [str(a) for a in as_list(service.get("addresses"))]
    for other in sorted(set(addresses) - {"LoadBalancerIP"}):
        report.drop(source, f"{where}.service.addresses", f"{other}: lbipam announces LoadBalancer IPs only")
    if "LoadBalancerIP" not in addresses:
        return None
    if entry.get("selector") is None:
        report.note(source, f"{where}.selector", "absent: Cilium announces no Service by it, nor does lbipam")
        return None
    for theirs, ours in (
        ("aggregationLengthIPv4", "aggregationLength"),
        ("aggregationLengthIPv6", "aggregationLengthV6"),
    ):
        if isinstance(service.get(theirs), int):
            out[ours] = service[theirs]
    selector = service_selector(as_dict(entry["selector"]))
    if selector:
        out["serviceSelector"] = selector
    return out


def translate_advertisements(
    ads: Sequence[Mapping[str, Any]],
    selections: Mapping[str, Selection],
    families: Mapping[str, list[str]],
    report: Report,
) -> None:
    """`families`: the lbipam families of each carried peer."""
    for ad in ads:
        source = Source.of(ad)
        selection = selections.get(source.name)
        if selection is None or not selection.peers:
            report.note(
                source, "", "no peer config selects it: Cilium announces nothing by it, nor does lbipam"
            )
            continue
        for peer, picked in sorted(selection.peers.items()):
            missing = set(families.get(peer, [])) - picked
            if missing:
                report.drop(
                    source,
                    "",
                    f"BGPPeer {peer} takes it for {', '.join(sorted(picked))} only: lbipam sends its "
                    f"routes in every family the session carries ({', '.join(sorted(missing))} too)",
                )
        entries = as_list(spec_of(ad).get("advertisements"))
        for index, entry in enumerate(entries):
            spec = _entry(as_dict(entry), source, f"spec.advertisements[{index}]", report)
            if spec is None:
                continue
            spec["peers"] = sorted(selection.peers)
            name = source.name if len(entries) == 1 else dns_name(source.name, str(index))
            report.emit(
                {
                    "apiVersion": API_VERSION,
                    "kind": "BGPAdvertisement",
                    "metadata": {"name": name},
                    "spec": spec,
                },
                source,
            )
