"""MetalLB BGPPeers (metallb.io/v1beta2, v1beta1), BFDProfiles and Communities -> lbipam BGPPeers.

- `myASN` -> `localASN` (MetalLB's per-session `localASN`, its "local-as", wins: it is the AS the
  router sees); `peerASN`, `peerAddress`, `peerPort`, `sourceAddress`, `routerID` carry as they are;
  `holdTime` (a duration) -> seconds; `ebgpMultiHop: true` -> `ebgpMultihop: 255` (FRR's
  `ebgp-multihop` without a TTL); `enableGracefulRestart` -> `gracefulRestart.enabled`.
- The session negotiates the family of `peerAddress` only, both with `dualStackAddressFamily`,
  as MetalLB's FRR mode does.
- `password` -> a Secret (in `Options.secret_namespace`, key `password`) written with the output,
  and a `passwordSecretRef` to it; `passwordSecret` -> a `passwordSecretRef` to the same Secret.
- `bfdProfile` -> `bfd` from the BFDProfile: receiveInterval -> minRxMs, transmitInterval ->
  minTxMs, detectMultiplier -> multiplier.
- `nodeSelectors` (ORed) -> `nodeSelector` when one selector expresses them; else the first one,
  with a finding: a session is never opened from a node MetalLB did not open it from.
- Not carried: `dynamicASN`, `interface` (unnumbered), `vrf` (the peer is left out);
  `keepaliveTime` other than holdTime/3, `connectTime`, `disableMP`, and BFD echo or passive mode.
Called by `lbipam.migrate.metallb`. Pure.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from lbipam.migrate import labels
from lbipam.migrate.metallb_pools import API_VERSION
from lbipam.migrate.report import Obj, Options, Report, Source
from lbipam.migrate.shapes import address, as_dict, as_list, dns_name, go_duration, name_of, spec_of

#: lbipam's defaults, left out of the output (a cluster's API fills in MetalLB's and Cilium's).
DEFAULT_PORT, DEFAULT_HOLD_TIME, DEFAULT_RESTART_TIME = 179, 90, 120
#: MetalLB's BFD defaults (FRR's), which are also lbipam's.
BFD_DEFAULTS = {"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3}
BFD_FIELDS = {"receiveInterval": "minRxMs", "transmitInterval": "minTxMs", "detectMultiplier": "multiplier"}


def bfd(profile: Mapping[str, Any], source: Source, report: Report) -> Obj:
    """lbipam's `spec.bfd` from a MetalLB BFDProfile (`source`: the BFDProfile)."""
    spec = spec_of(profile)
    out: Obj = {"enabled": True}
    for theirs, ours in BFD_FIELDS.items():
        value = spec.get(theirs, BFD_DEFAULTS[theirs])
        out[ours] = value if isinstance(value, int) else BFD_DEFAULTS[theirs]
    if spec.get("echoMode") is True:
        report.drop(source, "spec.echoMode", "BFD echo mode is not supported: asynchronous mode only")
    if spec.get("passiveMode") is True:
        report.drop(source, "spec.passiveMode", "lbipam's BFD sessions are always active")
    if "minimumTtl" in spec:
        report.drop(source, "spec.minimumTtl", "multihop BFD accepts any TTL")
    return out


def _timers(spec: Mapping[str, Any], source: Source, report: Report) -> int | None:
    """The hold time in seconds, or None for the default; MetalLB derives one timer from the other."""
    hold = keepalive = None
    try:
        if spec.get("holdTime") is not None:
            hold = int(go_duration(spec["holdTime"]))
        if spec.get("keepaliveTime") is not None:
            keepalive = int(go_duration(spec["keepaliveTime"]))
    except ValueError as err:
        report.drop(source, "spec.holdTime", f"{err}: the default hold time (90s) applies")
        return None
    if hold is None and keepalive is not None:
        hold = keepalive * 3
    if hold is not None and keepalive is not None and keepalive != hold // 3:
        report.drop(
            source,
            "spec.keepaliveTime",
            f"keepalives go out every holdTime/3 ({hold // 3}s), not every {keepalive}s",
        )
    return hold


def _families(peer_address: str, spec: Mapping[str, Any], source: Source, report: Report) -> list[str]:
    if spec.get("disableMP") is True:
        report.note(source, "spec.disableMP", "the session carries the family of peerAddress only, as asked")
    if spec.get("dualStackAddressFamily") is True:
        return ["ipv4-unicast", "ipv6-unicast"]
    return ["ipv6-unicast" if ":" in peer_address else "ipv4-unicast"]


def _node_selector(spec: Mapping[str, Any], source: Source, report: Report) -> Obj | None:
    selectors = [as_dict(s) for s in as_list(spec.get("nodeSelectors"))]
    if not selectors:
        return None
    merged = labels.union(selectors)
    if merged is None:
        report.drop(
            source,
            "spec.nodeSelectors[1:]",
            f"{len(selectors)} selectors ORed cannot be one LabelSelector: only nodes of the first "
            "open the session (add a BGPPeer per router address by hand for the rest)",
        )
        merged = labels.union(selectors[:1])
    return merged or None


