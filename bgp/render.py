"""ExaBGP text: the configuration from `PeerView`s and the API commands that announce routes.

The only module that writes ExaBGP syntax; pure (no I/O). Called by `bgp.driver` (commands) and
`bgp.exabgp` (configuration). Every value is re-parsed or checked before it is written, never passed
through: a newline in a community would end the command and start a second one of the user's
choosing, and ExaBGP reads its API as ASCII. So a control character, a non-ASCII character, a
malformed address, prefix or community, or a number out of range raises `RenderError`, whose
message names the field and quotes the value -- except a password, which is never quoted: it is
written as base64 (any UTF-8 text is safe there) and only its length is checked.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Sequence

from bgp.views import FAMILIES, PeerView, RouteAttributes
from lbipam.api.bgpadvertisement import check_community, check_large_community
from lbipam.core.addresses import AddressError, parse_address, parse_cidr

#: ExaBGP refuses API lines longer than this (exabgp/reactor/api/processes.py MAX_COMMAND_SIZE).
MAX_LINE = 1024 * 1024
#: The TCP MD5 key length limit of Linux and ExaBGP.
MAX_PASSWORD = 80
#: The name of the API process in the configuration.
PROCESS = "lbipam"
_UNSAFE = re.compile(r"[^\x20-\x7e]")  # anything but printable ASCII
_U32 = 2**32 - 1


class RenderError(ValueError):
    """A value that cannot be written into ExaBGP's configuration or commands."""


def safe(value: object, field: str) -> str:
    """`value` as text if it is printable ASCII; the injection guard every string goes through."""
    if not isinstance(value, str):
        raise RenderError(f"{field}: expected text, got {type(value).__name__}")
    found = _UNSAFE.search(value)
    if found:
        raise RenderError(
            f"{field}: {value[:80]!r} contains {found.group()!r} at index {found.start()}; "
            "control characters, line breaks and non-ASCII characters are not allowed"
        )
    return value


