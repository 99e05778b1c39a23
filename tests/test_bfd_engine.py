"""The BFD engine and its process over loopback: sessions come Up, fail, refuse bad TTLs.

Each test takes its own 127.a.b.1/.2 pair and a free UDP port for "3784", so nothing binds a
well-known port in the host namespace; the TTL rule is the real one (loopback keeps TTL 255).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bgp.bfd.client import BfdClient
from bgp.bfd.engine import Engine, SessionSpec, SessionStatus
from bgp.bfd.packet import ControlPacket, Diag, State, encode
from bgp.bfd.session import Timers
from tests.helpers import eventually

FAST = Timers(100_000, 100_000, 3)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pair(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(f"{os.getpid()}/{key}".encode()).digest()
    return f"127.{1 + digest[0] % 254}.{digest[1]}.1", f"127.{1 + digest[0] % 254}.{digest[1]}.2"


@dataclass
class Side:
    engine: Engine
    seen: list[SessionStatus] = field(default_factory=list)

    @property
    def state(self) -> State | None:
        return self.seen[-1].state if self.seen else None


@pytest.fixture
async def sides(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Side, Side, str, str, int]]:
    a_addr, b_addr = pair(request.node.nodeid)
    port = free_udp_port()
    a_seen: list[SessionStatus] = []
    b_seen: list[SessionStatus] = []
    a = Side(Engine(a_seen.append, single_hop_port=port), a_seen)
    b = Side(Engine(b_seen.append, single_hop_port=port), b_seen)
    try:
        yield a, b, a_addr, b_addr, port
    finally:
        a.engine.close(admin_down=False)
        b.engine.close(admin_down=False)


async def test_two_engines_come_up_and_admin_down_is_a_neighbor_down(
    sides: tuple[Side, Side, str, str, int],
) -> None:
    a, b, a_addr, b_addr, _ = sides
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=FAST)])
    b.engine.configure([SessionSpec("a", a_addr, b_addr, timers=FAST)])
    await eventually(lambda: a.state == State.UP and b.state == State.UP, timeout=10)
    b.engine.configure([])  # removed: one AdminDown packet, then gone
    await eventually(lambda: a.state == State.DOWN, timeout=5)
    assert a.seen[-1].diag == Diag.NEIGHBOR_DOWN


async def test_a_silent_peer_is_detected_down(sides: tuple[Side, Side, str, str, int]) -> None:
    a, b, a_addr, b_addr, _ = sides
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=FAST)])
    b.engine.configure([SessionSpec("a", a_addr, b_addr, timers=FAST)])
    await eventually(lambda: a.state == State.UP, timeout=10)
    b.engine.close(admin_down=False)  # dies without a word
    await eventually(lambda: a.state == State.DOWN, timeout=5)
    assert a.seen[-1].diag == Diag.DETECTION_EXPIRED


@pytest.mark.parametrize(
    ("ttl", "accepted"), [pytest.param(64, False, id="ttl-64"), pytest.param(255, True, id="ttl-255")]
)
async def test_single_hop_packets_count_only_with_ttl_255(
    sides: tuple[Side, Side, str, str, int], ttl: int, accepted: bool
) -> None:
    a, _, a_addr, b_addr, port = sides
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=FAST)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        forger.bind((b_addr, 0))
        forger.sendto(encode(ControlPacket(State.DOWN, my_discriminator=0x99)), (a_addr, port))
        await eventually(lambda: a.engine.stats.dropped_ttl + a.engine.stats.received > 0, timeout=5)
    assert (a.engine.stats.received == 1) is accepted
    assert (a.state == State.INIT) is accepted


async def test_packets_from_another_address_are_not_taken_for_the_peer(
    sides: tuple[Side, Side, str, str, int],
) -> None:
    a, _, a_addr, b_addr, port = sides
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=FAST)])
    stranger = a_addr.rsplit(".", 1)[0] + ".3"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        forger.bind((stranger, 0))
        forger.sendto(encode(ControlPacket(State.DOWN, my_discriminator=0x99)), (a_addr, port))
        await eventually(lambda: a.engine.stats.dropped_unmatched == 1, timeout=5)
    assert a.state == State.DOWN


async def test_new_timers_reach_the_peer_by_a_poll_sequence(sides: tuple[Side, Side, str, str, int]) -> None:
    a, b, a_addr, b_addr, _ = sides
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=FAST)])
    b.engine.configure([SessionSpec("a", a_addr, b_addr, timers=FAST)])
    await eventually(lambda: a.state == State.UP and b.state == State.UP, timeout=10)
    slower = Timers(200_000, 200_000, 4)
    a.engine.configure([SessionSpec("b", b_addr, a_addr, timers=slower)])

    def agreed() -> bool:
        session = next(iter(b.engine._runs.values())).session  # the peer's view of us
        return session.remote_desired_tx == 200_000 and session.remote_mult == 4

    def poll_answered() -> bool:
        # The peer's Final packet may still be in flight when the peer has taken the new timers.
        return not next(iter(a.engine._runs.values())).session.polling

    await eventually(lambda: agreed() and poll_answered(), timeout=5)
    assert a.state == State.UP
    assert b.state == State.UP


async def test_the_bfd_process_runs_sessions_for_its_client(request: pytest.FixtureRequest) -> None:
    a_addr, b_addr = pair(request.node.nodeid)
    port = free_udp_port()
    seen: list[SessionStatus] = []
    peer = Engine(seen.append, single_hop_port=port)
    peer.configure([SessionSpec("speaker", a_addr, b_addr, timers=FAST)])
    client = BfdClient(command=[sys.executable, "-m", "bgp.bfd", "--single-hop-port", str(port)])
    task = asyncio.create_task(client.run())
    try:
        client.configure([{"name": "tor", "peer": b_addr, "local": a_addr, "minTxMs": 100, "minRxMs": 100}])
        await eventually(lambda: "tor" in client.states and client.states["tor"].state == "Up", timeout=10)
        assert (await client.stats())["received"] > 0
        await client.stop(admin_down=True)
        await eventually(lambda: seen[-1].state == State.DOWN, timeout=5)
        assert seen[-1].diag == Diag.NEIGHBOR_DOWN  # the peer was told, it did not time out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        peer.close(admin_down=False)


async def test_multihop_sessions_use_their_own_port_and_accept_any_ttl(
    request: pytest.FixtureRequest,
) -> None:
    a_addr, b_addr = pair(request.node.nodeid)
    single, multi = free_udp_port(), free_udp_port()
    a_seen: list[SessionStatus] = []
    a = Engine(a_seen.append, single_hop_port=single, multihop_port=multi)
    b = Engine(lambda _: None, single_hop_port=single, multihop_port=multi)
    try:
        a.configure([SessionSpec("b", b_addr, a_addr, multihop=True, timers=FAST)])
        b.configure([SessionSpec("a", a_addr, b_addr, multihop=True, timers=FAST)])
        await eventually(lambda: bool(a_seen) and a_seen[-1].state == State.UP, timeout=10)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind((a_addr, single))  # nothing listens on the single-hop port: it is free
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as late:
            late.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 60)  # a few routers away
            late.bind((a_addr.rsplit(".", 1)[0] + ".3", 0))  # a stranger: counted unmatched, not TTL
            late.sendto(encode(ControlPacket(State.DOWN, my_discriminator=0x99)), (a_addr, multi))
            await eventually(lambda: a.stats.dropped_unmatched + a.stats.dropped_ttl > 0, timeout=5)
        assert a.stats.dropped_ttl == 0  # RFC 5883: no TTL rule; it failed only to match a session
    finally:
        a.close(admin_down=False)
        b.close(admin_down=False)
