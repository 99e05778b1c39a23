"""The parts of a BGP session and of a route's attributes that Cilium's two BGP APIs share, as
lbipam writes them: CiliumBGPPeerConfig (v2) and a CiliumBGPPeeringPolicy neighbor (v2alpha1)
have the same timers, graceful restart, eBGP multihop, password and families; their path
attributes the same communities and local preference.

- `holdTimeSeconds` -> `holdTime`; a `keepAliveTimeSeconds` other than holdTime/3 and a
  `connectRetryTimeSeconds` other than Cilium's 120 are not carried (lbipam's speaker keeps
  alive every holdTime/3 and backs off on its own).
- `ebgpMultihop` / `eBGPMultihopTTL` above 1 -> `ebgpMultihop`; `gracefulRestart` as it is.
- `authSecretRef` -> `passwordSecretRef` to that Secret in Cilium's secret namespace, key `password`.
- `families`: ipv4/ipv6 unicast carry; other AFI/SAFIs are not; none listed means both.
- Communities: `standard` (ASN:VALUE or a 32-bit number), `wellKnown` (by its number) and `large`.
Used by `lbipam.migrate.cilium_bgp` and `lbipam.migrate.cilium_policy`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbipam.migrate.metallb_bgp import DEFAULT_HOLD_TIME, DEFAULT_PORT, DEFAULT_RESTART_TIME
from lbipam.migrate.report import Obj, Options, Report, Source
from lbipam.migrate.shapes import as_dict, as_list, large_community, standard_community

#: Cilium's well-known community names and their numbers (cilium.io BGPWellKnownCommunity).
WELL_KNOWN = {
    "internet": "0:0",
    "planned-shut": "65535:0",
    "accept-own": "65535:1",
    "route-filter-translated-v4": "65535:2",
    "route-filter-v4": "65535:3",
    "route-filter-translated-v6": "65535:4",
    "route-filter-v6": "65535:5",
    "llgr-stale": "65535:6",
    "no-llgr": "65535:7",
    "blackhole": "65535:666",
    "no-export": "65535:65281",
    "no-advertise": "65535:65282",
    "no-export-subconfed": "65535:65283",
    "no-peer": "65535:65284",
}
CONNECT_RETRY_DEFAULT = 120


def peer_port(value: Any) -> Obj:
    """`peerPort` unless it is the default."""
    return {"peerPort": value} if isinstance(value, int) and value != DEFAULT_PORT else {}


def timers(params: Mapping[str, Any], source: Source, where: str, report: Report) -> Obj:
    """holdTime from Cilium's three timers (`params` holds them, `where` is their field path)."""
    out: Obj = {}
    hold = params.get("holdTimeSeconds")
    keepalive = params.get("keepAliveTimeSeconds")
    if isinstance(hold, int) and hold != DEFAULT_HOLD_TIME:
        out["holdTime"] = hold
    effective = hold if isinstance(hold, int) else 90
    if isinstance(keepalive, int) and keepalive != effective // 3:
        report.drop(
            source, f"{where}keepAliveTimeSeconds", f"keepalives go out every holdTime/3 ({effective // 3}s)"
        )
    retry = params.get("connectRetryTimeSeconds")
    if isinstance(retry, int) and retry != CONNECT_RETRY_DEFAULT:
        report.drop(source, f"{where}connectRetryTimeSeconds", "the speaker retries with its own backoff")
    return out


def graceful_restart(value: Any) -> Obj | None:
    restart = as_dict(value)
    if restart.get("enabled") is not True:
        return None
    out: Obj = {"enabled": True}
    if (
        isinstance(restart.get("restartTimeSeconds"), int)
        and restart["restartTimeSeconds"] != DEFAULT_RESTART_TIME
    ):
        out["restartTime"] = restart["restartTimeSeconds"]
    return out


def password(secret: Any, options: Options, source: Source, where: str, report: Report) -> Obj | None:
    if not secret:
        return None
    namespace = options.cilium_secret_namespace
    report.note(
        source,
        where,
        f"the speaker reads Secret {namespace}/{secret}: deploy/ lets it read Secrets in "
        f"{options.secret_namespace} only (copy the Secret there, or grant a Role in {namespace})",
    )
    return {"namespace": namespace, "name": str(secret), "key": "password"}


def families(value: Any, source: Source, where: str, report: Report) -> list[str]:
    """lbipam families of Cilium's `families` list (absent or empty: both)."""
    out: list[str] = []
    for index, raw in enumerate(as_list(value)):
        item = as_dict(raw)
        afi, safi = item.get("afi"), item.get("safi")
        if afi in ("ipv4", "ipv6") and safi == "unicast":
            if f"{afi}-unicast" not in out:
                out.append(f"{afi}-unicast")
        else:
            report.drop(source, f"{where}[{index}]", f"{afi}/{safi}: only IPv4 and IPv6 unicast are carried")
    return sorted(out) if out else ["ipv4-unicast", "ipv6-unicast"]


def attributes(value: Any, source: Source, where: str, report: Report) -> Obj:
    """communities, largeCommunities and localPreference of Cilium's path attributes."""
    attrs = as_dict(value)
    found = as_dict(attrs.get("communities"))
    standard: set[str] = set()
    large: set[str] = set()
    for kind in ("standard", "wellKnown", "large"):
        for index, item in enumerate(as_list(found.get(kind))):
            try:
                if kind == "large":
                    large.add(large_community(item))
                elif kind == "wellKnown":
                    if str(item) not in WELL_KNOWN:
                        raise ValueError(f"{item!r} is not a well-known community name")
                    standard.add(WELL_KNOWN[str(item)])
                else:
                    standard.add(standard_community(item))
            except ValueError as err:
                report.drop(source, f"{where}.communities.{kind}[{index}]", str(err))
    out: Obj = {}
    if standard:
        out["communities"] = sorted(standard)
    if large:
        out["largeCommunities"] = sorted(large)
    if isinstance(attrs.get("localPreference"), int):
        out["localPreference"] = attrs["localPreference"]
    return out


@dataclass(frozen=True)
class Where:
    """Where a session's settings are: the object (for findings), the path of its fields, the
    path of its timers, and the name of its multihop field."""

    source: Source
    path: str  # "spec" (a CiliumBGPPeerConfig) or a neighbor's path
    timers: str  # the prefix of the timer fields
    multihop: str  # ebgpMultihop | eBGPMultihopTTL


def session_spec(
    params: Mapping[str, Any], timer_params: Mapping[str, Any], where: Where, options: Options, report: Report
) -> Obj:
    """holdTime, ebgpMultihop, gracefulRestart, passwordSecretRef and families of a session."""
    out = timers(timer_params, where.source, where.timers, report)
    multihop = params.get(where.multihop)
    if isinstance(multihop, int) and multihop > 1:
        out["ebgpMultihop"] = multihop
    restart = graceful_restart(params.get("gracefulRestart"))
    if restart:
        out["gracefulRestart"] = restart
    secret = password(
        params.get("authSecretRef"), options, where.source, f"{where.path}.authSecretRef", report
    )
    if secret:
        out["passwordSecretRef"] = secret
    out["families"] = families(params.get("families"), where.source, f"{where.path}.families", report)
    return out
