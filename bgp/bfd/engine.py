"""Runs BFD sessions on asyncio: sockets, the transmit and detection timers, demultiplexing.

`Engine.configure(specs)` is declarative: the sessions in `specs` exist afterwards (one per
peer and local address), with their timers; others are taken down administratively (one
AdminDown packet) and closed. Every state change, and every error that keeps a session from
running (no route to the peer, a port in use), goes to `on_change` as a `SessionStatus`.

Timers are loop callbacks (`call_at`), not tasks: a session costs two timer handles. Received
packets are read by `add_reader` callbacks with `recvmsg`, so the TTL is checked before
anything else (single hop: exactly 255, RFC 5881 section 5; multihop, RFC 5883: not checked,
since routers send it with their default TTL). A packet is matched to its session by Your
Discriminator, or by (source, local address) when that is zero, and must come from the
session's peer. Called by `bgp.bfd.daemon` (the BFD process of the speaker) and the tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bgp.bfd import sockets
from bgp.bfd.packet import Diag, PacketError, State, decode, encode
from bgp.bfd.session import Session, Timers

_log = logging.getLogger("bgp.bfd")
RETRY = 5.0  # seconds before a session that could not start is tried again


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A wanted session: `name` labels it (the BGPPeer); `local` None: the kernel's choice."""

    name: str
    peer: str
    local: str | None = None
    multihop: bool = False
    timers: Timers = field(default_factory=Timers)


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """What `on_change` is told: the session's state now, or why it cannot run."""

    name: str
    peer: str
    local: str
    state: State
    diag: Diag = Diag.NONE
    remote_state: State = State.DOWN
    error: str = ""


@dataclass
class Stats:
    """Counters over the engine's life (the bench reads tx gaps; tests read the drops)."""

    sent: int = 0
    received: int = 0
    dropped_ttl: int = 0
    dropped_invalid: int = 0
    dropped_unmatched: int = 0
    send_errors: int = 0
    max_tx_gap: float = 0.0  # seconds: the longest lateness of a periodic packet past its due time


@dataclass(eq=False)
class _Run:
    spec: SessionSpec
    local: str
    session: Session
    sender: socket.socket
    receiver: tuple[str, int]
    tx_handle: asyncio.TimerHandle | None = None
    tx_due: float = 0.0
    detect_handle: asyncio.TimerHandle | None = None
    reported: SessionStatus | None = None


def canonical(address: str) -> str:
    return ipaddress.ip_address(address.split("%", 1)[0]).compressed


