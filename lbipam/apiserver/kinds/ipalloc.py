"""Service cluster IPs and node ports: what the real server allocates when a Service is written.

`IPRange` hands out addresses of one service CIDR (not the network address, the broadcast address
of an IPv4 range, nor the first address, which the real cluster gives its `kubernetes` Service);
`PortRange` hands out node ports (30000-32767). Both remember the owner of every value, so a
Service re-requesting what it already holds is no conflict, and both scan from a moving cursor so
that allocation stays cheap while the range fills. Used by `services.py`; the state is rebuilt from
the stored Services at start-up.
"""

from __future__ import annotations

import contextlib
import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Exhausted(Exception):
    pass


class _Range:
    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.owners: dict[int, str] = {}
        self._cursor = first

    def claim(self, value: int, owner: str) -> str | None:
        """Take `value` for `owner`; the reason it cannot be taken, or None."""
        if not self.first <= value <= self.last:
            return "out of range"
        holder = self.owners.get(value)
        if holder is not None and holder != owner:
            return "provided IP is already allocated"
        self.owners[value] = owner
        return None

    def next_free(self, owner: str) -> int:
        size = self.last - self.first + 1
        if len(self.owners) >= size:
            raise Exhausted()
        value = self._cursor
        while value in self.owners:
            value = value + 1 if value < self.last else self.first
        self.owners[value] = owner
        self._cursor = value + 1 if value < self.last else self.first
        return value

    def release(self, value: int, owner: str) -> None:
        if self.owners.get(value) == owner:
            del self.owners[value]


class IPRange:
    """The addresses of one service CIDR."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        first = int(self.network.network_address) + 2  # .0 is the network, .1 the kubernetes Service
        last = int(self.network.broadcast_address) - (1 if self.network.version == 4 else 0)
        self._range = _Range(first, last)

    @property
    def family(self) -> str:
        return f"IPv{self.network.version}"

    def contains(self, ip: Address) -> bool:
        return ip.version == self.network.version and ip in self.network

    def claim(self, ip: Address, owner: str) -> str | None:
        if not self.contains(ip):
            return (
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.network}"
            )
        problem = self._range.claim(int(ip), owner)
        if problem == "out of range":
            return (
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {self.network}"
            )
        return problem

    def allocate(self, owner: str) -> str:
        try:
            value = self._range.next_free(owner)
        except Exhausted:
            raise Exhausted(f"range is full: {self.network}") from None
        return str(ipaddress.ip_address(value))

    def release(self, ip: str, owner: str) -> None:
        with contextlib.suppress(ValueError):
            self._range.release(int(ipaddress.ip_address(ip)), owner)


class PortRange:
    """Node ports, 30000-32767 by default."""

    def __init__(self, first: int = 30000, last: int = 32767) -> None:
        self.first, self.last = first, last
        self._range = _Range(first, last)

    def claim(self, port: int, owner: str) -> str | None:
        problem = self._range.claim(port, owner)
        if problem == "out of range":
            valid = f"{self.first}-{self.last}"
            return f"provided port is not in the valid range. The range of valid ports is {valid}"
        if problem is not None:
            return "provided port is already allocated"
        return None

    def allocate(self, owner: str) -> int:
        try:
            return self._range.next_free(owner)
        except Exhausted:
            raise Exhausted(f"range is full: {self.first}-{self.last}") from None

    def release(self, port: int, owner: str) -> None:
        self._range.release(port, owner)
