"""Sizing non-overlapping pod, service and LoadBalancer ranges for N clusters (`lbipam plan`). Pure.

Each count is multiplied by the headroom and rounded up to a power of two, so every range is one
CIDR: a node's pod CIDR holds `pods_per_node x headroom` addresses (and at least the pods plus 3
reserved addresses: network, gateway, broadcast), a cluster's pod range holds `nodes x headroom`
node CIDRs, the service CIDR `services x headroom` addresses and the LoadBalancer range
`lb_ips x headroom` (each at least the count plus its network and broadcast addresses). With the
default headroom of 2 and 110 pods per node this gives Kubernetes' usual /24 per node.

Layout: all ranges of one family, largest first, are laid end to end from the start of the base.
Powers of two in decreasing order are each aligned where the previous one ends, so nothing is
wasted and a plan fits exactly when the sum of its sizes fits in the base. Called by
`lbipam.tools.plan_cli`; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from lbipam.core.addresses import BITS, AddressError, Block, cidr_block

#: Addresses of a node's pod CIDR that hold no pod: network, gateway (host-local/bridge) and
#: broadcast for IPv4; the IPv6 subnet-router anycast address, gateway and last address alike.
RESERVED_PER_NODE = 3
#: A cidr block's first and last addresses are not handed out (lbipam pools without
#: allowFirstLastIPs; kube-apiserver keeps the network address of a service CIDR).
RESERVED_PER_RANGE = 2
#: kube-apiserver refuses a service CIDR of more than 2^20 addresses (/12 IPv4, /108 IPv6).
SERVICE_CIDR_MAX_BITS = 20
FAMILY_NAME = {4: "IPv4", 6: "IPv6"}
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: Object names are `<cluster>-pods` and `<cluster>-lb`: the cluster name leaves room for them.
MAX_CLUSTER_NAME = 58


class PlanError(ValueError):
    """The request cannot be planned; the message says which input and what would work."""


@dataclass(frozen=True, slots=True)
class Request:
    clusters: tuple[str, ...]
    nodes: int
    pods_per_node: int
    services: int
    lb_ips: int
    headroom: Fraction = Fraction(2)
    families: tuple[int, ...] = (4, 6)
    ipv6_node_mask: int | None = None  # None: sized from pods_per_node, as for IPv4


@dataclass(frozen=True, slots=True)
class Sizes:
    """Address counts of one cluster's ranges in one family; every one a power of two."""

    version: int
    node: int  # one node's pod CIDR
    node_slots: int  # node CIDRs in the cluster's pod range
    services: int
    lb: int  # 0: no LoadBalancer range

    @property
    def pods(self) -> int:
        return self.node * self.node_slots

    @property
    def node_mask(self) -> int:
        return BITS[self.version] - log2(self.node)

    @property
    def total(self) -> int:
        return self.pods + self.services + self.lb


@dataclass(frozen=True, slots=True)
class FamilyPlan:
    version: int
    node_mask: int
    pods: Block
    services: Block
    lb: Block | None

    def ranges(self) -> list[tuple[str, Block]]:
        named = [("pods", self.pods), ("services", self.services)]
        return named + ([("lb", self.lb)] if self.lb is not None else [])


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    name: str
    families: tuple[FamilyPlan, ...]

    def family(self, version: int) -> FamilyPlan | None:
        return next((f for f in self.families if f.version == version), None)


@dataclass(frozen=True, slots=True)
class Plan:
    request: Request
    bases: tuple[Block, ...]
    sizes: tuple[Sizes, ...]
    clusters: tuple[ClusterPlan, ...]

    def used(self, version: int) -> int:
        return sum(s.total for s in self.sizes if s.version == version) * len(self.clusters)


def log2(size: int) -> int:
    return size.bit_length() - 1


def pow2_at_least(count: int) -> int:
    """The smallest power of two >= count (1 for count <= 1)."""
    return 1 << max(count - 1, 0).bit_length()


def prefix_for(count: int, version: int) -> int:
    """The longest prefix length whose CIDR holds `count` addresses (may be negative: too many)."""
    return BITS[version] - log2(pow2_at_least(count))


def _grown(count: int, headroom: Fraction, reserved: int) -> int:
    return pow2_at_least(max(math.ceil(count * headroom), count + reserved))


def check_request(request: Request) -> None:
    """Raise PlanError naming the first input that makes no sense."""
    if not request.clusters:
        raise PlanError("--clusters: plan at least one cluster")
    for name in request.clusters:
        if not _LABEL.fullmatch(name) or len(name) > MAX_CLUSTER_NAME:
            raise PlanError(
                f"cluster name {name!r}: use lowercase letters, digits and '-' (at most "
                f"{MAX_CLUSTER_NAME} characters); it starts the names of the pools"
            )
    if len(set(request.clusters)) != len(request.clusters):
        raise PlanError(f"cluster names must differ: {', '.join(request.clusters)}")
    for flag, value, least in (
        ("--nodes", request.nodes, 1),
        ("--pods-per-node", request.pods_per_node, 1),
        ("--services", request.services, 1),
        ("--lb-ips", request.lb_ips, 0),
    ):
        if value < least:
            raise PlanError(f"{flag} {value}: must be at least {least}")
    if request.headroom < 1:
        raise PlanError(f"--headroom {float(request.headroom):g}: must be at least 1 (1 = no headroom)")
    if not request.families or set(request.families) - {4, 6}:
        raise PlanError(f"families {request.families}: plan IPv4 (4), IPv6 (6) or both")
    mask = request.ipv6_node_mask
    if mask is not None and not 1 <= mask <= 128:
        raise PlanError(f"--ipv6-node-mask {mask}: must be 1 to 128")


