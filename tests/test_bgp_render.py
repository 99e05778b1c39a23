"""bgp.render: ExaBGP configuration and commands, byte for byte against golden files, checked by
ExaBGP's own `exabgp validate`, and every way a bad value is refused (the injection guard).

Regenerate the golden files after an intended change with LBIPAM_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgp import render
from bgp.render import MAX_LINE, RenderError
from bgp.views import PeerView, RouteAttributes

GOLDEN = Path(__file__).parent / "data" / "exabgp"
PYTHON = "/usr/bin/python3"
SOCKET = "/run/lbipam/exabgp/api.sock"

PEERS = [
    PeerView(
        name="tor-a", address="192.0.2.1", asn=64512, local_asn=64513, source="192.0.2.10",
        router_id="192.0.2.10", hold_time=30, multihop=2, password='pa"ss; word}',
        graceful_restart=True, restart_time=90,
    ),
    PeerView(name="tor-v6", address="2001:DB8::1", asn=65000, local_asn=65000, port=1179, hold_time=0,
             families=("ipv6-unicast",)),
    PeerView(name="plain", address="198.51.100.1", asn=4200000000, local_asn=64513),
]  # fmt: skip

TAGGED = RouteAttributes("self", ("64512:100", "no-export"), ("64512:1:1", "64512:2:3"), 200, 50)
COMMANDS = [
    render.announce("192.0.2.1", "192.0.2.10/32", TAGGED),
    render.announce("192.0.2.1", "192.0.2.11/32", RouteAttributes("self")),
    render.announce("2001:db8::1", "2001:DB8::10/128", RouteAttributes("2001:db8::fe", med=0)),
    render.withdraw("192.0.2.1", "192.0.2.10/32"),
    *render.announce_bulk("192.0.2.1", TAGGED, ["198.51.100.0/24", "203.0.113.7/32"]),
    *render.withdraw_bulk("2001:db8::1", ["2001:db8::/64", "2001:db8::10/128"]),
    render.eor("192.0.2.1", "ipv4-unicast"),
    render.eor("2001:db8::1", "ipv6-unicast"),
]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LBIPAM_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"


def test_config_matches_golden() -> None:
    config = render.render_config(PEERS, python=PYTHON, relay_socket=SOCKET, default_router_id="192.0.2.99")
    golden("peers.conf", config)


def test_config_without_peers_matches_golden() -> None:
    golden("empty.conf", render.render_config([], python=PYTHON, relay_socket=SOCKET))


def test_commands_match_golden() -> None:
    golden("commands.txt", "\n".join(COMMANDS) + "\n")


@pytest.mark.parametrize("name", ["peers.conf", "empty.conf"])
def test_exabgp_accepts_the_golden_config(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", str(GOLDEN / name)],
        capture_output=True, text=True, check=False, env={**os.environ, "exabgp_api_cli": "false"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_password_is_written_in_base64() -> None:
    block = render.neighbor_block(PEERS[0])
    assert "    md5-base64 true;" in block
    assert '    md5-password "cGEic3M7IHdvcmR9";' in block  # base64 of pa"ss; word}


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("pässwörd", id="non-ascii"),
        pytest.param("pw\nneighbor 0.0.0.0 {", id="newline"),
        pytest.param("密码🔑", id="cjk-and-emoji"),
    ],
)
def test_any_password_is_written_as_base64_of_its_utf8_bytes(password: str) -> None:
    block = "\n".join(render.neighbor_block(dataclasses.replace(PEERS[0], password=password)))
    encoded = base64.b64encode(password.encode()).decode()
    assert f'    md5-password "{encoded}";' in block
    assert password not in block  # and nothing of it as written: the config holds base64 only


@pytest.mark.parametrize("password", ["x" * 81, "ä" * 41], ids=["ascii", "non-ascii"])
def test_a_refused_password_is_never_quoted(password: str) -> None:
    with pytest.raises(RenderError) as refused:
        render.neighbor_block(dataclasses.replace(PEERS[0], password=password))
    assert "password: " in str(refused.value)
    assert "bytes" in str(refused.value)
    assert password[:4] not in str(refused.value)


def test_router_id_falls_back_to_the_default_then_an_ipv4_source() -> None:
    peer = PeerView(name="p", address="192.0.2.1", asn=1, local_asn=2, source="192.0.2.5")
    assert render.router_id_of(peer, "198.51.100.9") == "198.51.100.9"
    assert render.router_id_of(peer, None) == "192.0.2.5"
    with pytest.raises(RenderError, match="BGPPeer p: routerID: none given"):
        render.router_id_of(PeerView(name="p", address="2001:db8::1", asn=1, local_asn=2), None)


def peer(**changes: object) -> PeerView:
    fields: dict[str, object] = {
        "name": "p",
        "address": "192.0.2.1",
        "asn": 1,
        "local_asn": 2,
        "router_id": "192.0.2.2",
    }
    return PeerView(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("view", "message"),
    [
        pytest.param(peer(address="192.0.2.1\n"), r"peerAddress: .*'\\n'", id="newline-in-address"),
        pytest.param(
            peer(address="192.0.2.1/32"), "peerAddress: .*not an IP address", id="prefix-as-address"
        ),
        pytest.param(peer(source="2001:db8::1"), "sourceAddress: .*not of the family", id="source-family"),
        pytest.param(peer(router_id="2001:db8::1"), "routerID: .*not an IPv4", id="ipv6-router-id"),
        pytest.param(peer(asn=0), "peerASN: 0 is not a whole number in 1..4294967295", id="asn-zero"),
        pytest.param(peer(local_asn=2**32), "localASN", id="asn-too-big"),
        pytest.param(peer(asn=True), "peerASN: True", id="bool-is-not-a-number"),
        pytest.param(peer(port=0), "peerPort", id="port-zero"),
        pytest.param(peer(hold_time=2), "holdTime: 2 is not allowed", id="hold-time-2"),
        pytest.param(peer(multihop=256), "ebgpMultihop", id="ttl-too-big"),
        pytest.param(peer(password="x" * 81), "password: 81 bytes", id="password-too-long"),
        pytest.param(peer(families=()), "families: at least one", id="no-family"),
        pytest.param(peer(families=("l2vpn-evpn",)), "families: 'l2vpn-evpn'", id="unknown-family"),
        pytest.param(peer(graceful_restart=True, restart_time=4096), "restartTime", id="restart-time"),
        pytest.param(peer(name="p\n}"), r"BGPPeer name: .*'\\n'", id="newline-in-name"),
    ],
)
def test_bad_peers_are_refused(view: PeerView, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render.render_config([view], python=PYTHON, relay_socket=SOCKET)


def test_two_peers_with_one_address_are_refused() -> None:
    with pytest.raises(RenderError, match="BGPPeer b: peerAddress: already used by BGPPeer a"):
        render.render_config([peer(name="a"), peer(name="b")], python=PYTHON, relay_socket=SOCKET)


@pytest.mark.parametrize("path", ["relative/sock", "/tmp/a b", "/tmp/x;y", "/tmp/x\n"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(RenderError):
        render.render_config([], python=PYTHON, relay_socket=path)


V4 = "192.0.2.1/32"


def attrs(
    next_hop: str, communities: tuple[str, ...] = (), large: tuple[str, ...] = (), **more: int
) -> RouteAttributes:
    return RouteAttributes(next_hop, communities, large, **more)  # type: ignore[arg-type]


INJECTED = "64512:1\nannounce route 0.0.0.0/0 next-hop self"


@pytest.mark.parametrize(
    ("cidr", "attrs", "message"),
    [
        pytest.param(V4, attrs("self", (INJECTED,)), r"community: .*'\\n'", id="newline-in-community"),
        pytest.param(
            V4,
            attrs("self", ("announce route 0.0.0.0/0",)),
            "not a community",
            id="command-as-community",
        ),
        pytest.param(V4, attrs("self", ("65536:1",)), "not a community", id="community-range"),
        pytest.param(V4, attrs("self", ("graceful-shutdown",)), "write '65535:0'", id="unknown-name"),
        pytest.param(
            V4,
            attrs("self", large=("1:2:3\x00",)),
            r"'\\x00'",
            id="nul-in-large-community",
        ),
        pytest.param(
            V4,
            attrs("self", large=("1:2",)),
            "not a large community",
            id="large-too-short",
        ),
        pytest.param(V4, attrs("self", local_pref=-1), "local preference", id="local-pref"),
        pytest.param(V4, attrs("self", med=2**32), "MED", id="med-range"),
        pytest.param(V4, attrs("2001:db8::1"), "not of the family", id="next-hop-family"),
        pytest.param(V4, attrs("self\nshutdown"), r"next hop: .*'\\n'", id="next-hop-newline"),
        pytest.param("192.0.2.1/24", attrs("self"), "host bits", id="host-bits"),
        pytest.param(V4 + " next-hop self\nshutdown", attrs("self"), r"'\\n'", id="prefix-newline"),
        pytest.param("0.0.0.0/0\u2028", attrs("self"), "u2028", id="unicode-line-separator"),
    ],
)
def test_bad_routes_are_refused(cidr: str, attrs: RouteAttributes, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render.announce("192.0.2.1", cidr, attrs)


def test_bulk_lines_stay_under_a_mebibyte_and_one_family() -> None:
    prefixes = [f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64" for i in range(60_000)]
    lines = render.withdraw_bulk("192.0.2.1", prefixes, limit=100_000)
    assert len(lines) > 1
    assert all(len(line) <= MAX_LINE for line in lines)
    assert sum(len(line.split(" nlri ")[1].split()) for line in lines) == len(prefixes)
    with pytest.raises(RenderError, match="cannot share one line"):
        render.announce_bulk("192.0.2.1", RouteAttributes("self"), ["192.0.2.1/32", "2001:db8::1/128"])


@given(st.text(max_size=40))
def test_no_community_text_ever_makes_a_second_line(text: str) -> None:
    """Whatever the text, the result is one printable ASCII line or a RenderError."""
    for attrs in (RouteAttributes("self", (text,)), RouteAttributes("self", large_communities=(text,))):
        try:
            line = render.announce("192.0.2.1", "192.0.2.7/32", attrs)
        except RenderError:
            continue
        assert line.isascii()
        assert line.isprintable()
        assert text in line.split(" ")
