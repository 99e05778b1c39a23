"""What `lbipam check` looks for, as pure functions over small frozen facts. No I/O.

Findings (each names the objects and fields at fault, with a stable `code`):
- DuplicateIP: one IP on two Services that may not share it (the rules of `sharing.refusal`);
- IPOutsidePools: a handled Service's IP in no LoadBalancerIPPool;
- LeakedAllocations: a pool's `status.ipvN.used` above what Services (or Nodes) hold of its ranges;
- AllocatedFromMismatch: `lbipam.io/allocated-from` naming a missing pool, or pools that do not
  hold the Service's IP;
- NodeCIDROutsidePools, NodeCIDROverlap, InvalidNodeCIDR: Node pod CIDRs;
- PoolOverlap, ClusterCIDROverlap: ranges of two pools, or of a pool and the cluster's pod or
  service CIDRs, that overlap;
- InvalidPool: a pool whose spec does not validate (its ranges are then not checked).
The caller (`lbipam.tools.check`) turns API objects into these facts.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lbipam.core.addresses import AddressError, Block, cidr_block, parse_address
from lbipam.core.lbholdings import canonical
from lbipam.core.lbviews import ANNOTATION_ALLOCATED_FROM, ANNOTATION_SHARING_KEY, ServiceView
from lbipam.core.sharing import ALREADY_ALLOCATED, ShareInfo, refusal

LB_POOL = "LoadBalancerIPPool"
PC_POOL = "PodCIDRPool"
FLAG = "flag"  # a command-line range: --service-cidr, --pod-cidr
FAMILY = {4: "IPv4", 6: "IPv6"}


@dataclass(frozen=True, slots=True)
class Ref:
    """One object (and the field in it) that a finding is about."""

    kind: str
    name: str
    namespace: str = ""
    field: str = ""

    @property
    def object(self) -> str:
        if self.kind == FLAG:
            return self.name
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def __str__(self) -> str:
        return f"{self.object} {self.field}" if self.field else self.object


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    refs: tuple[Ref, ...]


@dataclass(frozen=True, slots=True)
class NamedRange:
    ref: Ref
    block: Block
    owner: str  # ranges of one owner are never compared with each other


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    view: ServiceView  # sharing facts, ingress, handled
    allocated_from: tuple[str, ...] | None = None  # the annotation, split; None when absent

    def ref(self, field: str = "") -> Ref:
        return Ref("Service", self.view.name, self.view.namespace, field)


@dataclass(frozen=True, slots=True)
class PoolFacts:
    kind: str  # LB_POOL | PC_POOL
    name: str
    ranges: tuple[tuple[str, Block], ...] = ()  # (field, block) of the spec
    served: tuple[tuple[str, Block], ...] = ()  # more ranges it still serves (status.accepted)
    used: Mapping[int, int] = field(default_factory=dict)  # status.ipvN.used
    problems: tuple[str, ...] = ()

    def named(self, with_served: bool = False) -> list[NamedRange]:
        ranges = self.ranges + (self.served if with_served else ())
        return [
            NamedRange(Ref(self.kind, self.name, field=f), b, f"{self.kind}/{self.name}") for f, b in ranges
        ]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    kind: str  # Node | CiliumNode
    name: str
    cidrs: tuple[tuple[str, str], ...] = ()  # (field, text)


class Coverage:
    """Which addresses a set of possibly overlapping blocks covers: merged intervals, bisected."""

    def __init__(self, blocks: Iterable[Block]) -> None:
        merged: dict[int, list[list[int]]] = {4: [], 6: []}
        for block in sorted(blocks, key=lambda b: (b.version, b.first)):
            spans = merged[block.version]
            if spans and block.first <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], block.last)
            else:
                spans.append([block.first, block.last])
        self._firsts = {v: [s[0] for s in spans] for v, spans in merged.items()}
        self._lasts = {v: [s[1] for s in spans] for v, spans in merged.items()}

    def holds(self, first: int, last: int, version: int) -> bool:
        index = bisect.bisect_right(self._firsts[version], first) - 1
        return index >= 0 and last <= self._lasts[version][index]


def count_within(points: Mapping[int, Sequence[int]], block: Block) -> int:
    """How many of the sorted `points[version]` lie in `block`."""
    values = points.get(block.version, ())
    return bisect.bisect_right(values, block.last) - bisect.bisect_left(values, block.first)


def overlapping_pairs(ranges: Iterable[NamedRange]) -> list[tuple[NamedRange, NamedRange]]:
    """Every pair of overlapping ranges of different owners, in address order (a sweep)."""
    pairs: list[tuple[NamedRange, NamedRange]] = []
    active: list[NamedRange] = []
    for current in sorted(ranges, key=lambda r: (r.block.version, r.block.first, r.block.last)):
        active = [
            a
            for a in active
            if a.block.version == current.block.version and a.block.last >= current.block.first
        ]
        pairs.extend((a, current) for a in active if a.owner != current.owner)
        active.append(current)
    return pairs


# ---- Services ---------------------------------------------------------------------------------
def _ingress(service: ServiceFacts) -> list[tuple[str, int, int]]:
    """(canonical IP, family, index) of each distinct readable ingress IP."""
    seen: dict[str, tuple[str, int, int]] = {}
    for index, text in enumerate(service.view.ingress):
        parsed = canonical(text)
        if parsed is not None and parsed[0] not in seen:
            seen[parsed[0]] = (parsed[0], parsed[1], index)
    return list(seen.values())


def _ingress_field(index: int) -> str:
    return f"status.loadBalancer.ingress[{index}].ip"


def duplicate_ips(services: Sequence[ServiceFacts]) -> list[Finding]:
    holders: dict[str, list[tuple[ServiceFacts, int]]] = {}
    for service in services:
        for ip, _, index in _ingress(service):
            holders.setdefault(ip, []).append((service, index))
    findings = []
    for ip, held in sorted(holders.items()):
        for (a, ia), (b, ib) in itertools.combinations(held, 2):
            why = refusal(ShareInfo.of(a.view), ShareInfo.of(b.view), ip)
            if why is None:
                continue
            detail = why.message
            if why.reason == ALREADY_ALLOCATED:
                keys = f"{a.view.sharing_key or '(none)'} vs {b.view.sharing_key or '(none)'}"
                detail += f" ({ANNOTATION_SHARING_KEY}: {keys})"
            refs = (a.ref(_ingress_field(ia)), b.ref(_ingress_field(ib)))
            findings.append(
                Finding("DuplicateIP", f"{ip} is on {refs[0]} and {refs[1]}: {why.reason}: {detail}", refs)
            )
    return findings


def _points(services: Sequence[ServiceFacts]) -> dict[int, list[int]]:
    found: dict[int, set[int]] = {4: set(), 6: set()}
    for service in services:
        for ip, family, _ in _ingress(service):
            found[family].add(int(parse_address(ip)))
    return {family: sorted(values) for family, values in found.items()}


def outside_pools(services: Sequence[ServiceFacts], pools: Sequence[PoolFacts]) -> list[Finding]:
    coverage = Coverage(b for pool in pools for _, b in pool.ranges + pool.served)
    findings = []
    for service in services:
        for ip, family, index in _ingress(service):
            value = int(parse_address(ip))
            if not coverage.holds(value, value, family):
                ref = service.ref(_ingress_field(index))
                findings.append(Finding("IPOutsidePools", f"{ref}: {ip} lies in no {LB_POOL}", (ref,)))
    return findings


def allocated_from(services: Sequence[ServiceFacts], pools: Sequence[PoolFacts]) -> list[Finding]:
    by_name = {pool.name: pool for pool in pools}
    field_name = f"metadata.annotations[{ANNOTATION_ALLOCATED_FROM}]"
    findings = []
    for service in services:
        if not service.allocated_from:
            continue
        ref = service.ref(field_name)
        named = [by_name[n] for n in service.allocated_from if n in by_name]
        for name in service.allocated_from:
            if name not in by_name:
                findings.append(
                    Finding(
                        "AllocatedFromMismatch", f"{ref} names {LB_POOL} {name}, which does not exist", (ref,)
                    )
                )
        if len(named) < len(service.allocated_from):
            continue  # a missing pool is the finding; its IPs cannot be placed
        coverage = Coverage(b for pool in named for _, b in pool.ranges + pool.served)
        for ip, family, index in _ingress(service):
            value = int(parse_address(ip))
            if not coverage.holds(value, value, family):
                names = ", ".join(service.allocated_from)
                message = f"{ref} is {names!r}, but no pool of these holds {ip} ({_ingress_field(index)})"
                findings.append(
                    Finding("AllocatedFromMismatch", message, (ref, service.ref(_ingress_field(index))))
                )
    return findings


def leaked(pools: Sequence[PoolFacts], points: Mapping[int, Sequence[int]], holders: str) -> list[Finding]:
    """Pools whose status counts more than `holders` hold of their ranges (`points`: the first
    address of each held IP or node CIDR, sorted per family)."""
    findings = []
    for pool in pools:
        blocks = {b for _, b in pool.ranges + pool.served}
        for family, used in sorted(pool.used.items()):
            held = sum(count_within(points, b) for b in blocks if b.version == family)
            if used > held:
                ref = Ref(pool.kind, pool.name, field=f"status.ipv{family}.used")
                unit = "addresses" if pool.kind == LB_POOL else "CIDRs"
                message = (
                    f"{ref} is {used}, but {holders} hold only {held} {FAMILY[family]} {unit} of its "
                    f"ranges: {used - held} leaked (or the controller has not caught up)"
                )
                findings.append(Finding("LeakedAllocations", message, (ref,)))
    return findings


# ---- Nodes and ranges -------------------------------------------------------------------------
def node_ranges(nodes: Sequence[NodeFacts]) -> tuple[list[NamedRange], list[Finding]]:
    ranges, findings = [], []
    for node in nodes:
        for field_name, text in node.cidrs:
            ref = Ref(node.kind, node.name, field=field_name)
            try:
                ranges.append(NamedRange(ref, cidr_block(text), f"{node.kind}/{node.name}"))
            except AddressError as err:
                findings.append(Finding("InvalidNodeCIDR", f"{ref}: {err}", (ref,)))
    return ranges, findings


def node_findings(ranges: Sequence[NamedRange], pools: Sequence[PoolFacts]) -> list[Finding]:
    findings = [
        Finding("NodeCIDROverlap", f"{a.ref} {a.block} overlaps {b.ref} {b.block}", (a.ref, b.ref))
        for a, b in overlapping_pairs(ranges)
    ]
    if pools:  # without PodCIDRPools, nodes get their CIDRs elsewhere: nothing to be outside of
        coverage = Coverage(b for pool in pools for _, b in pool.ranges + pool.served)
        for r in ranges:
            if not coverage.holds(r.block.first, r.block.last, r.block.version):
                message = f"{r.ref} {r.block} lies in no {PC_POOL}"
                findings.append(Finding("NodeCIDROutsidePools", message, (r.ref,)))
    return findings


def range_overlaps(
    lb_pools: Sequence[PoolFacts], pc_pools: Sequence[PoolFacts], cluster: Sequence[NamedRange]
) -> list[Finding]:
    """Pools against pools and against the cluster's ranges; PodCIDRPools may (and should) lie in
    the cluster's pod CIDR, so that pair alone is not compared."""
    ranges = [r for pool in [*lb_pools, *pc_pools] for r in pool.named()] + list(cluster)
    findings = []
    for a, b in overlapping_pairs(ranges):
        kinds = {a.ref.kind, b.ref.kind}
        if kinds == {PC_POOL, FLAG} and "--pod-cidr" in (a.ref.name, b.ref.name):
            continue
        code = "ClusterCIDROverlap" if FLAG in kinds else "PoolOverlap"
        findings.append(Finding(code, f"{a.ref} {a.block} overlaps {b.ref} {b.block}", (a.ref, b.ref)))
    return findings


