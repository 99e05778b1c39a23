"""`lbipam check --context A --context B ...`: `lbipam check` on each cluster, and overlaps between
them (LB pools, PodCIDR pools, node pod CIDRs, Service cluster IP ranges).

`--context` (repeatable) names a cluster as `CONTEXT` (a context of the kubeconfig given by
`--kubeconfig`, else $KUBECONFIG) or `KUBECONFIG=CONTEXT` (a context of that file; `KUBECONFIG=`
alone: its current context). `=` separates them because context names often hold `:` and `@`
(EKS ARNs, `admin@cluster`). A cluster is shown by its context name, or `KUBECONFIG=CONTEXT` when
two share a name. Each cluster is read once through `lbipam.k8s`; its Service cluster IP range
comes from its ServiceCIDR objects (networking.k8s.io v1, else v1beta1) when the API serves them,
else it is inferred from the Services' cluster IPs (`lbipam.core.crosscheck`), and the output
says which. Exit code: 0 clean, 1 any finding or overlap, 2 a cluster cannot be read.
Wired into `lbipam check` by `lbipam.tools.check`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbipam.core.addresses import AddressError, Block, cidr_block
from lbipam.core.audit import FLAG, Finding, NamedRange, Ref, audit
from lbipam.core.crosscheck import ClusterRange, Overlap, cluster_ips, covering_cidrs, overlaps
from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.resources import Resource
from lbipam.tools import EXIT_CLEAN, EXIT_FINDINGS, fail, table

Obj = Mapping[str, Any]
SERVICE_CIDRS = [
    Resource("networking.k8s.io", version, "servicecidrs", "ServiceCIDR", namespaced=False)
    for version in ("v1", "v1beta1")
]


def add_flags(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--context",
        dest="contexts",
        action="append",
        default=[],
        metavar="[KUBECONFIG=]CONTEXT",
        help="check several clusters and the overlaps between them: a context of --kubeconfig "
        "(else $KUBECONFIG), or KUBECONFIG=CONTEXT for a context of another file (KUBECONFIG= for its "
        "current context); repeat it for each cluster",
    )


@dataclass(frozen=True)
class Target:
    """One cluster to read: a kubeconfig (None: the default one) and a context (None: current)."""

    kubeconfig: str | None
    context: str | None
    name: str


def targets(values: Sequence[str], default_kubeconfig: str | None) -> list[Target]:
    """The clusters of the --context values; ValueError for an empty or repeated one."""
    parsed: list[tuple[str | None, str | None]] = []
    for value in values:
        if "=" in value:
            path, _, name = value.partition("=")
            if not path:
                raise ValueError(f"--context {value!r}: the kubeconfig before '=' is empty")
            parsed.append((path, name or None))
        elif value:
            parsed.append((default_kubeconfig, value))
        else:
            raise ValueError("--context: an empty context name")
    if len(set(parsed)) != len(parsed):
        raise ValueError("--context: a cluster is named twice")
    counts = Counter(context for _, context in parsed)
    out = []
    for kubeconfig, context in parsed:
        shown = context or "(current)"
        unique = context is not None and counts[context] == 1
        out.append(Target(kubeconfig, context, shown if unique else f"{kubeconfig or '$KUBECONFIG'}={shown}"))
    return out


@dataclass
class ClusterRead:
    target: Target
    objects: dict[str, list[Obj]] = field(default_factory=dict)
    service_cidrs: list[Block] = field(default_factory=list)
    service_source: str = "none"  # ServiceCIDR | inferred | none


async def _service_cidrs(kube: Any) -> list[Obj] | None:
    for resource in SERVICE_CIDRS:
        try:
            return list((await kube.list_all(resource)).items)
        except NotFound:
            continue
    return None


async def read_cluster(target: Target, podcidr_target: str) -> ClusterRead:
    from lbipam.k8s.client import connect  # noqa: PLC0415  # ~0.3 s to import: not for --help
    from lbipam.tools.check import read  # noqa: PLC0415

    kube = await connect(target.kubeconfig or os.environ.get("KUBECONFIG") or None, context=target.context)
    try:
        objects, served = await asyncio.gather(read(kube, podcidr_target), _service_cidrs(kube))
    finally:
        await kube.close()
    result = ClusterRead(target, objects)
    if served:
        result.service_source = "ServiceCIDR"
        for obj in served:
            for text in (obj.get("spec") or {}).get("cidrs") or []:
                try:
                    result.service_cidrs.append(cidr_block(str(text)))
                except AddressError:
                    continue
    else:
        result.service_cidrs = covering_cidrs(cluster_ips(objects.get("Service", [])))
        result.service_source = "inferred" if result.service_cidrs else "none"
    return result


def _service_ref(read: ClusterRead) -> Ref:
    if read.service_source == "ServiceCIDR":
        return Ref("ServiceCIDR", "*", field="spec.cidrs")
    return Ref("Services", "*", field="spec.clusterIPs (range inferred)")


def cluster_ranges(read: ClusterRead, facts: tuple[Any, Any, Any, Any]) -> list[ClusterRange]:
    """The ranges of one cluster, from the facts `lbipam check` gathered and its service range."""
    _, lb_pools, pc_pools, nodes = facts
    name = read.target.name
    out = [
        ClusterRange(name, r.ref, r.block)
        for pool in [*lb_pools, *pc_pools]
        if not pool.problems
        for r in pool.named(True)
    ]
    for node in nodes:
        for field_name, text in node.cidrs:
            try:
                out.append(ClusterRange(name, Ref(node.kind, node.name, field=field_name), cidr_block(text)))
            except AddressError:
                continue  # reported by the cluster's own check
    out.extend(ClusterRange(name, _service_ref(read), block) for block in read.service_cidrs)
    return out


def check_all(
    reads: Sequence[ClusterRead],
    podcidr_target: str,
    default_class: bool,
    compat: frozenset[str] = frozenset(),
) -> tuple[dict[str, list[Finding]], list[Overlap]]:
    """Each cluster's own findings, and the overlaps between clusters."""
    from lbipam.tools.check import gather_facts  # noqa: PLC0415  # pydantic models: not for --help

    findings: dict[str, list[Finding]] = {}
    ranges: list[ClusterRange] = []
    for read in reads:
        facts = gather_facts(read.objects, podcidr_target, default_class=default_class, compat=compat)
        service_ranges = [
            NamedRange(Ref(FLAG, f"{read.service_source} service range"), b, f"service-{i}")
            for i, b in enumerate(read.service_cidrs)
        ]
        findings[read.target.name] = audit(*facts, service_ranges)
        ranges.extend(cluster_ranges(read, facts))
    return findings, overlaps(ranges)