class Engine:
    """The sessions of one process; create, `configure`, and `close` on the running loop."""

    def __init__(
        self,
        on_change: Callable[[SessionStatus], None],
        *,
        single_hop_port: int = sockets.SINGLE_HOP_PORT,
        multihop_port: int = sockets.MULTIHOP_PORT,
        source_ports: tuple[int, int] = sockets.SOURCE_PORTS,
    ) -> None:
        self.on_change = on_change
        self.ports = {False: single_hop_port, True: multihop_port}
        self.source_ports = source_ports
        self.stats = Stats()
        self._loop = asyncio.get_running_loop()
        self._runs: dict[tuple[str, str], _Run] = {}  # (peer, local) -> session
        self._by_discr: dict[int, _Run] = {}
        self._receivers: dict[tuple[str, int], socket.socket] = {}
        self._specs: list[SessionSpec] = []
        self._retry: asyncio.TimerHandle | None = None
        self._failed: dict[str, SessionStatus] = {}

    # ---- the wanted sessions ------------------------------------------------------------------
    def configure(self, specs: Iterable[SessionSpec]) -> None:
        """Make the running sessions those of `specs` (see the module docstring)."""
        self._specs = list(specs)
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        wanted: dict[tuple[str, str], SessionSpec] = {}
        failed: dict[str, SessionStatus] = {}
        for spec in self._specs:
            try:
                peer = canonical(spec.peer)
                local = canonical(spec.local) if spec.local else sockets.local_address_toward(peer)
            except (ValueError, OSError) as err:
                failed[spec.name] = SessionStatus(
                    spec.name,
                    spec.peer,
                    spec.local or "",
                    State.DOWN,
                    error=f"no local address toward {spec.peer}: {err}",
                )
                continue
            wanted.setdefault((peer, local), spec)
        for key in set(self._runs) - set(wanted):
            self._remove(self._runs[key])
        for key, spec in wanted.items():
            run = self._runs.get(key)
            if run is not None and run.spec.multihop != spec.multihop:
                self._remove(run)
                run = None
            if run is None:
                error = self._add(key, spec)
                if error:
                    failed[spec.name] = SessionStatus(spec.name, key[0], key[1], State.DOWN, error=error)
            else:
                run.spec = spec
                run.session.reconfigure(spec.timers)
        for name, status in failed.items():
            if self._failed.get(name) != status:
                self.on_change(status)
        self._failed = failed
        if failed:
            self._retry = self._loop.call_later(RETRY, lambda: self.configure(self._specs))

    def status(self) -> list[SessionStatus]:
        """The state of every session, and the specs that could not start."""
        return [self._status(run) for run in self._runs.values()] + list(self._failed.values())

    def close(self, *, admin_down: bool) -> None:
        """End every session; with `admin_down`, tell each peer first (one AdminDown packet)."""
        self._specs = []
        if self._retry is not None:
            self._retry.cancel()
        for run in list(self._runs.values()):
            self._remove(run, admin_down=admin_down)

    def send_admin_down(self) -> None:
        """One AdminDown packet on every session, which keeps running: for a graceful stop,
        where the process ends right after."""
        for run in self._runs.values():
            run.session.admin_down()
            self._send(run)

    # ---- sessions -----------------------------------------------------------------------------
    def _add(self, key: tuple[str, str], spec: SessionSpec) -> str:
        _peer, local = key
        port = self.ports[spec.multihop]
        try:
            self._receiver(local, port)
            sender = sockets.sender(local, self.source_ports)
        except OSError as err:
            return f"cannot open the BFD sockets on {local} (UDP {port}): {err.strerror or err}"
        discr = self._new_discriminator()
        run = _Run(spec, local, Session(spec.timers, discr), sender, (local, port))
        self._runs[key] = run
        self._by_discr[discr] = run
        self._report(run)
        self._schedule_tx(run)
        return ""

    def _remove(self, run: _Run, *, admin_down: bool = True) -> None:
        if admin_down:
            run.session.admin_down()
            self._send(run)
        for handle in (run.tx_handle, run.detect_handle):
            if handle is not None:
                handle.cancel()
        run.sender.close()
        self._runs.pop((canonical(run.spec.peer), run.local), None)
        self._by_discr.pop(run.session.local_discr, None)
        if not any(r.receiver == run.receiver for r in self._runs.values()):
            sock = self._receivers.pop(run.receiver, None)
            if sock is not None:
                self._loop.remove_reader(sock.fileno())
                sock.close()

    def _new_discriminator(self) -> int:
        while True:
            discr = secrets.randbits(32)
            if discr and discr not in self._by_discr:
                return discr

    def _receiver(self, local: str, port: int) -> socket.socket:
        key = (local, port)
        sock = self._receivers.get(key)
        if sock is None:
            sock = sockets.receiver(local, port)
            self._receivers[key] = sock
            self._loop.add_reader(sock.fileno(), self._readable, sock, key)
        return sock

    # ---- transmission -------------------------------------------------------------------------
    def _schedule_tx(self, run: _Run) -> None:
        delay = run.session.next_tx_delay()
        if delay is None:  # the remote wants no packets: look again later
            delay = 1.0
        run.tx_due = self._loop.time() + delay
        run.tx_handle = self._loop.call_at(run.tx_due, self._periodic, run)

    def _periodic(self, run: _Run) -> None:
        late = self._loop.time() - run.tx_due
        self.stats.max_tx_gap = max(self.stats.max_tx_gap, late)
        if run.session.tx_interval() is not None:
            self._send(run)
        self._schedule_tx(run)

    def _send(self, run: _Run, *, final: bool = False) -> None:
        data = encode(run.session.packet(final=final))
        try:
            run.sender.sendto(data, (canonical(run.spec.peer), self.ports[run.spec.multihop]))
            self.stats.sent += 1
        except OSError as err:  # no route, link down, buffer full: the detection timer decides
            self.stats.send_errors += 1
            _log.debug("bfd send failed: %s", err)

    def _sooner(self, run: _Run) -> None:
        """After a change of interval: send on the new schedule if it comes sooner."""
        delay = run.session.next_tx_delay()
        if delay is not None and run.tx_handle is not None and self._loop.time() + delay < run.tx_due:
            run.tx_handle.cancel()
            self._schedule_tx(run)

    # ---- reception ----------------------------------------------------------------------------
    def _readable(self, sock: socket.socket, key: tuple[str, int]) -> None:
        for _ in range(64):  # bounded: other sockets and timers get their turn
            got = sockets.read(sock)
            if got is None:
                return
            self._datagram(*got, key)

    def _datagram(self, data: bytes, source: str, ttl: int | None, key: tuple[str, int]) -> None:
        local, port = key
        multihop = port == self.ports[True] and port != self.ports[False]
        if not multihop and ttl != sockets.MAX_TTL:
            self.stats.dropped_ttl += 1
            return
        try:
            packet = decode(data)
        except PacketError as err:
            self.stats.dropped_invalid += 1
            _log.debug("bfd packet from %s discarded: %s", source, err)
            return
        source = canonical(source)
        if packet.your_discriminator:
            run = self._by_discr.get(packet.your_discriminator)
        else:
            run = self._runs.get((source, local))
        if run is None or canonical(run.spec.peer) != source or run.local != local:
            self.stats.dropped_unmatched += 1
            return
        self.stats.received += 1
        before = run.session.state
        if run.session.receive(packet, self._loop.time()):
            self._send(run, final=True)
        self._arm_detection(run)
        if run.session.state != before:
            self._report(run)
        self._sooner(run)

    # ---- detection ----------------------------------------------------------------------------
    def _arm_detection(self, run: _Run) -> None:
        deadline = run.session.deadline()
        if deadline is None:
            return
        if run.detect_handle is not None and not run.detect_handle.cancelled():
            if run.detect_handle.when() <= deadline:
                return  # fires first, then re-arms for the later deadline
            run.detect_handle.cancel()
        run.detect_handle = self._loop.call_at(deadline, self._detect, run)

    def _detect(self, run: _Run) -> None:
        run.detect_handle = None
        if run.session.expire(self._loop.time()):
            self._report(run)
            self._sooner(run)
        self._arm_detection(run)

    # ---- reporting ----------------------------------------------------------------------------
    def _status(self, run: _Run) -> SessionStatus:
        s = run.session
        return SessionStatus(
            run.spec.name, canonical(run.spec.peer), run.local, s.state, s.diag, s.remote_state
        )

    def _report(self, run: _Run) -> None:
        status = self._status(run)
        if status != run.reported:
            run.reported = status
            self.on_change(status)
