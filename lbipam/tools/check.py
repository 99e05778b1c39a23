"""`lbipam check`: read Services, pools and Nodes once, and report what is wrong with them.

Turns API objects into the facts of `lbipam.core.audit` (which owns the rules) and prints the
findings as a table or JSON. Exit code 1 when there is any finding, 0 when clean, 2 when the API
cannot be read or a flag is wrong. Node pod CIDRs are read where `lbipam controller
--podcidr-target` writes them (the same flag here). Wired into `lbipam.cli` as `lbipam check`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lbipam.controllers.podcidr.targets import ANNOTATIONS
from lbipam.core.addresses import AddressError, cidr_block
from lbipam.core.audit import (
    FLAG,
    LB_POOL,
    PC_POOL,
    Finding,
    NamedRange,
    NodeFacts,
    PoolFacts,
    Ref,
    ServiceFacts,
    audit,
)
from lbipam.core.lbviews import ANNOTATION_ALLOCATED_FROM, LB_CLASS, PoolView, ServiceView
from lbipam.core.pcviews import PCPoolView
from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.resources import CILIUMNODES, LBPOOLS, NODES, PODCIDRPOOLS, SERVICES, Resource
from lbipam.tools import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    add_compat,
    add_kubeconfig,
    add_output,
    crosscheck,
    fail,
    split_list,
    table,
)

if TYPE_CHECKING:
    from lbipam.k8s.client import Kube

Obj = Mapping[str, Any]
TARGETS = ("node", "node-annotations", "ciliumnode", "ciliumnode-pool", "none")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "check",
        help="find duplicate, leaked or out-of-pool assignments and overlapping ranges; exit 1 if any",
        description="Read Services, LoadBalancerIPPools, PodCIDRPools and Nodes once and report: one "
        "IP on two Services that may not share it (sharing key, namespaces, ports, "
        "externalTrafficPolicy); Service IPs in no pool; leaked allocations (a pool's status counts "
        f"more than Services or Nodes hold of it; {ANNOTATION_ALLOCATED_FROM} naming a pool that does "
        "not hold the IP); Node pod CIDRs in no PodCIDRPool or overlapping another Node's; pools "
        "overlapping each other or the cluster's --service-cidr / --pod-cidr. Every finding names the "
        "objects and fields. Exit code: 0 clean, 1 findings, 2 error.",
    )
    add_kubeconfig(cmd)
    add_output(cmd, "table", "json")
    cmd.add_argument(
        "--service-cidr",
        default="",
        help="the cluster's Service CIDRs (kube-apiserver --service-cluster-ip-range), comma-separated; "
        "pools must not overlap them (default: none, not checked)",
    )
    cmd.add_argument(
        "--pod-cidr",
        default="",
        help="the cluster's pod CIDRs (kube-controller-manager --cluster-cidr), comma-separated; "
        "LoadBalancerIPPools must not overlap them, PodCIDRPools may lie in them (default: none)",
    )
    cmd.add_argument(
        "--podcidr-target",
        choices=TARGETS,
        default="node",
        help="where Nodes' pod CIDRs are, as given to lbipam controller: node (spec.podCIDRs, default), "
        "node-annotations, ciliumnode / ciliumnode-pool (CiliumNode spec.ipam.podCIDRs), or none "
        "(skip the Node checks)",
    )
    cmd.add_argument(
        "--no-default-class",
        action="store_true",
        help=f"as lbipam controller: only Services with loadBalancerClass {LB_CLASS} are lbipam's",
    )
    add_compat(cmd)
    crosscheck.add_flags(cmd)
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.contexts:  # several clusters, and the overlaps between them
        return crosscheck.run(args)
    try:
        cluster = cluster_ranges(args.service_cidr, args.pod_cidr)
    except AddressError as err:
        return fail("check", str(err))
    return asyncio.run(_main(args, cluster))


def cluster_ranges(service_cidr: str, pod_cidr: str) -> list[NamedRange]:
    """The --service-cidr and --pod-cidr ranges; AddressError names the flag and the text."""
    ranges = []
    for flag, text in (("--service-cidr", service_cidr), ("--pod-cidr", pod_cidr)):
        for index, cidr in enumerate(split_list(text)):
            try:
                block = cidr_block(cidr)
            except AddressError as err:
                raise AddressError(f"{flag}: {err}") from None
            ranges.append(NamedRange(Ref(FLAG, flag), block, f"{flag}[{index}]"))
    return ranges


async def _main(args: argparse.Namespace, cluster: list[NamedRange]) -> int:
    # kubernetes_asyncio takes ~0.3 s to import: only when the command runs, not for `lbipam --help`.
    from lbipam.k8s.client import connect  # noqa: PLC0415

    try:
        kube = await connect(args.kubeconfig)
    except KubeError as err:
        return fail("check", str(err))
    try:
        objects = await read(kube, args.podcidr_target)
    except KubeError as err:
        return fail("check", str(err))
    finally:
        await kube.close()
    facts = gather_facts(
        objects, args.podcidr_target, default_class=not args.no_default_class, compat=args.compat
    )
    findings = audit(*facts, cluster)
    counts = {kind: len(items) for kind, items in objects.items()}
    sys.stdout.write(render_json(findings, counts) if args.output == "json" else render(findings, counts))
    return EXIT_FINDINGS if findings else EXIT_CLEAN


async def _list(kube: Kube, resource: Resource) -> list[Obj]:
    try:
        items: list[Obj] = list((await kube.list_all(resource)).items)
    except NotFound:  # a kind the API does not serve (CRD not installed): none of them
        return []
    return items


async def read(kube: Kube, target: str) -> dict[str, list[Obj]]:
    """Every object the checks read, by kind."""
    kinds = {"Service": SERVICES, LB_POOL: LBPOOLS, PC_POOL: PODCIDRPOOLS}
    if target != "none":
        kinds["Node"] = NODES
    if target.startswith("ciliumnode"):
        kinds["CiliumNode"] = CILIUMNODES
    lists = await asyncio.gather(*(_list(kube, r) for r in kinds.values()))
    return dict(zip(kinds, lists, strict=True))


# ---- API objects -> facts ---------------------------------------------------------------------
def service_facts(obj: Obj, view: ServiceView) -> ServiceFacts:
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    note = notes.get(ANNOTATION_ALLOCATED_FROM)
    pools = tuple(split_list(note)) if isinstance(note, str) else None
    return ServiceFacts(view, pools)


def _used(obj: Obj) -> dict[int, int]:
    status = obj.get("status") or {}
    used = {}
    for family in (4, 6):
        text = str((status.get(f"ipv{family}") or {}).get("used", "0"))
        used[family] = int(text) if text.isdigit() else 0
    return used


def lb_pool_facts(obj: Obj, view: PoolView) -> PoolFacts:
    """An invalid spec's pool still serves the blocks its status.accepted records."""
    ranges = tuple((f"spec.blocks[{i}]", b) for i, b in enumerate(view.blocks))
    recorded = view.recorded.blocks if view.recorded is not None and not view.valid else ()
    served = tuple((f"status.accepted.blocks[{i}]", b) for i, b in enumerate(recorded))
    return PoolFacts(LB_POOL, view.name, ranges, served, _used(obj), view.problems)


