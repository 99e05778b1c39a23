"""Who holds which LoadBalancer IP: the book the LB-IPAM planner keeps next to the allocators.

An allocator knows an address is taken; a `Holding` also knows by which Services (several, when
they share it legally), from which pool, and whether it is an *orphan*: an address a Service
already had when the controller started that lies in no pool. Orphans are kept, reported, and
never handed out, so a restart never takes an IP away. Pure, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import netaddr

from lbipam.core.addresses import AddressError, parse_address
from lbipam.core.sharing import ShareInfo


@dataclass
class Holding:
    ip: str
    family: int
    pool: str | None  # None: an orphan, or an address whose pool went away (to be moved)
    holders: dict[str, ShareInfo] = field(default_factory=dict)
    kept: bool = False  # an orphan found at start-up: keep it until a pool takes it in
    left: str | None = None  # the pool it was in last (its reuse delay is recorded there)

    def others(self, service: str) -> list[ShareInfo]:
        return [info for key, info in self.holders.items() if key != service]


class Book:
    """Holdings by IP, the IPs of each Service, and the IPs held under each sharing key."""

    def __init__(self) -> None:
        self.holdings: dict[str, Holding] = {}
        self.services: dict[str, dict[int, str]] = {}  # service -> family -> ip
        self.by_key: dict[str, set[str]] = {}  # sharing key -> ips

    def of(self, service: str) -> dict[int, str]:
        return dict(self.services.get(service, {}))

    def join(self, holding: Holding, info: ShareInfo) -> None:
        holding.holders[info.service] = info
        self.holdings[holding.ip] = holding
        self.services.setdefault(info.service, {})[holding.family] = holding.ip
        if info.key is not None:
            self.by_key.setdefault(info.key, set()).add(holding.ip)

    def update(self, holding: Holding, info: ShareInfo) -> None:
        """Refresh a holder's sharing facts (its key may have changed)."""
        old = holding.holders.get(info.service)
        if old is not None and old.key != info.key:
            self._unindex(holding, old.key)
        self.join(holding, info)

    def leave(self, service: str, ip: str) -> Holding | None:
        """Drop `service` from `ip`; returns the holding if nobody holds the IP any more."""
        holding = self.holdings.get(ip)
        mine = self.services.get(service, {})
        for family in [f for f, held in mine.items() if held == ip]:
            del mine[family]
        if not mine:
            self.services.pop(service, None)
        if holding is None:
            return None
        info = holding.holders.pop(service, None)
        if info is not None:
            self._unindex(holding, info.key)
        if holding.holders:
            return None
        del self.holdings[ip]
        return holding

    def _unindex(self, holding: Holding, key: str | None) -> None:
        if key is None or any(i.key == key for i in holding.holders.values()):
            return
        ips = self.by_key.get(key)
        if ips is not None:
            ips.discard(holding.ip)
            if not ips:
                del self.by_key[key]

    def shared_under(self, key: str, family: int) -> list[Holding]:
        """Holdings of `family` held under sharing key `key`, lowest IP first."""
        found = [self.holdings[ip] for ip in self.by_key.get(key, ()) if ip in self.holdings]
        return sorted((h for h in found if h.family == family), key=lambda h: int(netaddr.IPAddress(h.ip)))


def canonical(text: str) -> tuple[str, int] | None:
    """(canonical text, family) of an address, or None when it is not one."""
    try:
        address = parse_address(text)
    except AddressError:
        return None
    return str(address), address.version
