"""CRD-backed IPAM (Cilium's `spec.ipam.pool`): which IPs of a node's CIDR to publish. Pure.

The agent takes IPs from the published pool and lists the ones it uses in `status.ipam.used`.
The pool is kept at least `pre_allocate` free IPs above what is used, and trimmed when more than
`pre_allocate + max_above` are free; an IP in use is never removed. New IPs are the lowest free
ones of the node's CIDR (the network and broadcast addresses of an IPv4 CIDR are never handed
out); trimming gives back the highest free ones first.
"""

from __future__ import annotations

from collections.abc import Iterable

import netaddr

from lbipam.core.allocator import Allocator, AllocatorError


def pool_changes(
    cidr: str, pool: Iterable[str], used: Iterable[str], pre_allocate: int, max_above: int
) -> tuple[list[str], list[str]]:
    """(IPs to add to the pool, IPs to remove from it) for one of the node's CIDRs."""
    net = netaddr.IPNetwork(cidr)
    width = 32 if net.version == 4 else 128
    ips = Allocator([str(net.cidr)], width, reserve_network_broadcast=net.version == 4)
    published = sorted({str(netaddr.IPAddress(ip)) for ip in pool if ips.contains(ip)}, key=_int)
    in_use = {str(netaddr.IPAddress(ip)) for ip in used}
    for ip in published:
        try:
            ips.allocate("pool", ip)
        except (AllocatorError, ValueError):
            continue  # a reserved address someone published: leave it alone
    for ip in in_use - set(published):
        if ips.contains(ip):
            try:
                ips.allocate("used", ip)  # never hand out what the agent uses
            except (AllocatorError, ValueError):
                continue
    free = [ip for ip in published if ip not in in_use]
    add: list[str] = []
    while len(free) + len(add) < pre_allocate:
        try:
            add.append(str(ips.allocate("new").ip))
        except AllocatorError:
            break  # the node's CIDR is full
    excess = len(free) - (pre_allocate + max_above)
    remove = sorted(free, key=_int, reverse=True)[: max(excess, 0)]
    return add, remove


def _int(ip: str) -> int:
    return int(netaddr.IPAddress(ip))
