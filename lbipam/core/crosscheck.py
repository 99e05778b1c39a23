"""Overlaps between clusters (`lbipam check --context A --context B ...`), as pure functions.

Each cluster contributes its ranges: LoadBalancerIPPool blocks, PodCIDRPool CIDRs, node pod
CIDRs, and its Service cluster IP range. Ranges of different clusters must not overlap (one
address, two meanings on the same network); ranges of one cluster are `lbipam check`'s business.

A node's pod CIDR inside one of its own cluster's PodCIDRPools says nothing the pool does not
already say, so only node CIDRs outside every own PodCIDRPool are compared (nodes whose CIDRs
come from elsewhere: kube-controller-manager, a CNI's own IPAM).

The Service cluster IP range: kube-apiserver serves it as ServiceCIDR objects (networking.k8s.io,
Kubernetes 1.29+); without them it is inferred from the Services' cluster IPs as the smallest CIDR
per family that holds them all. The real range holds that CIDR, so an overlap found with it is
real; one may be missed. The caller says which it used. Called by `lbipam.tools.crosscheck`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import netaddr

from lbipam.core.addresses import AddressError, Block, cidr_block, ip_version, parse_address
from lbipam.core.audit import NamedRange, Ref, overlapping_pairs

NODE_KINDS = ("Node", "CiliumNode")


@dataclass(frozen=True, slots=True)
class ClusterRange:
    cluster: str
    ref: Ref  # the object and field the range is in
    block: Block

    def __str__(self) -> str:
        return f"{self.ref} {self.block}"


@dataclass(frozen=True, slots=True)
class Overlap:
    a: ClusterRange
    b: ClusterRange

    @property
    def message(self) -> str:
        return f"{self.a.cluster}: {self.a} overlaps {self.b.cluster}: {self.b}"


def covering_cidrs(ips: Iterable[str]) -> list[Block]:
    """Per family, the smallest CIDR holding every address of `ips` (unreadable ones and "None",
    a headless Service's cluster IP, are skipped)."""
    by_family: dict[int, list[int]] = {4: [], 6: []}
    for text in ips:
        try:
            address = parse_address(text)
        except AddressError:
            continue
        by_family[address.version].append(int(address))
    out = []
    for version, values in sorted(by_family.items()):
        if not values:
            continue
        span = netaddr.spanning_cidr(
            [
                netaddr.IPAddress(min(values), ip_version(version)),
                netaddr.IPAddress(max(values), ip_version(version)),
            ]
        )
        out.append(cidr_block(str(span)))
    return out


def cluster_ips(services: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every cluster IP of the Services (spec.clusterIPs, else spec.clusterIP)."""
    found: list[str] = []
    for svc in services:
        spec = svc.get("spec")
        if not isinstance(spec, Mapping):
            continue
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        found.extend(str(ip) for ip in ips if isinstance(ips, list))
    return found


def _outside_own_pools(ranges: Sequence[ClusterRange]) -> list[ClusterRange]:
    """The ranges to compare: node CIDRs only when no PodCIDRPool of their cluster holds them."""
    pools: dict[str, list[Block]] = {}
    for r in ranges:
        if r.ref.kind == "PodCIDRPool":
            pools.setdefault(r.cluster, []).append(r.block)
    return [
        r
        for r in ranges
        if r.ref.kind not in NODE_KINDS
        or not any(
            p.version == r.block.version and p.first <= r.block.first and r.block.last <= p.last
            for p in pools.get(r.cluster, ())
        )
    ]


def overlaps(ranges: Sequence[ClusterRange]) -> list[Overlap]:
    """Every pair of overlapping ranges of two different clusters, in address order."""
    kept = _outside_own_pools(ranges)
    by_ref = {(r.cluster, r.ref, r.block): r for r in kept}
    named = [NamedRange(r.ref, r.block, r.cluster) for r in kept]
    found = []
    for a, b in overlapping_pairs(named):
        found.append(Overlap(by_ref[(a.owner, a.ref, a.block)], by_ref[(b.owner, b.ref, b.block)]))
    return found
