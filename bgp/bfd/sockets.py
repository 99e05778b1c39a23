"""The UDP sockets of BFD: where packets come in (with their TTL) and go out (with TTL 255).

- `receiver(local, port)`: bound to the local address on 3784 (single hop, RFC 5881) or 4784
  (multihop, RFC 5883), asking the kernel for each packet's TTL / hop limit.
- `sender(local)`: bound to the local address and a source port in 49152-65535 (RFC 5881
  section 4: one port per session, kept for its life), sending with TTL / hop limit 255 and the
  network-control traffic class.
- `read(sock)`: one datagram, its source and its TTL.
- `local_address_toward(peer)`: the address the kernel would send from (a route lookup, no
  packet).
Linux only (the TTL option numbers are Linux's). Called by `bgp.bfd.engine`.
"""

from __future__ import annotations

import errno
import random
import socket
import struct

SINGLE_HOP_PORT = 3784
MULTIHOP_PORT = 4784
SOURCE_PORTS = (49152, 65535)
MAX_TTL = 255
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux; absent from Python's socket module
_CS6 = 0xC0  # DSCP CS6, network control: the class routers give their own protocols
_BUFFER = 512  # a Control packet is 24 bytes (up to ~60 with authentication)


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def receiver(local: str, port: int) -> socket.socket:
    """A non-blocking socket receiving BFD on `local`:`port`, TTL reported with each packet."""
    family = _family(local)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sock.bind((local, port))
    except BaseException:
        sock.close()
        raise
    return sock


def sender(local: str, ports: tuple[int, int] = SOURCE_PORTS) -> socket.socket:
    """A non-blocking socket sending from `local` and a free port in `ports`, TTL 255."""
    family = _family(local)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, MAX_TTL)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _CS6)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, MAX_TTL)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _CS6)
        _bind_source_port(sock, local, ports)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_source_port(sock: socket.socket, local: str, ports: tuple[int, int]) -> None:
    low, high = ports
    start = random.randint(low, high)  # spreads sessions over the range
    span = high - low + 1
    for step in range(span):
        try:
            sock.bind((local, low + (start - low + step) % span))
            return
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free source port in {low}-{high} on {local}")


def read(sock: socket.socket) -> tuple[bytes, str, int | None] | None:
    """One datagram: (data, source address, TTL or hop limit); None when nothing is waiting."""
    try:
        data, ancillary, _flags, source = sock.recvmsg(_BUFFER, socket.CMSG_SPACE(4))
    except (BlockingIOError, InterruptedError):
        return None
    ttl = None
    for level, kind, value in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            ttl = struct.unpack("=i", value[:4])[0] if len(value) >= 4 else value[0]
    return data, str(source[0]), ttl


def local_address_toward(peer: str) -> str:
    """The source address the kernel picks for `peer` (a UDP connect sends nothing)."""
    with socket.socket(_family(peer), socket.SOCK_DGRAM) as sock:
        sock.connect((peer, SINGLE_HOP_PORT))
        return str(sock.getsockname()[0])
