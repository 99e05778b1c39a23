"""MetalLB BGPAdvertisements (metallb.io/v1beta1) -> lbipam BGPAdvertisements.

- `ipAddressPools` (names) -> `poolSelector` on the `lbipam.io/pool-name` label every migrated
  pool carries; `ipAddressPoolSelectors` (ORed) -> `poolSelector` on the pools' own labels (which
  carry over); neither -> every pool.
- `nodeSelectors`, `serviceSelectors` and `ipAddressPoolSelectors` are ORed lists. When one
  selector cannot express a list, the advertisement is split into one lbipam advertisement per
  combination, all with the same attributes: lbipam unites the communities and takes the highest
  local preference of the advertisements that match a route, so the routes and their attributes
  are exactly MetalLB's.
- `communities`: "ASN:VALUE" and "large:A:B:C" (-> `largeCommunities`), or an alias of a Community
  object, resolved; `localPref` (when set) -> `localPreference`; `aggregationLength(V6)` and
  `peers` carry as they are (a peer that was not carried is dropped from `peers`, and an
  advertisement left with no peer is not carried).
Called by `lbipam.migrate.metallb`. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.migrate import labels
from lbipam.migrate.metallb_pools import API_VERSION, POOL_NAME_LABEL
from lbipam.migrate.report import Obj, Report, Source
from lbipam.migrate.shapes import as_dict, as_list, dns_name, large_community, spec_of, standard_community

#: Split no advertisement into more than this many: a list this long is better rewritten by hand.
MAX_SPLIT = 16


def communities(
    values: Sequence[Any], aliases: Mapping[str, str], source: Source, report: Report
) -> tuple[list[str], list[str]]:
    """(standard, large) communities of a MetalLB advertisement, aliases resolved."""
    standard: list[str] = []
    large: list[str] = []
    for index, value in enumerate(values):
        text = aliases.get(str(value), str(value))
        try:
            if text.startswith("large:"):
                large.append(large_community(text.removeprefix("large:")))
            elif text.count(":") == 1:
                standard.append(standard_community(text))
            else:
                raise ValueError(f"{value!r} is neither ASN:VALUE, large:A:B:C nor a Community alias")
        except ValueError as err:
            report.drop(source, f"spec.communities[{index}]", str(err))
    return sorted(set(standard)), sorted(set(large))


def _alternatives(selectors: Sequence[Mapping[str, Any]]) -> list[Obj | None]:
    """The selectors to split over: [None] for an empty list (everything), one when they merge."""
    if not selectors:
        return [None]
    merged = labels.union(selectors)
    if merged is not None:
        return [merged or None]
    return [labels.union([s]) or None for s in selectors]


def _pool_alternatives(spec: Mapping[str, Any], source: Source, report: Report) -> list[Obj | None]:
    names = sorted({str(n) for n in as_list(spec.get("ipAddressPools"))})
    long_names = [n for n in names if len(n) > 63]
    for name in long_names:
        report.drop(source, "spec.ipAddressPools", f"pool {name} has a name longer than a label value")
    names = [n for n in names if len(n) <= 63]
    selectors = [as_dict(s) for s in as_list(spec.get("ipAddressPoolSelectors"))]
    if names:
        selectors.append({"matchExpressions": [{"key": POOL_NAME_LABEL, "operator": "In", "values": names}]})
    if not selectors and long_names:
        return []
    return _alternatives(selectors)


def _peers(
    spec: Mapping[str, Any], carried: set[str], renames: Mapping[str, str], source: Source, report: Report
) -> list[str] | None:
    """The peers to announce to; None when the advertisement named peers and none was carried."""
    named = [renames.get(str(p), str(p)) for p in as_list(spec.get("peers"))]
    kept = sorted({p for p in named if p in carried})
    for peer in sorted(set(named) - carried):
        report.drop(source, "spec.peers", f"BGPPeer {peer} is not in the input or not carried")
    if named and not kept:
        return None
    return kept


def _attributes(spec: Mapping[str, Any], aliases: Mapping[str, str], source: Source, report: Report) -> Obj:
    out: Obj = {}
    standard, large = communities(as_list(spec.get("communities")), aliases, source, report)
    if standard:
        out["communities"] = standard
    if large:
        out["largeCommunities"] = large
    if spec.get("localPref"):
        out["localPreference"] = spec["localPref"]
    for field, default in (("aggregationLength", 32), ("aggregationLengthV6", 128)):
        if spec.get(field) is not None and spec[field] != default:
            out[field] = spec[field]
    return out


def translate_advertisement(
    obj: Mapping[str, Any],
    aliases: Mapping[str, str],
    peers: set[str],
    renames: Mapping[str, str],
    report: Report,
) -> None:
    """`peers`: the BGPPeers carried; `renames`: peers merged into another (`lbipam.migrate.peers`)."""
    source = Source.of(obj)
    spec = spec_of(obj)
    peer_names = _peers(spec, peers, renames, source, report)
    pools = _pool_alternatives(spec, source, report)
    if peer_names is None or not pools:
        report.drop(source, "", "it selects no carried peer or pool; the advertisement is not carried")
        return
    base = _attributes(spec, aliases, source, report)
    if peer_names:
        base["peers"] = peer_names
    nodes = _alternatives([as_dict(s) for s in as_list(spec.get("nodeSelectors"))])
    services = _alternatives([as_dict(s) for s in as_list(spec.get("serviceSelectors"))])
    combos = list(itertools.product(pools, nodes, services))
    if len(combos) > MAX_SPLIT:
        report.drop(
            source,
            "",
            f"its selector lists make {len(combos)} combinations (> {MAX_SPLIT}): rewrite it by hand",
        )
        return
    if len(combos) > 1:
        report.note(source, "", f"its ORed selector lists are carried as {len(combos)} BGPAdvertisements")
    for index, (pool, node, service) in enumerate(combos, start=1):
        out = dict(base)
        for field, selector in (("poolSelector", pool), ("nodeSelector", node), ("serviceSelector", service)):
            if selector is not None:
                out[field] = selector
        name = source.name if len(combos) == 1 else dns_name(source.name, str(index))
        report.emit(
            {"apiVersion": API_VERSION, "kind": "BGPAdvertisement", "metadata": {"name": name}, "spec": out},
            source,
        )