def invalid_pools(pools: Sequence[PoolFacts]) -> list[Finding]:
    return [
        Finding(
            "InvalidPool",
            f"{Ref(p.kind, p.name)}: {'; '.join(p.problems)}",
            (Ref(p.kind, p.name, field="spec"),),
        )
        for p in pools
        if p.problems
    ]


def audit(
    services: Sequence[ServiceFacts],
    lb_pools: Sequence[PoolFacts],
    pc_pools: Sequence[PoolFacts],
    nodes: Sequence[NodeFacts],
    cluster: Sequence[NamedRange] = (),
) -> list[Finding]:
    """Every finding; `services` are those with ingress IPs, `view.handled` telling lbipam's own."""
    valid_lb = [p for p in lb_pools if not p.problems]
    serving_lb = [p for p in lb_pools if not p.problems or p.served]  # invalid: its status.accepted
    valid_pc = [p for p in pc_pools if not p.problems]
    handled = [s for s in services if s.view.handled]
    ranges, findings = node_ranges(nodes)
    node_points: dict[int, list[int]] = {
        v: sorted({r.block.first for r in ranges if r.block.version == v}) for v in (4, 6)
    }
    return [
        *invalid_pools([*lb_pools, *pc_pools]),
        *duplicate_ips(services),
        *outside_pools(handled, serving_lb),
        *allocated_from(handled, serving_lb),
        *leaked(valid_lb, _points(handled), "Services"),
        *leaked(valid_pc, node_points, "Nodes"),
        *findings,
        *node_findings(ranges, valid_pc),
        *range_overlaps(valid_lb, valid_pc, cluster),
    ]
