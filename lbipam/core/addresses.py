"""Parsing of addresses, CIDRs and address ranges into integer blocks.

Owned by the core; used by the allocator, the pool validation and the pydantic models so that
every part of lbipam agrees on what "192.0.2.0/24" or "198.51.100.10-198.51.100.20" means, and
every error names the text at fault. `to_block` and `span` take what the allocator's callers pass
(text, netaddr objects, Blocks). Pure: no I/O.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, cast

import netaddr

Version = Literal[4, 6]

#: Address width per IP version.
BITS = {4: 32, 6: 128}


def ip_version(version: int) -> Version:
    """Narrow an int to netaddr's version literal."""
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, got {version}")
    return cast(Version, version)


class AddressError(ValueError):
    """A malformed address, CIDR or range; the message quotes the text at fault."""


@dataclass(frozen=True, order=True, slots=True)
class Block:
    """A contiguous run of addresses [first, last] of one family.

    `prefixlen` is set when the block was written as a CIDR (it decides which addresses are the
    network and broadcast addresses); it is None for a start-stop range.
    """

    first: int
    last: int
    version: int
    prefixlen: int | None = None

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def overlaps(self, other: Block) -> bool:
        return self.version == other.version and self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        if self.prefixlen is not None:
            return f"{netaddr.IPAddress(self.first, ip_version(self.version))}/{self.prefixlen}"
        start = netaddr.IPAddress(self.first, ip_version(self.version))
        stop = netaddr.IPAddress(self.last, ip_version(self.version))
        return str(start) if self.first == self.last else f"{start}-{stop}"


def parse_address(text: str) -> netaddr.IPAddress:
    """Parse one IPv4 or IPv6 address written in its usual notation (no prefix, no zone)."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise AddressError(f"{text!r} is not an IP address")
    if "/" in text or "%" in text:
        raise AddressError(f"{text!r} is not an IP address (no prefix length or zone allowed)")
    try:
        # INET_PTON: refuse the legacy forms "10.1" or "010.0.0.1" that inet_aton would accept.
        return netaddr.IPAddress(text, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise AddressError(f"{text!r} is not an IP address") from None


def parse_cidr(text: str) -> netaddr.IPNetwork:
    """Parse a CIDR such as 192.0.2.0/24. Host bits must be zero, as Kubernetes requires."""
    first, prefixlen, version = _cidr(text)
    return netaddr.IPNetwork((first, prefixlen), version=ip_version(version))


def cidr_block(text: str) -> Block:
    first, prefixlen, version = _cidr(text)
    return Block(first, first + (1 << (BITS[version] - prefixlen)) - 1, version, prefixlen)


def _cidr(text: str) -> tuple[int, int, int]:
    """(first address, prefix length, version) of a CIDR, checked; integer arithmetic only, as a
    pool may list 100,000 of them."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise AddressError(f"{text!r} is not a CIDR (expected ADDRESS/PREFIXLEN)")
    addr_text, _, len_text = text.partition("/")
    address = parse_address(addr_text)
    bits = BITS[address.version]
    if not len_text.isdigit() or not 0 <= int(len_text) <= bits or len(len_text) > 3:
        raise AddressError(f"{text!r} has an invalid prefix length (0..{bits} for IPv{address.version})")
    prefixlen = int(len_text)
    first = int(address)
    if first & ((1 << (bits - prefixlen)) - 1):
        net = netaddr.IPNetwork((first, prefixlen), version=address.version)
        raise AddressError(f"{text!r} has host bits set; did you mean {net.cidr}?")
    return first, prefixlen, address.version


def range_block(start: str, stop: str | None = None) -> Block:
    """A block from start to stop inclusive; stop defaults to start."""
    first = parse_address(start)
    last = parse_address(stop) if stop else first
    if first.version != last.version:
        raise AddressError(f"range {start}-{stop} mixes IPv{first.version} and IPv{last.version}")
    if int(first) > int(last):
        raise AddressError(f"range {start}-{stop}: start is after stop")
    return Block(int(first), int(last), first.version)


def parse_block(text: str) -> Block:
    """Parse "CIDR", "START-STOP" or a single address into a Block."""
    if not isinstance(text, str):
        raise AddressError(f"{text!r} is not an address block")
    if "/" in text:
        return cidr_block(text)
    if "-" in text:
        start, _, stop = text.partition("-")
        return range_block(start.strip(), stop.strip())
    return range_block(text)


def find_overlap(blocks: list[Block]) -> tuple[Block, Block] | None:
    """The first pair of overlapping blocks (by address), or None. O(n log n)."""
    ordered = sorted(blocks, key=lambda b: (b.version, b.first, b.last))
    for left, right in itertools.pairwise(ordered):
        if left.overlaps(right):
            return left, right
    return None


BlockSpec = str | Block | netaddr.IPNetwork | netaddr.IPRange
PrefixSpec = str | netaddr.IPNetwork | netaddr.IPAddress


def to_block(spec: BlockSpec) -> Block:
    """A Block from a Block, a netaddr network or range, or text (see `parse_block`)."""
    if isinstance(spec, Block):
        return spec
    if isinstance(spec, netaddr.IPNetwork):
        if int(spec.ip) != int(spec.network):
            raise AddressError(f"{spec} has host bits set; did you mean {spec.cidr}?")
        return Block(int(spec.first), int(spec.last), spec.version, spec.prefixlen)
    if isinstance(spec, netaddr.IPRange):
        return Block(int(spec.first), int(spec.last), spec.version)
    return parse_block(spec)


def span(prefix: PrefixSpec) -> tuple[tuple[int, int], int]:
    """((first address, version), last address) of an address or prefix."""
    if isinstance(prefix, netaddr.IPAddress):
        return (int(prefix), prefix.version), int(prefix)
    if isinstance(prefix, netaddr.IPNetwork):
        if int(prefix.ip) != int(prefix.network):
            raise AddressError(f"{prefix} has host bits set")
        return (int(prefix.first), prefix.version), int(prefix.last)
    if not isinstance(prefix, str):
        raise AddressError(f"{prefix!r} is not an address or prefix")
    if "/" in prefix:
        net = parse_cidr(prefix)
        return (int(net.first), net.version), int(net.last)
    address = parse_address(prefix)
    return (int(address), address.version), int(address)