def _number(value: object, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RenderError(f"{field}: {value!r} is not a whole number in {low}..{high}")
    return value


def address(value: object, field: str) -> str:
    """A canonical IP address, re-parsed from `value`."""
    try:
        return str(parse_address(safe(value, field)))
    except AddressError as err:
        raise RenderError(f"{field}: {err}") from None


def prefix(value: object, field: str = "prefix") -> str:
    """A canonical CIDR (host bits zero), re-parsed from `value`."""
    try:
        return str(parse_cidr(safe(value, field)))
    except AddressError as err:
        raise RenderError(f"{field}: {err}") from None


def family_of(cidr: str) -> str:
    """ "ipv4-unicast" or "ipv6-unicast" for a canonical CIDR."""
    return "ipv6-unicast" if ":" in cidr else "ipv4-unicast"


def _family_words(family: str) -> str:
    if family not in FAMILIES:
        raise RenderError(f"families: {family!r} is not one of {', '.join(FAMILIES)}")
    return family.replace("-", " ")


# ----------------------------------------------------------------------------- configuration


def router_id_of(peer: PeerView, default: str | None) -> str:
    """The BGP identifier: the peer's routerID, else `default` (the node's IPv4 InternalIP), else
    an IPv4 source address."""
    where = f"BGPPeer {peer.name}"
    if peer.router_id is not None:
        candidate, field = peer.router_id, "routerID"
    elif default is not None:
        candidate, field = default, "router ID (the node's InternalIP)"
    elif peer.source is not None and ":" not in peer.source:
        candidate, field = peer.source, "sourceAddress"
    else:
        raise RenderError(
            f"{where}: routerID: none given and the node has no IPv4 InternalIP; set spec.routerID"
        )
    text = address(candidate, f"{where}: {field}")
    if ":" in text:
        raise RenderError(f"{where}: {field}: {text!r} is not an IPv4 address")
    return text


def neighbor_block(peer: PeerView, default_router_id: str | None = None) -> list[str]:
    """The `neighbor` section of one peer."""
    where = f"BGPPeer {safe(peer.name, 'BGPPeer name')}"
    peer_address = address(peer.address, f"{where}: peerAddress")
    lines = [
        f"neighbor {peer_address} {{",
        f"    router-id {router_id_of(peer, default_router_id)};",
    ]
    if peer.source is not None:
        source = address(peer.source, f"{where}: sourceAddress")
        if (":" in source) != (":" in peer_address):
            raise RenderError(f"{where}: sourceAddress: {source!r} is not of the family of {peer_address!r}")
        lines.append(f"    local-address {source};")
    lines += [
        f"    local-as {_number(peer.local_asn, f'{where}: localASN', 1, _U32)};",
        f"    peer-as {_number(peer.asn, f'{where}: peerASN', 1, _U32)};",
        f"    connect {_number(peer.port, f'{where}: peerPort', 1, 65535)};",
        f"    hold-time {_hold_time(peer.hold_time, where)};",
    ]
    if peer.multihop is not None:
        lines.append(f"    outgoing-ttl {_number(peer.multihop, f'{where}: ebgpMultihop', 1, 255)};")
    if peer.password is not None:
        lines += ["    md5-base64 true;", f'    md5-password "{_password(peer.password, where)}";']
    if peer.graceful_restart:
        restart = _number(peer.restart_time, f"{where}: gracefulRestart.restartTime", 1, 4095)
        # manual EOR: ExaBGP's own EOR would go out before the driver re-announced, and the
        # router would flush every route it kept across the restart.
        lines += ["    manual-eor true;", f"    capability {{ graceful-restart {restart}; }}"]
    if not peer.families:
        raise RenderError(f"{where}: families: at least one family is needed")
    families = " ".join(f"{_family_words(family)};" for family in peer.families)
    lines += [
        f"    family {{ {families} }}",
        # NOTIFICATIONs the router sends come up as events: what it refused, and why.
        f"    api {{ processes [ {PROCESS} ]; neighbor-changes; receive {{ parsed; notification; }} }}",
        "}",
    ]
    return lines


def _hold_time(value: object, where: str) -> int:
    hold = _number(value, f"{where}: holdTime", 0, 65535)
    if hold in (1, 2):
        raise RenderError(f"{where}: holdTime: {hold} is not allowed: use 0 or 3..65535")
    return hold


def _password(value: object, where: str) -> str:
    """The TCP MD5 key as base64 of its UTF-8 bytes: no quoting or escaping rules of ExaBGP's
    tokeniser can bite, and any character is safe. Errors name the field, never the value."""
    if not isinstance(value, str):
        raise RenderError(f"{where}: password: expected text")
    key = value.encode("utf-8", errors="replace")
    if not 1 <= len(key) <= MAX_PASSWORD:
        raise RenderError(f"{where}: password: {len(key)} bytes; TCP MD5 keys are 1..{MAX_PASSWORD} bytes")
    return base64.b64encode(key).decode()


def render_config(
    peers: Iterable[PeerView], *, python: str, relay_socket: str, default_router_id: str | None = None
) -> str:
    """The whole configuration: the relay process and one `neighbor` per peer, in the given order.

    `python` runs `-m bgp.relay relay_socket`. Peers with `problems` must be left out by the
    caller; a peer that cannot be rendered raises `RenderError` naming it.
    """
    python = _path(python, "python")
    socket_path = _path(relay_socket, "relay socket")
    lines = [
        f"process {PROCESS} {{",
        f"    run {python} -m bgp.relay {socket_path};",
        "    encoder json;",
        "}",
    ]
    seen: dict[str, str] = {}
    for peer in peers:
        block = neighbor_block(peer, default_router_id)
        key = block[0]
        if key in seen:
            raise RenderError(f"BGPPeer {peer.name}: peerAddress: already used by BGPPeer {seen[key]}")
        seen[key] = peer.name
        lines += block
    return "\n".join(lines) + "\n"


def _path(value: str, field: str) -> str:
    text = safe(value, field)
    if not text.startswith("/") or re.search(r"[\s;{}\[\]\"'#\\]", text):
        raise RenderError(f"{field}: {text!r} must be an absolute path without spaces or ExaBGP syntax")
    return text


# ----------------------------------------------------------------------------- commands


def attributes(attrs: RouteAttributes, cidr: str) -> str:
    """The attribute words of a route to `cidr` (canonical): next hop first."""
    if attrs.next_hop == "self":
        words = ["next-hop self"]
    else:
        hop = address(attrs.next_hop, f"route {cidr}: next hop")
        if (":" in hop) != (":" in cidr):
            raise RenderError(f"route {cidr}: next hop {hop!r} is not of the family of the prefix")
        words = [f"next-hop {hop}"]
    if attrs.communities:
        words.append(f"community [ {' '.join(_communities(attrs.communities, cidr))} ]")
    if attrs.large_communities:
        words.append(f"large-community [ {' '.join(_large(attrs.large_communities, cidr))} ]")
    if attrs.local_pref is not None:
        words.append(
            f"local-preference {_number(attrs.local_pref, f'route {cidr}: local preference', 0, _U32)}"
        )
    if attrs.med is not None:
        words.append(f"med {_number(attrs.med, f'route {cidr}: MED', 0, _U32)}")
    return " ".join(words)


def _communities(values: Iterable[str], cidr: str) -> Iterator[str]:
    for value in values:
        try:
            yield check_community(safe(value, f"route {cidr}: community"))
        except ValueError as err:
            raise RenderError(f"route {cidr}: community: {err}") from None


def _large(values: Iterable[str], cidr: str) -> Iterator[str]:
    for value in values:
        try:
            yield check_large_community(safe(value, f"route {cidr}: large community"))
        except ValueError as err:
            raise RenderError(f"route {cidr}: large community: {err}") from None


def announce(peer: str, cidr: str, attrs: RouteAttributes) -> str:
    """`neighbor PEER announce route CIDR next-hop ... [attributes]`."""
    target, route = address(peer, "peer address"), prefix(cidr)
    return f"neighbor {target} announce route {route} {attributes(attrs, route)}"


def withdraw(peer: str, cidr: str) -> str:
    """`neighbor PEER withdraw route CIDR`."""
    return f"neighbor {address(peer, 'peer address')} withdraw route {prefix(cidr)}"


def _chunks(head: str, prefixes: Sequence[str], limit: int) -> Iterator[str]:
    """`head nlri P1 P2 ...` lines of at most `limit` prefixes and MAX_LINE bytes each."""
    line: list[str] = []
    size = len(head) + 6
    for cidr in prefixes:
        if line and (len(line) >= limit or size + len(cidr) + 1 > MAX_LINE):
            yield f"{head} nlri {' '.join(line)}"
            line, size = [], len(head) + 6
        line.append(cidr)
        size += len(cidr) + 1
    if line:
        yield f"{head} nlri {' '.join(line)}"


def _one_family(prefixes: Iterable[str]) -> list[str]:
    routes = [prefix(cidr) for cidr in prefixes]
    if len({family_of(cidr) for cidr in routes}) > 1:
        # ExaBGP takes the family of a bulk line from its last prefix.
        raise RenderError("bulk command: IPv4 and IPv6 prefixes cannot share one line")
    return routes


def announce_bulk(peer: str, attrs: RouteAttributes, prefixes: Iterable[str], limit: int = 1000) -> list[str]:
    """`neighbor PEER announce attributes ... nlri P1 P2 ...` lines: routes of one family sharing
    `attrs`, at most `limit` prefixes a line."""
    routes = _one_family(prefixes)
    if not routes:
        return []
    head = f"neighbor {address(peer, 'peer address')} announce attributes {attributes(attrs, routes[0])}"
    return list(_chunks(head, routes, limit))


def withdraw_bulk(peer: str, prefixes: Iterable[str], limit: int = 1000) -> list[str]:
    """`neighbor PEER withdraw attributes nlri P1 P2 ...` lines (one family)."""
    routes = _one_family(prefixes)
    return list(_chunks(f"neighbor {address(peer, 'peer address')} withdraw attributes", routes, limit))


def eor(peer: str, family: str) -> str:
    """`neighbor PEER announce eor ipv4 unicast`: End-of-RIB, after a full re-announcement."""
    return f"neighbor {address(peer, 'peer address')} announce eor {_family_words(family)}"