def sizes(request: Request, version: int) -> Sizes:
    """The sizes of one cluster's ranges in `version`; PlanError when Kubernetes cannot take them."""
    headroom, name = request.headroom, FAMILY_NAME[version]
    node = _grown(request.pods_per_node, headroom, RESERVED_PER_NODE)
    if version == 6 and request.ipv6_node_mask is not None:
        node = 1 << (128 - request.ipv6_node_mask)
        if node < request.pods_per_node + RESERVED_PER_NODE:
            least = prefix_for(request.pods_per_node + RESERVED_PER_NODE, 6)
            raise PlanError(
                f"--ipv6-node-mask {request.ipv6_node_mask}: a /{request.ipv6_node_mask} holds "
                f"{node} addresses, fewer than {request.pods_per_node} pods and {RESERVED_PER_NODE} "
                f"reserved; use /{least} or shorter"
            )
    services = _grown(request.services, headroom, RESERVED_PER_RANGE)
    if services > 1 << SERVICE_CIDR_MAX_BITS:
        raise PlanError(
            f"--services {request.services} with headroom {float(headroom):g} needs an {name} service "
            f"CIDR of {services} addresses; kube-apiserver allows at most {1 << SERVICE_CIDR_MAX_BITS} "
            f"(/{BITS[version] - SERVICE_CIDR_MAX_BITS}): plan fewer Services per cluster"
        )
    lb = _grown(request.lb_ips, headroom, RESERVED_PER_RANGE) if request.lb_ips else 0
    slots = pow2_at_least(math.ceil(request.nodes * headroom))
    return Sizes(version, node, slots, services, lb)


def _base(text: str, version: int) -> Block:
    try:
        base = cidr_block(text)
    except AddressError as err:
        raise PlanError(f"--ipv{version}-base: {err}") from None
    if base.version != version:
        raise PlanError(f"--ipv{version}-base {text}: not an {FAMILY_NAME[version]} CIDR")
    return base


def _fits(base: Block, need: int, clusters: int) -> None:
    if need <= base.size:
        return
    least = prefix_for(need, base.version)
    bigger = f"a /{least} or larger" if least >= 0 else "more than the whole address space"
    raise PlanError(
        f"--ipv{base.version}-base {base} holds {base.size} addresses; {clusters} cluster(s) need "
        f"{need}: use {bigger}, or fewer clusters, nodes or a smaller --headroom"
    )


def _lay_out(base: Block, size: Sizes, clusters: int) -> list[dict[str, Block]]:
    """Per cluster, kind -> Block: every range of the family, largest first, end to end."""
    kinds = [("pods", size.pods), ("services", size.services), ("lb", size.lb)]
    wanted = sorted(
        (
            (amount, order, index, kind)
            for index in range(clusters)
            for order, (kind, amount) in enumerate(kinds)
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    laid: list[dict[str, Block]] = [{} for _ in range(clusters)]
    cursor = base.first
    for amount, _, index, kind in wanted:
        if amount == 0:
            continue
        prefixlen = BITS[base.version] - log2(amount)
        laid[index][kind] = Block(cursor, cursor + amount - 1, base.version, prefixlen)
        cursor += amount
    return laid


def plan(request: Request, bases: Mapping[int, str]) -> Plan:
    """Ranges for every cluster in every family of the request, from `bases` ({4: CIDR, 6: CIDR})."""
    check_request(request)
    count = len(request.clusters)
    parsed, all_sizes, per_family = [], [], []
    for version in sorted(set(request.families)):
        if version not in bases:
            raise PlanError(f"no --ipv{version}-base given")
        base = _base(bases[version], version)
        size = sizes(request, version)
        _fits(base, size.total * count, count)
        parsed.append(base)
        all_sizes.append(size)
        per_family.append((size, _lay_out(base, size, count)))
    clusters = tuple(
        ClusterPlan(
            name,
            tuple(
                FamilyPlan(
                    size.version, size.node_mask, laid[i]["pods"], laid[i]["services"], laid[i].get("lb")
                )
                for size, laid in per_family
            ),
        )
        for i, name in enumerate(request.clusters)
    )
    return Plan(request, tuple(parsed), tuple(all_sizes), clusters)


def capacity(size: Sizes) -> dict[str, int]:
    """What one cluster's ranges hold for use: nodes, pods per node, Services, LoadBalancer IPs."""
    return {
        "nodes": size.node_slots,
        "podsPerNode": size.node - RESERVED_PER_NODE,
        "services": size.services - RESERVED_PER_RANGE,
        "lbIPs": max(size.lb - RESERVED_PER_RANGE, 0),
    }


def cluster_names(count: int, names: Sequence[str] = ()) -> tuple[str, ...]:
    """`names` if given, else cluster-1 .. cluster-N."""
    return tuple(names) if names else tuple(f"cluster-{i}" for i in range(1, count + 1))