def _password(obj: Mapping[str, Any], source: Source, options: Options, report: Report) -> Obj | None:
    """The passwordSecretRef, emitting a Secret for a literal password (never written to a finding)."""
    spec = spec_of(obj)
    ref = as_dict(spec.get("passwordSecret"))
    if spec.get("password"):
        name = dns_name(source.name, "bgp-password")
        data = {"password": base64.b64encode(str(spec["password"]).encode()).decode()}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": options.secret_namespace},
            "type": "Opaque",
            "data": data,
        }
        report.emit(secret, source)
        where = f"{options.secret_namespace}/{name}"
        report.note(source, "spec.password", f"moved to Secret {where} (in the output), read by the speaker")
        return {"namespace": options.secret_namespace, "name": name, "key": "password"}
    if ref.get("name"):
        namespace = str(ref.get("namespace") or source.namespace or "metallb-system")
        report.note(
            source,
            "spec.passwordSecret",
            f"the speaker reads Secret {namespace}/{ref['name']}: deploy/ lets it read Secrets in "
            f"{options.secret_namespace} only (copy the Secret there, or grant a Role in {namespace})",
        )
        return {"namespace": namespace, "name": str(ref["name"]), "key": "password"}
    return None


def _unusable(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a peer cannot be carried at all (field, reason), or None."""
    if spec.get("dynamicASN"):
        return "spec.dynamicASN", "a dynamic peer ASN is not supported: give peerASN"
    if spec.get("interface"):
        return "spec.interface", "unnumbered BGP (peering over an interface) is not supported"
    if spec.get("vrf"):
        return "spec.vrf", "sessions in a VRF are not supported: lbipam peers from the node's default VRF"
    if not spec.get("peerASN"):
        return "spec.peerASN", "no peer ASN"
    return None


def _session(spec: Mapping[str, Any], source: Source, report: Report) -> Obj:
    """The session settings: port, router ID, source address, timers, multihop, restart."""
    out: Obj = {}
    if spec.get("peerPort") and spec["peerPort"] != DEFAULT_PORT:
        out["peerPort"] = spec["peerPort"]
    if spec.get("routerID"):
        out["routerID"] = spec["routerID"]
    if spec.get("sourceAddress"):
        out["sourceAddress"] = spec["sourceAddress"]
    hold = _timers(spec, source, report)
    if hold is not None and hold != DEFAULT_HOLD_TIME:
        out["holdTime"] = hold
    if spec.get("ebgpMultiHop") is True:
        out["ebgpMultihop"] = 255
    if spec.get("enableGracefulRestart") is True:
        out["gracefulRestart"] = {"enabled": True}
    if spec.get("connectTime"):
        report.drop(source, "spec.connectTime", "the speaker retries with its own backoff")
    return out


def _bfd_of(
    spec: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]], source: Source, report: Report
) -> Obj | None:
    """`spec.bfd` from the peer's BFDProfile, None without one (or when it cannot carry)."""
    name = spec.get("bfdProfile")
    if not name:
        return None
    profile = profiles.get(str(name))
    if profile is None:
        report.drop(source, "spec.bfdProfile", f"BFDProfile {name} is not in the input")
        return None
    return bfd(profile, Source.of(profile), report)


def translate_peer(
    obj: Mapping[str, Any], profiles: Mapping[str, Mapping[str, Any]], options: Options, report: Report
) -> None:
    source = Source.of(obj)
    spec = spec_of(obj)
    unusable = _unusable(spec)
    if unusable is None:
        try:
            peer_address = address(spec.get("peerAddress"))
        except ValueError as err:
            unusable = ("spec.peerAddress", str(err))
    if unusable is not None:
        report.drop(source, unusable[0], f"{unusable[1]}; the peer is not carried")
        return
    out: Obj = {
        "peerAddress": peer_address,
        "peerASN": spec["peerASN"],
        "localASN": spec.get("localASN") or spec.get("myASN"),
    }
    if spec.get("localASN"):
        report.note(source, "spec.localASN", "the session's local AS is localASN, as the router sees it")
    out.update(_session(spec, source, report))
    out["families"] = _families(peer_address, spec, source, report)
    extras = {
        "passwordSecretRef": _password(obj, source, options, report),
        "bfd": _bfd_of(spec, profiles, source, report),
        "nodeSelector": _node_selector(spec, source, report),
    }
    out.update({k: v for k, v in extras.items() if v is not None})
    peer = {"apiVersion": API_VERSION, "kind": "BGPPeer", "metadata": {"name": source.name}, "spec": out}
    report.emit(peer, source)


def community_aliases(communities: list[Mapping[str, Any]], report: Report) -> dict[str, str]:
    """Alias name -> value over every Community object; a second definition of a name is dropped."""
    aliases: dict[str, str] = {}
    for obj in communities:
        for index, raw in enumerate(as_list(spec_of(obj).get("communities"))):
            item = as_dict(raw)
            name, value = str(item.get("name") or ""), str(item.get("value") or "")
            if name in aliases:
                where = f"spec.communities[{index}]"
                report.drop(Source.of(obj), where, f"alias {name} is defined twice; the first one is used")
                continue
            aliases[name] = value
    return aliases


def profiles_by_name(objs: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {name_of(o): o for o in objs}