async def _read_all(found: Sequence[Target], podcidr_target: str) -> list[ClusterRead]:
    return list(await asyncio.gather(*(read_cluster(t, podcidr_target) for t in found)))


def run(args: argparse.Namespace) -> int:
    if args.service_cidr or args.pod_cidr:
        return fail("check", "--service-cidr and --pod-cidr name one cluster's ranges: not with --context")
    try:
        found = targets(args.contexts, args.kubeconfig)
        reads = asyncio.run(_read_all(found, args.podcidr_target))
    except (ValueError, KubeError) as err:
        return fail("check", str(err))
    findings, between = check_all(reads, args.podcidr_target, not args.no_default_class, args.compat)
    render = render_json if args.output == "json" else render_table
    sys.stdout.write(render(reads, findings, between))
    return EXIT_FINDINGS if between or any(findings.values()) else EXIT_CLEAN


# ---- output -----------------------------------------------------------------------------------
def _source(read: ClusterRead) -> str:
    if read.service_source == "ServiceCIDR":
        return "ServiceCIDRs"
    if read.service_source == "inferred":
        return "inferred from Service cluster IPs"
    return "unknown (no ServiceCIDR, no cluster IP)"


def render_table(
    reads: Sequence[ClusterRead], findings: dict[str, list[Finding]], between: Sequence[Overlap]
) -> str:
    out = []
    rows = [[cluster, f.code, f.message] for cluster, items in findings.items() for f in items]
    if rows:
        out.append(table(["CLUSTER", "FINDING", "DETAIL"], rows) + "\n")
    if between:
        pairs = [[o.a.cluster, str(o.a), o.b.cluster, str(o.b)] for o in between]
        out.append(table(["CLUSTER", "RANGE", "CLUSTER", "OVERLAPS RANGE"], pairs) + "\n")
    names = ", ".join(
        f"{r.target.name} ({', '.join(map(str, r.service_cidrs)) or '-'}: {_source(r)})" for r in reads
    )
    total = sum(len(items) for items in findings.values())
    out.append(
        f"{len(between)} overlap{'s' if len(between) != 1 else ''} between clusters, {total} finding"
        f"{'s' if total != 1 else ''} within them; service ranges: {names}\n"
    )
    return "".join(out)


def _range_json(r: ClusterRange) -> dict[str, str]:
    ref = {"kind": r.ref.kind, "name": r.ref.name, "field": r.ref.field}
    return {"cluster": r.cluster, **{k: v for k, v in ref.items() if v}, "range": str(r.block)}


def render_json(
    reads: Sequence[ClusterRead], findings: dict[str, list[Finding]], between: Sequence[Overlap]
) -> str:
    from lbipam.tools.check import finding_json  # noqa: PLC0415

    clusters = [
        {
            "name": r.target.name,
            "kubeconfig": r.target.kubeconfig,
            "context": r.target.context,
            "serviceCIDRs": {"source": r.service_source, "cidrs": [str(b) for b in r.service_cidrs]},
            "findings": [finding_json(f) for f in findings[r.target.name]],
        }
        for r in reads
    ]
    overlaps_out = [{"a": _range_json(o.a), "b": _range_json(o.b)} for o in between]
    return json.dumps({"clusters": clusters, "overlaps": overlaps_out}, indent=2) + "\n"
