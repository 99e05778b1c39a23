"""`lbipam plan`: size non-overlapping pod, service and LoadBalancer ranges for N clusters (offline).

The planning is `lbipam.core.netplan`; this module reads the flags, prints the plan as a table or
as YAML ready to apply (per cluster a PodCIDRPool and a LoadBalancerIPPool, validated against the
models in `lbipam.api` before they are printed, and the service CIDR for kube-apiserver), and with
`--check FILE` reads such YAML (or any list of pools) back and reports overlapping ranges. Talks to
no API. Wired into `lbipam.cli` as `lbipam plan`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from lbipam.core.addresses import AddressError, Block, parse_block
from lbipam.core.audit import NamedRange, Ref, overlapping_pairs
from lbipam.core.netplan import FAMILY_NAME, Plan, PlanError, Request, capacity, cluster_names, plan
from lbipam.tools import EXIT_CLEAN, EXIT_FINDINGS, add_output, fail, split_list, table

if TYPE_CHECKING:
    from lbipam.api import LoadBalancerIPPool, PodCIDRPool

#: Labels and annotations the planner writes on the pools; lbipam's controller ignores them and
#: `lbipam plan --check` reads them (which cluster a pool belongs to, the cluster's service CIDR).
CLUSTER_LABEL = "plan.lbipam.io/cluster"
SERVICE_CIDR_ANNOTATION = "plan.lbipam.io/service-cidr"
API_VERSION = "lbipam.io/v1alpha1"
DEFAULT_IPV4_BASE = "10.0.0.0/8"
DEFAULT_IPV6_BASE = "fd00::/48"
FAMILIES = {"dual": (4, 6), "ipv4": (4,), "ipv6": (6,)}
Obj = dict[str, Any]


def _headroom(text: str) -> Fraction:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 2, 1.5, 3/2)") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "plan",
        help="size non-overlapping pod, service and LB ranges for N clusters x nodes x pods (offline)",
        description="Plan, per cluster and per IP family, a pod range (one CIDR per node), a service "
        "CIDR and a LoadBalancer range, none overlapping another, all carved from one base per family. "
        "Every count is multiplied by --headroom and rounded up to a power of two. Prints a table, or "
        "with -o yaml a PodCIDRPool and a LoadBalancerIPPool per cluster, ready to apply, and the "
        "service CIDR to give kube-apiserver. Exit code: 0, 1 (--check found overlaps), 2 (impossible "
        "input). Talks to no cluster.",
        epilog="Examples: 'lbipam plan --clusters 3 --nodes 200 -o yaml > plan.yaml', then "
        "'lbipam plan --check plan.yaml' after editing it. A plan small enough for the documentation "
        "ranges: 'lbipam plan --clusters 2 --nodes 2 --pods-per-node 8 --services 10 --lb-ips 4 "
        "--headroom 1 --ipv4-base 198.51.100.0/24 --ipv6-base 2001:db8::/32'.",
    )
    cmd.add_argument("--clusters", type=int, default=1, help="how many clusters (default 1)")
    cmd.add_argument("--names", help="cluster names, comma-separated (default cluster-1..cluster-N)")
    cmd.add_argument("--nodes", type=int, default=100, help="nodes per cluster (default 100)")
    cmd.add_argument(
        "--pods-per-node", type=int, default=110, help="pods per node (default 110, the kubelet's max-pods)"
    )
    cmd.add_argument("--services", type=int, default=1000, help="Services per cluster (default 1000)")
    cmd.add_argument(
        "--lb-ips", type=int, default=64, help="LoadBalancer IPs per cluster, 0 for none (default 64)"
    )
    cmd.add_argument(
        "--headroom",
        type=_headroom,
        default=Fraction(2),
        help="growth factor on every count, before rounding up to a power of two (default 2; 1 = none)",
    )
    cmd.add_argument(
        "--ipv4-base",
        default=DEFAULT_IPV4_BASE,
        help=f"IPv4 range to carve from (default {DEFAULT_IPV4_BASE}: pod ranges need room, and RFC 1918's "
        "10/8 is the only private IPv4 block big enough for several clusters; the documentation ranges "
        "are /24s)",
    )
    cmd.add_argument(
        "--ipv6-base",
        default=DEFAULT_IPV6_BASE,
        help=f"IPv6 range to carve from (default {DEFAULT_IPV6_BASE}: a unique local address (ULA, RFC "
        "4193) block with global ID 0; pick a random fdXX:XXXX:XXXX::/48 of your own before networks "
        "that route to each other share it)",
    )
    cmd.add_argument(
        "--family", choices=list(FAMILIES), default="dual", help="IP families to plan (default dual)"
    )
    cmd.add_argument(
        "--ipv6-node-mask",
        type=int,
        help="prefix length of each node's IPv6 pod CIDR, e.g. 64 as kube-controller-manager's default "
        "(default: sized from --pods-per-node, as for IPv4)",
    )
    add_output(cmd, "table", "yaml")
    cmd.add_argument(
        "--check",
        metavar="FILE",
        help="instead of planning, read FILE ('-': stdin): the YAML this command prints, or any list of "
        "LoadBalancerIPPools and PodCIDRPools; exit 1 naming each pair of overlapping ranges",
    )
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        return check_file(args.check)
    try:
        names = split_list(args.names)
        if names and args.clusters not in (1, len(names)):
            raise PlanError(f"--clusters {args.clusters} but --names lists {len(names)} names")
        request = Request(
            cluster_names(args.clusters, names),
            args.nodes,
            args.pods_per_node,
            args.services,
            args.lb_ips,
            args.headroom,
            FAMILIES[args.family],
            args.ipv6_node_mask,
        )
        result = plan(request, {4: args.ipv4_base, 6: args.ipv6_base})
    except PlanError as err:
        return fail("plan", str(err))
    sys.stdout.write(render_yaml(result) if args.output == "yaml" else render_table(result))
    return EXIT_CLEAN


# ---- the plan as objects ----------------------------------------------------------------------
def service_cidrs(result: Plan, index: int) -> str:
    return ",".join(str(f.services) for f in result.clusters[index].families)


def manifests(result: Plan, index: int) -> list[Obj]:
    """The PodCIDRPool and (with --lb-ips) LoadBalancerIPPool of one cluster, as wire dicts with
    only the fields the plan sets; each is validated against its model before it is returned."""
    # The pydantic models take ~0.1 s to import: only when the command runs, not for `lbipam --help`.
    from lbipam.api import parse_resource  # noqa: PLC0415

    cluster = result.clusters[index]
    labels = {CLUSTER_LABEL: cluster.name}
    out: list[Obj] = [
        {
            "apiVersion": API_VERSION,
            "kind": "PodCIDRPool",
            "metadata": {
                "name": f"{cluster.name}-pods",
                "labels": dict(labels),
                "annotations": {SERVICE_CIDR_ANNOTATION: service_cidrs(result, index)},
            },
            "spec": {
                f"ipv{f.version}": {"cidrs": [str(f.pods)], "maskSize": f.node_mask} for f in cluster.families
            },
        }
    ]
    blocks = [{"cidr": str(f.lb)} for f in cluster.families if f.lb is not None]
    if blocks:
        meta = {"name": f"{cluster.name}-lb", "labels": dict(labels)}
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": "LoadBalancerIPPool",
                "metadata": meta,
                "spec": {"blocks": blocks},
            }
        )
    for obj in out:
        parse_resource(obj)  # raises if the plan printed something the API would refuse
    return out


def _inputs(result: Plan) -> str:
    r = result.request
    bases = ", ".join(f"{FAMILY_NAME[b.version]} base {b}" for b in result.bases)
    return (
        f"{len(r.clusters)} cluster(s) x {r.nodes} nodes x {r.pods_per_node} pods per node, "
        f"{r.services} Services, {r.lb_ips} LoadBalancer IPs, headroom {float(r.headroom):g}; {bases}"
    )


def render_yaml(result: Plan) -> str:
    out = [f"# lbipam plan: {_inputs(result)}\n"]
    for index, cluster in enumerate(result.clusters):
        out.append(
            f"# {cluster.name}: kube-apiserver --service-cluster-ip-range={service_cidrs(result, index)}\n"
        )
        for obj in manifests(result, index):
            out.append("---\n" + yaml.safe_dump(obj, sort_keys=False))
    return "".join(out)


def render_table(result: Plan) -> str:
    out = [f"{_inputs(result)}\n"]
    for base in result.bases:
        used = result.used(base.version)
        share = used * 100 // base.size
        out.append(
            f"{FAMILY_NAME[base.version]} {base}: plan uses {used} of {base.size} addresses ({share}%)\n"
        )
    rows = [
        [c.name, FAMILY_NAME[f.version], str(f.pods), f"/{f.node_mask}", str(f.services), str(f.lb or "-")]
        for c in result.clusters
        for f in c.families
    ]
    out.append("\n" + table(["CLUSTER", "FAMILY", "POD CIDR", "NODE MASK", "SERVICE CIDR", "LB RANGE"], rows))
    out.append("\nEach cluster holds at most:\n")
    for size in result.sizes:
        room = capacity(size)
        out.append(
            f"  {FAMILY_NAME[size.version]}: {room['nodes']} nodes x {room['podsPerNode']} pods, "
            f"{room['services']} Services, {room['lbIPs']} LoadBalancer IPs\n"
        )
    return "".join(out)


# ---- --check ----------------------------------------------------------------------------------
def _objects(docs: Sequence[Any]) -> Iterator[Any]:
    """The objects of a YAML stream: documents, lists of objects, and `kind: List` items."""
    for doc in docs:
        if isinstance(doc, list):
            yield from doc
        elif isinstance(doc, Mapping) and doc.get("kind") == "List":
            yield from doc.get("items") or []
        elif doc is not None:
            yield doc


def _pool(where: str, obj: Any) -> LoadBalancerIPPool | PodCIDRPool:
    """The validated model of a pool object; ValueError naming the object otherwise."""
    import pydantic  # noqa: PLC0415  # (as in `manifests`: not for `lbipam --help`)

    from lbipam.api import describe_errors, parse_resource  # noqa: PLC0415

    if not isinstance(obj, Mapping) or obj.get("kind") not in ("LoadBalancerIPPool", "PodCIDRPool"):
        kind = obj.get("kind") if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{where}: kind {kind!r} is not a LoadBalancerIPPool or PodCIDRPool")
    try:
        return cast("LoadBalancerIPPool | PodCIDRPool", parse_resource(obj))  # the kinds checked above
    except (pydantic.ValidationError, KeyError) as err:
        name = (obj.get("metadata") or {}).get("name")
        detail = "; ".join(describe_errors(err)) if isinstance(err, pydantic.ValidationError) else str(err)
        raise ValueError(f"{where} ({obj.get('kind')} {name}): {detail}") from None


def _fields(pool: LoadBalancerIPPool | PodCIDRPool) -> list[tuple[str, Block]]:
    """(field, block) of each range of a pool's spec."""
    if pool.kind == "LoadBalancerIPPool":
        return [(f"spec.blocks[{i}]", b.block()) for i, b in enumerate(pool.spec.blocks)]
    return [
        (f"spec.ipv{v}.cidrs[{i}]", b)
        for v, blocks in pool.spec.blocks_by_family().items()
        for i, b in enumerate(blocks)
    ]


