"""BGPPeers that dial one router address become one lbipam BGPPeer.

MetalLB (per-node peers, one per node with its own `sourceAddress`) and Cilium (one peer per
cluster config) may have several objects for one router address, opened from different nodes.
lbipam keys a session by `peerAddress`: of two BGPPeers with one address only the older serves.
So peers of one address whose sessions are otherwise alike merge into one, the first by name,
whose `nodeSelector` selects what theirs selected together. A `sourceAddress` that differs
between them is dropped (the speaker dials from the node's own address). Peers that differ in
anything else, or whose node selectors one selector cannot express, stay apart: only the first
is carried. `merge_peers` returns old name -> kept name, for the advertisements' `peers`. Pure.
"""

from __future__ import annotations

from collections import defaultdict

from lbipam.migrate import labels
from lbipam.migrate.report import Obj, Output, Report

#: Fields that may differ between the merged peers.
_PER_NODE = ("nodeSelector", "sourceAddress")


def _secrets(report: Report) -> dict[tuple[str, str], Obj]:
    """The Secrets the translation writes (literal passwords), by (namespace, name)."""
    return {
        (str(o.obj["metadata"]["namespace"]), o.name): o.obj["data"]
        for o in report.outputs
        if o.kind == "Secret"
    }


def _rest(spec: Obj, secrets: dict[tuple[str, str], Obj]) -> Obj:
    """What must be equal for two peers to merge; a written Secret counts by its content."""
    rest = {k: v for k, v in spec.items() if k not in _PER_NODE}
    ref = rest.get("passwordSecretRef")
    if ref and (ref["namespace"], ref["name"]) in secrets:
        rest["passwordSecretRef"] = secrets[(ref["namespace"], ref["name"])]
    return rest


def _merge(group: list[Output], report: Report) -> Output | None:
    """The merged peer of `group` (same address, alike), or None when they cannot merge."""
    first = group[0]
    specs = [o.obj["spec"] for o in group]
    secrets = _secrets(report)
    if any(_rest(s, secrets) != _rest(specs[0], secrets) for s in specs[1:]):
        return None
    selectors = [s.get("nodeSelector") or {} for s in specs]
    merged = labels.union(selectors)
    if merged is None:
        return None
    spec = dict(specs[0])
    spec.pop("nodeSelector", None)
    if merged:
        spec["nodeSelector"] = merged
    sources = {s.get("sourceAddress") for s in specs}
    if len(sources) > 1:
        spec.pop("sourceAddress", None)
        for output in group:
            report.drop(
                output.sources[0],
                "spec.sourceAddress",
                f"merged into BGPPeer {first.name} (one session per router address): the speaker "
                "dials from each node's own address",
            )
    sources_all = tuple(s for o in group for s in o.sources)
    return Output({**first.obj, "spec": spec}, sources_all)


def _away(group: list[Output]) -> set[object]:
    return {s for o in group[1:] for s in o.sources}


def merge_peers(report: Report) -> dict[str, str]:
    groups: dict[str, list[Output]] = defaultdict(list)
    for output in report.outputs:
        if output.kind == "BGPPeer":
            groups[str(output.obj["spec"]["peerAddress"])].append(output)
    renames: dict[str, str] = {}
    for address, group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda o: o.name)
        keep, merged = group[0], _merge(group, report)
        for other in group[1:]:
            if merged is None:
                report.drop(
                    other.sources[0],
                    "",
                    f"BGPPeer {keep.name} dials {address} too, with other settings or nodes one "
                    "selector cannot express: lbipam opens one session per router address",
                )
            else:
                renames[other.name] = keep.name
                report.note(
                    other.sources[0], "", f"merged into BGPPeer {keep.name}: one session per router address"
                )
        gone = {id(o) for o in group}
        if merged is not None:  # the Secrets the merged-away peers' passwords went to
            away = _away(group)
            gone |= {id(o) for o in report.outputs if o.kind == "Secret" and o.sources[0] in away}
            report.findings[:] = [
                f for f in report.findings if not (f.source in away and f.field == "spec.password")
            ]
        kept = [o for o in report.outputs if id(o) not in gone or o is keep]
        report.outputs[:] = [(merged or keep) if o is keep else o for o in kept]
    return renames


def apply_renames(report: Report, renames: dict[str, str]) -> None:
    """Point the advertisements' `peers` at the peers they were merged into."""
    if not renames:
        return
    for output in report.outputs:
        peers = output.obj["spec"].get("peers") if output.kind == "BGPAdvertisement" else None
        if peers:
            output.obj["spec"]["peers"] = sorted({renames.get(p, p) for p in peers})