def _pc_ranges(view: PCPoolView | None, where: str) -> tuple[tuple[str, Any], ...]:
    if view is None:
        return ()
    return tuple(
        (f"{where}.ipv{v}.cidrs[{i}]", b)
        for v, family in sorted(view.families.items())
        for i, b in enumerate(family.cidrs)
    )


def pc_pool_facts(obj: Obj, view: PCPoolView, accepted: PCPoolView | None) -> PoolFacts:
    """`accepted`: the spec the pool still serves from (status.accepted), if any."""
    ranges = _pc_ranges(view, "spec") if view.valid else ()
    spec_blocks = {b for _, b in ranges}
    served = tuple((f, b) for f, b in _pc_ranges(accepted, "status.accepted") if b not in spec_blocks)
    return PoolFacts(PC_POOL, view.name, ranges, served, _used(obj), view.problems)


def node_facts(nodes: Sequence[Obj], ciliumnodes: Sequence[Obj], target: str) -> list[NodeFacts]:
    """The pod CIDRs of every node, read where `target` keeps them, with the field they are in."""
    facts = []
    if target == "node":
        for node in nodes:
            spec = node.get("spec") or {}
            cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
            fields = tuple((f"spec.podCIDRs[{i}]", str(c)) for i, c in enumerate(cidrs))
            facts.append(NodeFacts("Node", node["metadata"]["name"], fields))
    elif target == "node-annotations":
        for node in nodes:
            notes = (node.get("metadata") or {}).get("annotations") or {}
            fields = tuple(
                (f"metadata.annotations[{k}]", str(notes[k])) for k in ANNOTATIONS.values() if notes.get(k)
            )
            facts.append(NodeFacts("Node", node["metadata"]["name"], fields))
    elif target.startswith("ciliumnode"):
        for cn in ciliumnodes:
            cidrs = (((cn.get("spec") or {}).get("ipam") or {}).get("podCIDRs")) or []
            fields = tuple((f"spec.ipam.podCIDRs[{i}]", str(c)) for i, c in enumerate(cidrs))
            facts.append(NodeFacts("CiliumNode", cn["metadata"]["name"], fields))
    return facts