def plan_ranges(docs: Sequence[Any]) -> tuple[list[NamedRange], dict[str, str]]:
    """Every range of every pool in `docs` (and each pool's service CIDR annotation), and the
    cluster of each range's owner; ValueError names an object that is not a valid pool."""
    ranges: list[NamedRange] = []
    clusters: dict[str, str] = {}
    field = f"metadata.annotations[{SERVICE_CIDR_ANNOTATION}]"
    for index, obj in enumerate(_objects(docs)):
        where = f"object {index + 1}"
        pool = _pool(where, obj)
        kind, name, owner = pool.kind, pool.metadata.name or "", str(index)
        # The service CIDR is a range of its own: compared with the pool's ranges too.
        clusters[owner] = clusters[owner + "/svc"] = (pool.metadata.labels or {}).get(CLUSTER_LABEL, "")
        ranges += [NamedRange(Ref(kind, name, field=f), b, owner) for f, b in _fields(pool)]
        for text in split_list((pool.metadata.annotations or {}).get(SERVICE_CIDR_ANNOTATION)):
            try:
                block = parse_block(text)
            except AddressError as err:
                raise ValueError(f"{where} ({kind} {name}) {field}: {err}") from None
            ranges.append(NamedRange(Ref(kind, name, field=field), block, owner + "/svc"))
    if not ranges:
        raise ValueError("holds no LoadBalancerIPPool or PodCIDRPool")
    return ranges, clusters


def check_file(path: str) -> int:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        docs = list(yaml.safe_load_all(text))
        ranges, clusters = plan_ranges(docs)
    except (OSError, yaml.YAMLError, ValueError) as err:
        return fail("plan", f"--check {path}: {err}")

    def named(r: NamedRange) -> str:
        cluster = clusters.get(r.owner)
        return f"{r.ref} {r.block}" + (f" (cluster {cluster})" if cluster else "")

    pairs = overlapping_pairs(ranges)
    for a, b in pairs:
        sys.stdout.write(f"overlap: {named(a)} overlaps {named(b)}\n")
    if pairs:
        return EXIT_FINDINGS
    pools = len({r.owner.split("/")[0] for r in ranges})
    sys.stdout.write(f"no overlaps among {len(ranges)} ranges of {pools} pools\n")
    return EXIT_CLEAN
