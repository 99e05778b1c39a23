"""`lbipam status`: what the controller and the speakers report, in one read of the API.

LoadBalancerIPPools and PodCIDRPools with their usage per family and their conditions (Ready,
Conflict, Exhausted, and InvalidChange for PodCIDRPools), and the BGP sessions of every node from
its BGPNodeState. Prints a table (abnormal conditions spelled out under it) or JSON. Reads through
`lbipam.k8s`; writes nothing. Wired into `lbipam.cli` as `lbipam status`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.resources import BGPNODESTATES, LBPOOLS, PODCIDRPOOLS, Resource
from lbipam.tools import EXIT_CLEAN, add_kubeconfig, add_output, fail, table

if TYPE_CHECKING:
    from lbipam.k8s.client import Kube

Obj = Mapping[str, Any]
LB_CONDITIONS = ("Ready", "Conflict", "Exhausted")
PC_CONDITIONS = (*LB_CONDITIONS, "InvalidChange")
#: The status each condition has when all is well; any other is spelled out under the table.
HEALTHY = {"Ready": "True", "Conflict": "False", "Exhausted": "False", "InvalidChange": "False"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "status",
        help="pools, usage and conflicts, and BGP sessions per node, as a table (-o json too)",
        description="Show every LoadBalancerIPPool and PodCIDRPool with its usage per IP family "
        "(used/total, from the pool's status) and its conditions (Ready, Conflict, Exhausted; "
        "InvalidChange for PodCIDRPools), then the BGP sessions of every node as its speaker "
        "reports them in BGPNodeState. Conditions that are not healthy are spelled out under the "
        "tables. Exit code 0, or 2 when the API cannot be read.",
    )
    add_kubeconfig(cmd)
    add_output(cmd, "table", "json")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    # kubernetes_asyncio takes ~0.3 s to import: only when the command runs, not for `lbipam --help`.
    from lbipam.k8s.client import connect  # noqa: PLC0415

    try:
        kube = await connect(args.kubeconfig)
    except KubeError as err:
        return fail("status", str(err))
    try:
        report, missing = await collect(kube)
    except KubeError as err:
        return fail("status", str(err))
    finally:
        await kube.close()
    for resource in missing:
        sys.stderr.write(f"lbipam status: {resource} is not served (are lbipam's CRDs installed?)\n")
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.output == "json" else render(report))
    return EXIT_CLEAN


async def _list(kube: Kube, resource: Resource, missing: list[str]) -> list[Obj]:
    try:
        items = (await kube.list_all(resource)).items
    except NotFound:  # the CRD is not installed: report it and show the rest
        missing.append(str(resource))
        return []
    return sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name", "")))


async def collect(kube: Kube) -> tuple[dict[str, Any], list[str]]:
    """The report (the JSON output) and the kinds the API does not serve."""
    missing: list[str] = []
    lb, pc, bgp = await asyncio.gather(
        _list(kube, LBPOOLS, missing), _list(kube, PODCIDRPOOLS, missing), _list(kube, BGPNODESTATES, missing)
    )
    report = {
        "loadBalancerIPPools": [lb_pool(o) for o in lb],
        "podCIDRPools": [pc_pool(o) for o in pc],
        "bgpNodes": [bgp_node(o) for o in bgp],
    }
    return report, missing


# ---- API objects -> report entries ------------------------------------------------------------
def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _counts(status: Obj, family: str) -> dict[str, str] | None:
    got = _dict(status.get(family))
    return {k: str(got.get(k, "0")) for k in ("total", "used", "available")} if got else None


def _conditions(status: Obj, types: Sequence[str]) -> dict[str, dict[str, str]]:
    found = {}
    for item in _list_of(status.get("conditions")):
        cond = _dict(item)
        if cond.get("type") in types:
            found[str(cond["type"])] = {k: str(cond.get(k, "")) for k in ("status", "reason", "message")}
    return found


def _block_text(block: Any) -> str:
    block = _dict(block)
    if block.get("cidr"):
        return str(block["cidr"])
    start, stop = block.get("start"), block.get("stop")
    return f"{start}-{stop}" if stop and stop != start else str(start)


def _common(obj: Obj, types: Sequence[str]) -> dict[str, Any]:
    meta, spec, status = (_dict(obj.get(k)) for k in ("metadata", "spec", "status"))
    return {
        "name": str(meta.get("name", "")),
        "disabled": bool(spec.get("disabled", False)),
        "ipv4": _counts(status, "ipv4"),
        "ipv6": _counts(status, "ipv6"),
        "conditions": _conditions(status, types),
    }


def lb_pool(obj: Obj) -> dict[str, Any]:
    entry = _common(obj, LB_CONDITIONS)
    entry["blocks"] = [_block_text(b) for b in _list_of(_dict(obj.get("spec")).get("blocks"))]
    return entry


def pc_pool(obj: Obj) -> dict[str, Any]:
    entry = _common(obj, PC_CONDITIONS)
    spec = _dict(obj.get("spec"))
    entry["cidrs"] = {
        family: {"cidrs": [str(c) for c in _list_of(got.get("cidrs"))], "maskSize": got.get("maskSize")}
        for family in ("ipv4", "ipv6")
        if (got := _dict(spec.get(family)))
    }
    return entry


def bgp_node(obj: Obj) -> dict[str, Any]:
    peers = []
    for item in _list_of(_dict(obj.get("status")).get("peers")):
        peer = _dict(item)
        peers.append(
            {
                "name": str(peer.get("name", "")),
                "peerAddress": str(peer.get("peerAddress", "")),
                "state": str(peer.get("state", "")),
                "since": str(peer.get("since") or ""),
                "advertised": peer.get("advertised", 0),
                "lastError": str(peer.get("lastError", "")),
            }
        )
    name = str(_dict(obj.get("metadata")).get("name", ""))
    return {"node": name, "peers": sorted(peers, key=lambda p: p["name"])}


# ---- the table --------------------------------------------------------------------------------
def usage(counts: Mapping[str, str] | None) -> str:
    """'used/total (percent%)', or '-' for a family the pool does not have."""
    if not counts or counts.get("total") in ("", "0"):
        return "-"
    used, total = int(counts["used"]), int(counts["total"])
    return f"{used}/{total} ({used * 100 // total}%)"


def _pool_rows(pools: Sequence[Mapping[str, Any]], types: Sequence[str], ranges: str) -> list[list[str]]:
    rows = []
    for pool in pools:
        conds = pool["conditions"]
        rows.append(
            [
                pool["name"],
                ranges_text(pool, ranges),
                "yes" if pool["disabled"] else "no",
                usage(pool["ipv4"]),
                usage(pool["ipv6"]),
                *(conds[t]["status"] if t in conds else "-" for t in types),
            ]
        )
    return rows


def ranges_text(pool: Mapping[str, Any], key: str) -> str:
    if key == "blocks":
        return ",".join(pool["blocks"])
    return ",".join(f"{c} (/{f['maskSize']})" for f in pool["cidrs"].values() for c in f["cidrs"])


def problems(kind: str, pools: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per unhealthy condition: kind, pool, condition, reason and message."""
    lines = []
    for pool in pools:
        for type_, cond in pool["conditions"].items():
            if cond["status"] != HEALTHY.get(type_, cond["status"]):
                lines.append(
                    f"{kind} {pool['name']}: {type_}={cond['status']} {cond['reason']}: {cond['message']}"
                )
    return lines