def gather_facts(
    objects: Mapping[str, Sequence[Obj]],
    target: str,
    *,
    default_class: bool = True,
    compat: frozenset[str] = frozenset(),
) -> tuple[list[ServiceFacts], list[PoolFacts], list[PoolFacts], list[NodeFacts]]:
    # The converters build the pydantic models (~0.1 s to import): not for `lbipam --help`.
    from lbipam.controllers.lbipam.convert import pool_view, service_view  # noqa: PLC0415
    from lbipam.controllers.podcidr.convert import accepted_view, pcpool_view  # noqa: PLC0415

    services = [
        service_facts(o, service_view(o, {}, default_class, compat))
        for o in objects.get("Service", ())
        if ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    ]
    lb = [lb_pool_facts(o, pool_view(o)) for o in objects.get(LB_POOL, ())]
    pc = [pc_pool_facts(o, pcpool_view(o), accepted_view(o)) for o in objects.get(PC_POOL, ())]
    nodes = node_facts(objects.get("Node", ()), objects.get("CiliumNode", ()), target)
    return services, lb, pc, nodes


# ---- output -----------------------------------------------------------------------------------
def _summary(findings: Sequence[Finding], counts: Mapping[str, int]) -> str:
    read = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())
    if not findings:
        return f"no findings in {read}\n"
    by_code = Counter(f.code for f in findings)
    codes = ", ".join(f"{n} {code}" for code, n in sorted(by_code.items()))
    return f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({codes}) in {read}\n"


def render(findings: Sequence[Finding], counts: Mapping[str, int]) -> str:
    if not findings:
        return _summary(findings, counts)
    rows = [[f.code, f.message] for f in findings]
    return table(["FINDING", "DETAIL"], rows) + "\n" + _summary(findings, counts)


def finding_json(finding: Finding) -> dict[str, Any]:
    def ref(r: Ref) -> dict[str, str]:
        out = {"kind": r.kind, "name": r.name, "namespace": r.namespace, "field": r.field}
        return {k: v for k, v in out.items() if v}

    return {"code": finding.code, "message": finding.message, "objects": [ref(r) for r in finding.refs]}


def render_json(findings: Sequence[Finding], counts: Mapping[str, int]) -> str:
    return (
        json.dumps({"findings": [finding_json(f) for f in findings], "checked": dict(counts)}, indent=2)
        + "\n"
    )