def render(report: Mapping[str, Any]) -> str:
    heads = ["NAME", "RANGES", "DISABLED", "IPV4 USED", "IPV6 USED"]
    lb, pc = report["loadBalancerIPPools"], report["podCIDRPools"]
    out = ["LoadBalancerIPPools\n"]
    out.append(table([*heads, *(t.upper() for t in LB_CONDITIONS)], _pool_rows(lb, LB_CONDITIONS, "blocks")))
    out.append("\nPodCIDRPools (usage counts node CIDRs; the mask each node gets in parentheses)\n")
    out.append(table([*heads, *(t.upper() for t in PC_CONDITIONS)], _pool_rows(pc, PC_CONDITIONS, "cidrs")))
    rows = [
        [
            n["node"],
            p["name"],
            p["peerAddress"],
            p["state"],
            p["since"] or "-",
            str(p["advertised"]),
            p["lastError"],
        ]
        for n in report["bgpNodes"]
        for p in n["peers"]
    ]
    rows += [
        [n["node"], "-", "-", "(no sessions)", "-", "-", ""] for n in report["bgpNodes"] if not n["peers"]
    ]
    out.append("\nBGP sessions\n")
    out.append(table(["NODE", "PEER", "ADDRESS", "STATE", "SINCE", "ADVERTISED", "LAST ERROR"], rows))
    notes = problems("LoadBalancerIPPool", lb) + problems("PodCIDRPool", pc)
    if notes:
        out.append("\nConditions that need attention\n")
        out.extend(f"  {line}\n" for line in notes)
    return "".join(out)
